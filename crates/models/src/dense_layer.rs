//! Linear -> BatchNorm, the weighted layer of the MLP family. The ReLU is applied by the
//! caller, because a residual block adds its shortcut between the BN and the ReLU.

use crate::batch_norm::{batch_norm, BatchNorm, ThenRelu};
use crate::summary::LayerSummary;
use candle_core::{Result, Tensor};
use candle_nn::{Init, ModuleT, VarBuilder};

/// The row of the layer table of a dense layer `in_dim -> out_dim` named `name`: the
/// weights and the BN's scale and shift.
pub fn dense_summary_row(name: String, in_dim: usize, out_dim: usize) -> LayerSummary {
    LayerSummary {
        name,
        kind: format!("linear {in_dim}->{out_dim} + BN"),
        output: vec![out_dim],
        params: in_dim * out_dim + 2 * out_dim,
        multiply_adds: in_dim * out_dim,
        counts_in_depth: true,
    }
}

#[derive(Debug, Clone)]
pub struct DenseLayer {
    weight: Tensor,
    bn: BatchNorm,
}

/// `in_dim -> out_dim` without bias (the BN's beta is the bias), He-normal weights
/// (std = sqrt(2 / fan_in), for ReLU). `bn_gamma` is the BN scale's initial value.
pub fn dense_layer(
    in_dim: usize,
    out_dim: usize,
    bn_gamma: f64,
    vb: VarBuilder,
) -> Result<DenseLayer> {
    let stdev = (2.0 / in_dim as f64).sqrt();
    let weight = vb.get_with_hints(
        (out_dim, in_dim),
        "weight",
        Init::Randn { mean: 0.0, stdev },
    )?;
    // Creating gamma first makes `batch_norm` reuse it instead of initialising it to 1.
    vb.pp("bn")
        .get_with_hints(out_dim, "weight", Init::Const(bn_gamma))?;
    let bn = batch_norm(out_dim, 1e-5, vb.pp("bn"))?;
    Ok(DenseLayer { weight, bn })
}

impl ModuleT for DenseLayer {
    /// Pre-activation output: BN(x W^T).
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_t(&self.linear(xs)?, train)
    }
}

impl ThenRelu for DenseLayer {
    fn forward_relu_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_relu_t(&self.linear(xs)?, train)
    }

    fn forward_add_relu_t(&self, xs: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        self.bn
            .forward_add_relu_t(&self.linear(xs)?, residual, train)
    }
}

impl DenseLayer {
    fn linear(&self, xs: &Tensor) -> Result<Tensor> {
        kernels::linear::linear(xs, &self.weight)
    }
}
