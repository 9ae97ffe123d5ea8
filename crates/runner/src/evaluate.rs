//! Evaluation, the one way this tool measures a network on held-out images: error rate
//! and mean loss, BatchNorm in evaluation mode, in chunks of images. Training evaluates
//! every epoch on the test (and validation) images; the lesion study evaluates with a
//! block deleted.

use crate::batches::Rows;
use candle_core::{DType, Device, Result, Tensor};
use models::{Network, Probe};

/// Images per forward pass: enough to keep the kernels busy, few enough that a chunk's
/// activations stay small.
const CHUNK: usize = 1000;

/// Error rate and mean loss of `network` on every image of `rows`.
pub fn evaluate(network: &Network, rows: &Rows, device: &Device) -> Result<(f64, f64)> {
    evaluate_first(network, rows, rows.len(), None, device)
}

/// Error rate and mean loss of `network` on the first `n` images of `rows` (all of them
/// if there are fewer), with block `lesion` deleted where given (see `Probe`).
pub fn evaluate_first(
    network: &Network,
    rows: &Rows,
    n: usize,
    lesion: Option<usize>,
    device: &Device,
) -> Result<(f64, f64)> {
    let all: Vec<usize> = (0..rows.len().min(n)).collect();
    let (mut wrong, mut loss_sum) = (0f64, 0f64);
    for chunk in all.chunks(CHUNK) {
        let (xs, ys) = rows.batch(chunk, device, None)?;
        let mut probe = Probe {
            lesion,
            ..Probe::none()
        };
        let logits = network.forward_probe(&xs, false, &mut probe)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &ys)?;
        loss_sum += f64::from(loss.to_scalar::<f32>()?) * chunk.len() as f64;
        wrong += count_wrong(&logits, &ys)?;
    }
    let images = all.len().max(1) as f64;
    Ok((wrong / images, loss_sum / images))
}

/// How many of `logits`' predictions miss `labels`.
pub(crate) fn count_wrong(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    let predicted = logits.argmax(1)?;
    let wrong = predicted.ne(labels)?.to_dtype(DType::F32)?.sum_all()?;
    Ok(f64::from(wrong.to_scalar::<f32>()?))
}
