//! Images as normalised f32 rows, and the seeded order in which they are fed.

use candle_core::{Device, Result, Tensor};
use data::ImageSet;
use models::rng::SeededRng;

/// A dataset in memory as f32 rows (one flattened image per row) and u32 labels.
#[derive(Debug, Clone)]
pub struct Rows {
    pub features: Vec<f32>,
    pub labels: Vec<u32>,
    pub dim: usize,
}

impl Rows {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The rows at `indices`, as a (batch, dim) tensor and a (batch,) label tensor.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<(Tensor, Tensor)> {
        let mut xs = Vec::with_capacity(indices.len() * self.dim);
        for &i in indices {
            xs.extend_from_slice(&self.features[i * self.dim..(i + 1) * self.dim]);
        }
        let ys: Vec<u32> = indices.iter().map(|&i| self.labels[i]).collect();
        Ok((
            Tensor::from_vec(xs, (indices.len(), self.dim), device)?,
            Tensor::from_vec(ys, indices.len(), device)?,
        ))
    }
}

/// Scales pixels to [0, 1], then standardises with the training set's mean and standard
/// deviation (one scalar each: the images are greyscale).
pub fn normalise(train: &ImageSet, test: &ImageSet) -> (Rows, Rows) {
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
    let std = var.sqrt().max(1e-6);
    let rows = |set: &ImageSet| Rows {
        features: set
            .images
            .iter()
            .map(|&p| ((f64::from(p) / 255.0 - mean) / std) as f32)
            .collect(),
        labels: set.labels.iter().map(|&l| u32::from(l)).collect(),
        dim: set.pixels_per_image(),
    };
    (rows(train), rows(test))
}

/// Mini-batches of one epoch: a seeded permutation of `0..n`, cut into `batch_size`
/// pieces. A last piece of a single example is dropped (BatchNorm cannot train on it).
pub fn epoch_batches(n: usize, batch_size: usize, seed: u64, epoch: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    SeededRng::for_stream(seed, &format!("batch-order/epoch-{epoch}")).shuffle(&mut order);
    order
        .chunks(batch_size)
        .filter(|c| c.len() >= 2)
        .map(<[usize]>::to_vec)
        .collect()
}

/// How many batches `epoch_batches` yields.
pub fn batches_per_epoch(n: usize, batch_size: usize) -> usize {
    n / batch_size + usize::from(n % batch_size >= 2)
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

    #[test]
    fn normalised_training_pixels_have_zero_mean_unit_std() {
        let set = ImageSet {
            images: vec![0, 255, 128, 64, 10, 200, 30, 90],
            labels: vec![1, 2],
            len: 2,
            rows: 2,
            cols: 2,
        };
        let (train, test) = normalise(&set, &set);
        let n = train.features.len() as f32;
        let mean = train.features.iter().sum::<f32>() / n;
        let var = train
            .features
            .iter()
            .map(|x| (x - mean).powi(2))
            .sum::<f32>()
            / n;
        assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4);
        assert_eq!(test.labels, vec![1, 2]);
        let (xs, ys) = train.batch(&[1], &Device::Cpu).unwrap();
        assert_eq!(xs.dims(), &[1, 4]);
        assert_eq!(ys.to_vec1::<u32>().unwrap(), vec![2]);
    }
}
