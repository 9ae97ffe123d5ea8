//! A small seeded random number generator of our own (SplitMix64). Candle cannot seed
//! its CPU generator, and a crate's generator may change its stream between versions;
//! this one never changes, so a seed means the same weights and batch order forever.

#[derive(Debug, Clone)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// A generator for a named stream (a parameter, the batch order) under one seed, so
    /// streams do not depend on the order in which they are created.
    pub fn for_stream(seed: u64, stream: &str) -> Self {
        // FNV-1a of the stream name, mixed with the seed.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in stream.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let mut rng = Self::new(seed ^ h);
        rng.next_u64();
        rng
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1), 53 bits.
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Box-Muller; one value per call, for simplicity).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln is finite
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias is negligible for
    /// the dataset sizes we shuffle).
    pub fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next_u64()) * n as u128) >> 64) as usize
    }

    /// Fisher-Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i + 1);
            items.swap(i, j);
        }
    }
}

/// A tensor of standard normal f32 values drawn from `seed`, on the CPU. Tests take their
/// inputs from here rather than from Candle's CPU generator, which cannot be seeded: a
/// failure must reproduce, and a comparison must not pass or fail by the draw.
#[cfg(test)]
pub(crate) fn normal_tensor(shape: &[usize], seed: u64) -> candle_core::Tensor {
    let mut rng = SeededRng::new(seed);
    let values: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| rng.normal() as f32)
        .collect();
    candle_core::Tensor::from_vec(values, shape, &candle_core::Device::Cpu).expect("a tensor")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let a: Vec<u64> = (0..4)
            .map({
                let mut r = SeededRng::for_stream(7, "w");
                move |_| r.next_u64()
            })
            .collect();
        let mut b = SeededRng::for_stream(7, "w");
        assert_eq!(a, (0..4).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(a[0], SeededRng::for_stream(7, "v").next_u64());
        assert_ne!(a[0], SeededRng::for_stream(8, "w").next_u64());
    }

    #[test]
    fn normal_has_unit_moments() {
        let mut r = SeededRng::new(1);
        let xs: Vec<f64> = (0..100_000).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.02, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
    }

    #[test]
    fn shuffle_is_a_permutation() {
        let mut v: Vec<usize> = (0..1000).collect();
        SeededRng::new(3).shuffle(&mut v);
        assert_ne!(v, (0..1000).collect::<Vec<_>>());
        v.sort();
        assert_eq!(v, (0..1000).collect::<Vec<_>>());
    }
}
