//! Tiny real inputs for the tests that train: a Fashion-MNIST-named dataset of noise and
//! an experiment small enough to train in a fraction of a second.

use std::path::Path;

/// One plain MLP of depth 4 on 4x4 images, one epoch.
pub const TINY_MLP: &str = "name: tiny
dataset:
  name: fashion-mnist
model:
  arch: mlp
  width: 8
families: [plain]
depths: [4]
seeds: [0]
train:
  epochs: 1
  batch_size: 16
  lr: 0.05
  momentum: 0.9
  weight_decay: 0.0001
  schedule: cosine
";

/// 64 training and 16 test images of 4x4 noise, in Fashion-MNIST's file names.
pub fn tiny_dataset(dir: &Path) {
    let mut state = 7u32;
    for (prefix, n) in [("train", 64), ("t10k", 16)] {
        let pixels: Vec<u8> = (0..n * 16)
            .map(|_| {
                state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (state >> 24) as u8
            })
            .collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let write = |name: String, bytes: Vec<u8>| std::fs::write(dir.join(name), bytes).unwrap();
        write(
            format!("{prefix}-images-idx3-ubyte"),
            data::encode_idx(&[n, 4, 4], &pixels),
        );
        write(
            format!("{prefix}-labels-idx1-ubyte"),
            data::encode_idx(&[n], &labels),
        );
    }
}
