//! How much memory a run needs to train, estimated from its shape alone, so that a
//! width or depth that no memory here can hold is an error naming the field and the
//! largest value that fits, before anything trains (instead of a worker that aborts in
//! allocation, or a sweep that builds a billion layers for minutes).

use vocab::{ModelArch, CIFAR_STAGES};

/// The shape of a network and its batch, as far as its memory goes.
#[derive(Debug, Clone, Copy)]
pub struct NetShape {
    pub arch: ModelArch,
    pub depth: usize,
    pub width: usize,
    pub batch_size: usize,
    /// (channels, rows, cols) of one image.
    pub image: [usize; 3],
}

/// f32 copies of every parameter a training run holds: the weights, their gradients,
/// the momentum buffers and the checkpoint's snapshot.
const PARAMETER_COPIES: f64 = 4.0;
/// f32 tensors kept per weighted layer and example for the backward pass, and their
/// gradients: the layer's output, batch norm's, the ReLU's, one gradient in flight.
const ACTIVATION_COPIES: f64 = 4.0;
const CLASSES: f64 = vocab::CLASSES as f64;

impl NetShape {
    /// Estimated peak bytes of a training step (in f64, so that no value overflows).
    pub fn training_bytes(&self) -> f64 {
        let w = self.width as f64;
        let depth = self.depth as f64;
        let [c, h, wd] = self.image.map(|v| v as f64);
        let (parameters, activations) = match self.arch {
            ModelArch::Mlp => {
                let inputs = c * h * wd;
                let hidden = (depth - 2.0).max(0.0);
                (
                    inputs * w + hidden * w * w + w * CLASSES + 4.0 * w * (depth - 1.0),
                    w * (depth - 1.0) + inputs,
                )
            }
            ModelArch::Cifar => {
                // Three stages of 2n 3x3 convs on w, 2w, 4w filters at full, half and a
                // quarter of the image's side (n from a depth not checked yet: a real).
                let per_stage = (ModelArch::Cifar.layers_per_unit() / CIFAR_STAGES) as f64;
                let convs = per_stage
                    * ((depth - 2.0) / ModelArch::Cifar.layers_per_unit() as f64).max(0.0);
                let (mut parameters, mut activations) = (9.0 * c * w, w * h * wd);
                for stage in 0..CIFAR_STAGES {
                    let filters = w * f64::from(1 << stage);
                    let plane = h * wd / f64::from(1 << (2 * stage));
                    parameters += convs * 9.0 * filters * filters;
                    activations += convs * filters * plane;
                }
                (parameters + 4.0 * w * CLASSES, activations + c * h * wd)
            }
        };
        let batch = self.batch_size as f64;
        4.0 * (PARAMETER_COPIES * parameters + ACTIVATION_COPIES * batch * activations)
    }

    pub fn fits(&self, bytes: f64) -> bool {
        self.training_bytes() <= bytes
    }
}

/// The largest value in `1..=given` for which `fits(value)` holds (it shrinks as the
/// value grows), or None if not even 1 fits.
pub fn largest_fitting(given: usize, fits: impl Fn(usize) -> bool) -> Option<usize> {
    if !fits(1) {
        return None;
    }
    let (mut lo, mut hi) = (1usize, given);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

/// This machine's physical memory in bytes (`MemTotal`), if it can be read.
pub fn host_memory_bytes() -> Option<f64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024.0)
}

/// "1.5 GiB", for messages.
pub fn describe_bytes(bytes: f64) -> String {
    let gib = bytes / f64::from(1u32 << 30);
    if gib >= 1e6 {
        format!("{gib:.1e} GiB")
    } else {
        format!("{gib:.1} GiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(arch: ModelArch, depth: usize, width: usize) -> NetShape {
        NetShape {
            arch,
            depth,
            width,
            batch_size: 128,
            image: [3, 32, 32],
        }
    }

    #[test]
    fn the_papers_nets_need_little_and_absurd_ones_more_than_any_machine() {
        let resnet110 = shape(ModelArch::Cifar, 110, 16).training_bytes();
        assert!(resnet110 > 1e8 && resnet110 < 4e9, "{resnet110}");
        let mlp = shape(ModelArch::Mlp, 64, 64).training_bytes();
        assert!(mlp < 1e8, "{mlp}");
        for absurd in [
            shape(ModelArch::Cifar, 56, 4_000_000_000),
            shape(ModelArch::Mlp, 2_000_000_002, 16),
            shape(ModelArch::Cifar, usize::MAX - 1, usize::MAX),
        ] {
            let bytes = absurd.training_bytes();
            assert!(bytes.is_finite() && bytes > 1e13, "{absurd:?}: {bytes}");
        }
    }

    #[test]
    fn the_largest_fitting_value_is_found_exactly() {
        assert_eq!(largest_fitting(1000, |v| v <= 637), Some(637));
        assert_eq!(largest_fitting(10, |v| v <= 637), Some(10));
        assert_eq!(largest_fitting(usize::MAX, |v| v <= 1 << 40), Some(1 << 40));
        assert_eq!(largest_fitting(5, |_| false), None);
    }
}
