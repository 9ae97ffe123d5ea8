//! The CIFAR-style basic block: conv3x3-BN-ReLU-conv3x3-BN, then (residual nets only)
//! the shortcut added, then ReLU. The plain twin is the same block without the addition.

use crate::conv_layer::{conv_layer, ConvLayer, ConvShape};
use crate::probe::{LayerEnd, Probe};
use crate::shortcut::{shortcut, Shortcut};
use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};
use vocab::ShortcutOption;

#[derive(Debug, Clone)]
pub struct BasicBlock {
    first: ConvLayer,
    second: ConvLayer,
    /// None in a plain net.
    shortcut: Option<Shortcut>,
    changes_shape: bool,
}

/// Where a block sits and what it maps.
#[derive(Debug, Clone, Copy)]
pub struct BlockShape {
    pub in_channels: usize,
    pub out_channels: usize,
    /// 2 for the first block of stages 2 and 3, else 1.
    pub stride: usize,
}

impl BlockShape {
    pub fn first(&self) -> ConvShape {
        ConvShape {
            in_channels: self.in_channels,
            out_channels: self.out_channels,
            kernel: 3,
            stride: self.stride,
        }
    }

    pub fn second(&self) -> ConvShape {
        ConvShape {
            in_channels: self.out_channels,
            out_channels: self.out_channels,
            kernel: 3,
            stride: 1,
        }
    }

    pub fn changes_shape(&self) -> bool {
        self.stride != 1 || self.in_channels != self.out_channels
    }
}

/// `shortcut_option`: None builds the plain block. `second_gamma` starts the second BN's
/// scale (0 makes a residual block the identity at initialisation).
pub fn basic_block(
    shape: BlockShape,
    shortcut_option: Option<ShortcutOption>,
    second_gamma: f64,
    vb: VarBuilder,
) -> Result<BasicBlock> {
    Ok(BasicBlock {
        first: conv_layer(shape.first(), 1.0, vb.pp("first"))?,
        second: conv_layer(shape.second(), second_gamma, vb.pp("second"))?,
        shortcut: shortcut_option
            .map(|option| {
                shortcut(
                    option,
                    shape.in_channels,
                    shape.out_channels,
                    shape.stride,
                    vb.pp("shortcut"),
                )
            })
            .transpose()?,
        changes_shape: shape.changes_shape(),
    })
}

impl BasicBlock {
    /// The paper's block: conv, BN, ReLU, conv, BN, add the shortcut (residual nets
    /// only), ReLU. Each conv-BN pair is a `ConvLayer`, whose batch norm fuses what
    /// follows it; `probe` may record each layer's response under the block's path
    /// `name` (`<name>.first`, `<name>.second`).
    pub fn forward_probe(
        &self,
        xs: &Tensor,
        train: bool,
        name: &str,
        probe: &mut Probe,
    ) -> Result<Tensor> {
        let shortcut = match &self.shortcut {
            Some(shortcut) => Some(shortcut.forward_t(xs, train)?),
            None => None,
        };
        let first = probe.watch(|| format!("{name}.first"));
        let h = first.layer_then(&self.first, xs, train, LayerEnd::Relu)?;
        let end = match &shortcut {
            Some(s) => LayerEnd::AddRelu(s),
            None => LayerEnd::Relu,
        };
        let second = probe.watch(|| format!("{name}.second"));
        second.layer_then(&self.second, &h, train, end)
    }

    /// Whether the block can be deleted: a residual block leaves its shortcut, a plain
    /// block leaves the identity, which only fits where it keeps the shape.
    pub fn can_be_deleted(&self) -> bool {
        self.shortcut.is_some() || !self.changes_shape
    }

    /// The block deleted: its shortcut alone (a residual block), the identity (a plain
    /// block that keeps the shape), or None (a plain block that changes it).
    pub fn deleted(&self, xs: &Tensor, train: bool) -> Option<Result<Tensor>> {
        match &self.shortcut {
            Some(shortcut) => Some(shortcut.forward_t(xs, train)),
            None if !self.changes_shape => Some(Ok(xs.clone())),
            None => None,
        }
    }
}

impl ModuleT for BasicBlock {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_probe(xs, train, "", &mut Probe::none())
    }
}
