//! Measurements of a trained network that explain the degradation problem, taken after
//! training on test images: each layer's response std (the paper's Figure 7) and the
//! lesion study (test error with each block deleted, Veit et al. 2016). The gradient
//! norms are taken during training (`gradient_flow`).

use crate::batches::Rows;
use crate::evaluate::evaluate_first;
use candle_core::{Device, Result};
use models::{response_stds, Network, Probe};
use results::{LesionRow, ResponseRow};

/// Images of the fixed batch the responses are measured on.
pub const RESPONSE_IMAGES: usize = 256;

/// Each weighted layer's response std on the first `RESPONSE_IMAGES` test images,
/// BatchNorm in evaluation mode.
pub fn responses(network: &Network, test: &Rows, device: &Device) -> Result<Vec<ResponseRow>> {
    let n = test.len().min(RESPONSE_IMAGES);
    let indices: Vec<usize> = (0..n).collect();
    let (xs, _) = test.batch(&indices, device, None)?;
    let mut probe = Probe::responses();
    network.forward_probe(&xs, false, &mut probe)?;
    Ok(response_stds(&probe)?
        .into_iter()
        .enumerate()
        .map(|(i, (name, std))| ResponseRow {
            layer: i as u32 + 1,
            name,
            response_std: std,
        })
        .collect())
}

/// Test error with each deletable block deleted in turn, on the first `images` test
/// images, beside the intact net's error on the same images.
pub fn lesion(
    network: &Network,
    test: &Rows,
    images: usize,
    device: &Device,
) -> Result<Vec<LesionRow>> {
    let error_with = |lesion: Option<usize>| -> Result<f64> {
        Ok(evaluate_first(network, test, images, lesion, device)?.0)
    };
    let intact = error_with(None)?;
    (0..network.blocks())
        .filter(|&b| network.can_delete(b))
        .map(|b| {
            Ok(LesionRow {
                block: b as u32,
                name: network.block_name(b),
                test_error: error_with(Some(b))?,
                intact_test_error: intact,
            })
        })
        .collect()
}
