//! Looking inside a forward pass, for the diagnostics of why deep plain nets train worse:
//! each weighted layer's response (after BN, before the ReLU or the addition: the
//! paper's Figure 7), and the network with one block deleted (the lesion study of Veit,
//! Wilber and Belongie 2016: y = shortcut(x) instead of y = relu(f(x) + shortcut(x))).

use crate::batch_norm::ThenRelu;
use candle_core::{Result, Tensor};
use kernels::relu::{add_relu, relu};

#[derive(Debug, Default)]
pub struct Probe {
    /// Collect responses into `responses`.
    pub record: bool,
    /// (layer path, its pre-activation output), in forward order.
    pub responses: Vec<(String, Tensor)>,
    /// The 0-based block (in forward order) to delete.
    pub lesion: Option<usize>,
}

impl Probe {
    /// A probe that changes and records nothing (a plain forward pass).
    pub fn none() -> Self {
        Probe::default()
    }

    /// Records responses.
    pub fn responses() -> Self {
        Probe {
            record: true,
            ..Probe::default()
        }
    }

    /// Deletes block `block`.
    pub fn lesion(block: usize) -> Self {
        Probe {
            lesion: Some(block),
            ..Probe::default()
        }
    }
}

/// Where a layer's pre-activation response goes: nowhere (every training step), or
/// into the probe under the layer's path.
pub(crate) struct Watch<'p> {
    into: Option<(&'p mut Probe, String)>,
}

impl Probe {
    /// A watch on one layer, named by `name` (called only when recording: names are not
    /// formatted on every training step).
    pub(crate) fn watch(&mut self, name: impl FnOnce() -> String) -> Watch<'_> {
        Watch {
            into: self.record.then(|| (self, name())),
        }
    }
}

impl Watch<'_> {
    /// `layer(xs)` then `end`: fused into the layer's batch norm when nothing watches,
    /// in two ops when the response is recorded (it must exist as a tensor before what
    /// follows it).
    pub(crate) fn layer_then<L: ThenRelu>(
        self,
        layer: &L,
        xs: &Tensor,
        train: bool,
        end: LayerEnd,
    ) -> Result<Tensor> {
        let Some((probe, name)) = self.into else {
            return match end {
                LayerEnd::Relu => layer.forward_relu_t(xs, train),
                LayerEnd::AddRelu(shortcut) => layer.forward_add_relu_t(xs, shortcut, train),
            };
        };
        let h = layer.forward_t(xs, train)?;
        probe.responses.push((name, h.clone()));
        match end {
            LayerEnd::Relu => relu(&h),
            LayerEnd::AddRelu(shortcut) => add_relu(&h, shortcut),
        }
    }
}

/// What follows a layer's batch norm.
pub(crate) enum LayerEnd<'a> {
    /// `relu(h)`.
    Relu,
    /// `relu(h + shortcut)`: the end of a residual block.
    AddRelu(&'a Tensor),
}

/// The standard deviation of each recorded response over all its entries (the paper's
/// Figure 7 statistic), in forward order.
pub fn response_stds(probe: &Probe) -> Result<Vec<(String, f64)>> {
    probe
        .responses
        .iter()
        .map(|(name, t)| {
            let t = t.flatten_all()?.to_dtype(candle_core::DType::F64)?;
            let mean = t.mean_all()?;
            let var = t.broadcast_sub(&mean)?.sqr()?.mean_all()?;
            Ok((name.clone(), var.to_scalar::<f64>()?.sqrt()))
        })
        .collect()
}
