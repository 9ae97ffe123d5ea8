//! Images as normalised f32 tensors, and the seeded order in which they are fed.

use crate::augment::augment_in_place;
use candle_core::{Device, Result, Tensor};
use data::ImageSet;
pub use experiment::batches_per_epoch;
use experiment::{batch_lengths, Augment, Normalize};
use models::rng::SeededRng;

/// A dataset in memory: normalised f32 pixels, one image after another in
/// (channels, rows, cols) order, and u32 labels.
#[derive(Debug, Clone)]
pub struct Rows {
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
    /// (channels, rows, cols) of one image.
    pub shape: [usize; 3],
}

impl Rows {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Scalars per image.
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    /// The images at `indices` as a (batch, channels, rows, cols) tensor and a (batch,)
    /// label tensor; with `augment`, each image is randomly cropped and flipped first.
    pub fn batch(
        &self,
        indices: &[usize],
        device: &Device,
        augment: Option<(&Augment, &mut SeededRng)>,
    ) -> Result<(Tensor, Tensor)> {
        let dim = self.dim();
        let mut xs = Vec::with_capacity(indices.len() * dim);
        for &i in indices {
            xs.extend_from_slice(&self.features[i * dim..(i + 1) * dim]);
        }
        if let Some((augment, rng)) = augment {
            augment_in_place(&mut xs, self.shape, augment, rng);
        }
        let ys: Vec<u32> = indices.iter().map(|&i| self.labels[i]).collect();
        let [c, h, w] = self.shape;
        Ok((
            Tensor::from_vec(xs, (indices.len(), c, h, w), device)?,
            Tensor::from_vec(ys, indices.len(), device)?,
        ))
    }
}

/// Per-position statistics to subtract and divide by, one entry per scalar of an image:
/// fitted on the training images alone, then applied to every split. Pixels are scaled
/// to [0, 1] first.
pub struct Standardiser {
    mean: Vec<f64>,
    std: Vec<f64>,
}

impl Standardiser {
    /// Statistics of `train` for a normalisation mode (None: `Normalize::Global`, one
    /// mean and one standard deviation over all pixels, the behaviour before the option
    /// existed).
    pub fn fit(train: &ImageSet, mode: Option<Normalize>) -> Self {
        let mode = mode.unwrap_or(Normalize::Global);
        let dim = train.pixels_per_image();
        let plane = train.rows * train.cols;
        let n = train.len.max(1) as f64;
        // Sum and sum of squares per scalar position.
        let mut sum = vec![0f64; dim];
        let mut sq = vec![0f64; dim];
        for image in train.images.chunks_exact(dim.max(1)) {
            for (j, &p) in image.iter().enumerate() {
                let x = f64::from(p) / 255.0;
                sum[j] += x;
                sq[j] += x * x;
            }
        }
        // Pools the per-position sums over groups of positions (all, or per channel).
        let pooled = |groups: usize| -> (Vec<f64>, Vec<f64>) {
            let per = dim / groups.max(1);
            let mut mean = Vec::with_capacity(dim);
            let mut std = Vec::with_capacity(dim);
            for g in 0..groups {
                let count = n * per as f64;
                let s: f64 = sum[g * per..(g + 1) * per].iter().sum();
                let q: f64 = sq[g * per..(g + 1) * per].iter().sum();
                let m = s / count.max(1.0);
                let v = (q / count.max(1.0) - m * m).max(0.0);
                mean.extend(std::iter::repeat_n(m, per));
                std.extend(std::iter::repeat_n(v.sqrt().max(1e-6), per));
            }
            (mean, std)
        };
        let (mean, std) = match mode {
            Normalize::Global => {
                let (m, s) = global_moments(train);
                (vec![m; dim], vec![s; dim])
            }
            Normalize::PerChannel => pooled(dim / plane.max(1)),
            Normalize::PerPixelMean => (sum.iter().map(|s| s / n).collect(), vec![1.0; dim]),
        };
        Standardiser { mean, std }
    }

    pub fn apply(&self, set: &ImageSet) -> Rows {
        debug_assert_eq!(set.pixels_per_image(), self.mean.len());
        let dim = set.pixels_per_image();
        let features = set
            .images
            .iter()
            .enumerate()
            .map(|(i, &p)| {
                let j = i % dim;
                ((f64::from(p) / 255.0 - self.mean[j]) / self.std[j]) as f32
            })
            .collect();
        Rows {
            features,
            labels: set.labels.iter().map(|&l| u32::from(l)).collect(),
            shape: [set.channels, set.rows, set.cols],
        }
    }
}

/// One mean and standard deviation over every pixel, two passes in pixel order: exactly
/// the numbers of the first version, so runs it left unfinished resume on the same input.
fn global_moments(train: &ImageSet) -> (f64, f64) {
    let n = train.images.len().max(1) as f64;
    let mean = train
        .images
        .iter()
        .map(|&p| f64::from(p) / 255.0)
        .sum::<f64>()
        / n;
    let var = train
        .images
        .iter()
        .map(|&p| (f64::from(p) / 255.0 - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var.sqrt().max(1e-6))
}

/// Mini-batches of one epoch: a seeded permutation of `0..n`, cut as `batch_lengths`
/// says (a last piece shorter than `MIN_BATCH` is dropped: batch norm cannot train on it).
pub fn epoch_batches(n: usize, batch_size: usize, seed: u64, epoch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    SeededRng::for_stream(seed, &format!("batch-order/epoch-{epoch}")).shuffle(&mut order);
    let mut start = 0;
    batch_lengths(n, batch_size)
        .map(|len| {
            start += len;
            order[start - len..start].to_vec()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_cover_every_example_once_and_depend_on_seed_and_epoch() {
        let b = epoch_batches(10, 4, 1, 0);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        let mut all: Vec<usize> = b.concat();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(b, epoch_batches(10, 4, 1, 0));
        assert_ne!(b, epoch_batches(10, 4, 2, 0));
        assert_ne!(b, epoch_batches(10, 4, 1, 1));
        assert_eq!(epoch_batches(9, 4, 1, 0).len(), 2); // a lone last example is dropped
        assert_eq!(batches_per_epoch(9, 4), 2);
        assert_eq!(batches_per_epoch(10, 4), 3);
    }

    /// The count the trainer plans with and the batches it gets are one rule, for every
    /// size and batch size, including those that train nothing.
    #[test]
    fn the_batch_count_is_the_number_of_batches_for_every_size() {
        for n in 0..40 {
            for batch_size in 0..12 {
                let batches = epoch_batches(n, batch_size, 3, 1);
                assert_eq!(
                    batches.len(),
                    batches_per_epoch(n, batch_size),
                    "{n} / {batch_size}"
                );
                assert!(batches.iter().all(|b| b.len() >= experiment::MIN_BATCH));
            }
        }
        assert_eq!(
            batches_per_epoch(100, 1),
            0,
            "a batch of one trains nothing"
        );
    }

    fn two_images() -> ImageSet {
        ImageSet {
            images: vec![0, 255, 128, 64, 10, 200, 30, 90],
            labels: vec![1, 2],
            len: 2,
            channels: 1,
            rows: 2,
            cols: 2,
        }
    }

    fn moments(xs: &[f32]) -> (f32, f32) {
        let n = xs.len() as f32;
        let mean = xs.iter().sum::<f32>() / n;
        (mean, xs.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n)
    }

    #[test]
    fn normalised_training_pixels_have_zero_mean_unit_std() {
        let set = two_images();
        let standardiser = Standardiser::fit(&set, None);
        let (train, test) = (standardiser.apply(&set), standardiser.apply(&set));
        let (mean, var) = moments(&train.features);
        assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4);
        assert_eq!(test.labels, vec![1, 2]);
        let (xs, ys) = train.batch(&[1], &Device::Cpu, None).unwrap();
        assert_eq!(xs.dims(), &[1, 1, 2, 2]);
        assert_eq!(ys.to_vec1::<u32>().unwrap(), vec![2]);
    }

    #[test]
    fn per_channel_and_per_pixel_modes_match_a_direct_computation() {
        // Two 2-channel 1x2 images: channel 0 holds 0/255s, channel 1 mid greys.
        let set = ImageSet {
            images: vec![0, 255, 100, 110, 255, 255, 120, 130],
            labels: vec![0, 1],
            len: 2,
            channels: 2,
            rows: 1,
            cols: 2,
        };
        let train = Standardiser::fit(&set, Some(Normalize::PerChannel)).apply(&set);
        for c in 0..2 {
            let channel: Vec<f32> = train
                .features
                .chunks(4)
                .flat_map(|img| img[c * 2..c * 2 + 2].to_vec())
                .collect();
            let (mean, var) = moments(&channel);
            assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "channel {c}");
        }
        let train = Standardiser::fit(&set, Some(Normalize::PerPixelMean)).apply(&set);
        // Each position minus its mean over the two images, in [0, 1] units, unscaled.
        let expected: Vec<f32> = [-127.5f32, 0.0, -10.0, -10.0, 127.5, 0.0, 10.0, 10.0]
            .iter()
            .map(|v| v / 255.0)
            .collect();
        for (a, b) in train.features.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-6, "{:?} vs {expected:?}", train.features);
        }
    }
}
