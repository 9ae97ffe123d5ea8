//! Conv -> BatchNorm, the weighted layer of the CIFAR-style family. As with
//! `DenseLayer`, the ReLU is the caller's: a residual block adds its shortcut first.

use crate::batch_norm::{batch_norm, BatchNorm, ThenRelu};
use crate::summary::LayerSummary;
use candle_core::{Result, Tensor};
use candle_nn::{Init, ModuleT, VarBuilder};
use kernels::conv2d::conv2d;

/// The shape of one convolution: square kernel, "same" padding (kernel / 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
}

impl ConvShape {
    /// This layer's row of the layer table, named `name`, its output `side` x `side`.
    /// Only the 3x3 convs count in the depth (a projection shortcut's 1x1 does not).
    pub fn summary_row(&self, name: String, side: usize) -> LayerSummary {
        LayerSummary {
            name,
            kind: format!(
                "conv {k}x{k} {}->{}{} + BN",
                self.in_channels,
                self.out_channels,
                if self.stride > 1 { " /2" } else { "" },
                k = self.kernel
            ),
            output: vec![self.out_channels, side, side],
            params: self.params(),
            multiply_adds: self.out_channels
                * self.in_channels
                * self.kernel
                * self.kernel
                * side
                * side,
            counts_in_depth: self.kernel == 3,
        }
    }

    pub fn padding(&self) -> usize {
        self.kernel / 2
    }

    /// Output side length for an input side of `side` pixels.
    pub fn output_side(&self, side: usize) -> usize {
        (side + 2 * self.padding() - self.kernel) / self.stride + 1
    }

    /// Trainable scalars: the kernel (no bias: BN's beta is the bias) and BN's gamma, beta.
    pub fn params(&self) -> usize {
        self.out_channels * self.in_channels * self.kernel * self.kernel + 2 * self.out_channels
    }
}

#[derive(Debug, Clone)]
pub struct ConvLayer {
    weight: Tensor,
    shape: ConvShape,
    bn: BatchNorm,
}

/// He-normal kernel (std = sqrt(2 / fan_in), fan_in = in_channels * kernel^2, as
/// PyTorch's `kaiming_normal_`); `bn_gamma` is the BN scale's initial value.
pub fn conv_layer(shape: ConvShape, bn_gamma: f64, vb: VarBuilder) -> Result<ConvLayer> {
    let fan_in = shape.in_channels * shape.kernel * shape.kernel;
    let stdev = (2.0 / fan_in as f64).sqrt();
    let weight = vb.get_with_hints(
        (
            shape.out_channels,
            shape.in_channels,
            shape.kernel,
            shape.kernel,
        ),
        "weight",
        Init::Randn { mean: 0.0, stdev },
    )?;
    // Creating gamma first makes `batch_norm` reuse it instead of initialising it to 1.
    vb.pp("bn")
        .get_with_hints(shape.out_channels, "weight", Init::Const(bn_gamma))?;
    let bn = batch_norm(shape.out_channels, 1e-5, vb.pp("bn"))?;
    Ok(ConvLayer { weight, shape, bn })
}

impl ModuleT for ConvLayer {
    /// Pre-activation output: BN(conv(x)), x of shape (batch, channels, rows, cols).
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_t(&self.conv(xs)?, train)
    }
}

impl ThenRelu for ConvLayer {
    fn forward_relu_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_relu_t(&self.conv(xs)?, train)
    }

    fn forward_add_relu_t(&self, xs: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        self.bn.forward_add_relu_t(&self.conv(xs)?, residual, train)
    }
}

impl ConvLayer {
    fn conv(&self, xs: &Tensor) -> Result<Tensor> {
        conv2d(xs, &self.weight, self.shape.padding(), self.shape.stride)
    }
}
