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

    pub(crate) fn record(&mut self, name: &str, response: &Tensor) {
        if self.record {
            self.responses.push((name.to_string(), response.clone()));
        }
    }
}

/// How a two-layer block ends after its second layer.
pub(crate) enum BlockEnd<'a> {
    /// A plain block: `relu(h)`.
    Relu,
    /// A residual block: `relu(h + shortcut)`.
    AddRelu(&'a Tensor),
}

/// A two-layer block, `end(second(relu(first(x))))`, recording both layers' responses
/// as `<name>.first` and `<name>.second`. The ReLUs (and the residual addition) are
/// fused into the layers' batch norms unless the probe records (a recorded response
/// must exist as a tensor before what follows it).
pub(crate) fn two_layer_block<L: ThenRelu>(
    [first, second]: [&L; 2],
    xs: &Tensor,
    train: bool,
    end: BlockEnd,
    name: &str,
    probe: &mut Probe,
) -> Result<Tensor> {
    // Names are formatted only when recording: this is every training step's path.
    if !probe.record {
        let h1 = first.forward_relu_t(xs, train)?;
        return match end {
            BlockEnd::Relu => second.forward_relu_t(&h1, train),
            BlockEnd::AddRelu(shortcut) => second.forward_add_relu_t(&h1, shortcut, train),
        };
    }
    let h1 = layer_then_relu(first, xs, train, &format!("{name}.first"), probe)?;
    let h2 = second.forward_t(&h1, train)?;
    probe.record(&format!("{name}.second"), &h2);
    match end {
        BlockEnd::Relu => relu(&h2),
        BlockEnd::AddRelu(shortcut) => add_relu(&h2, shortcut),
    }
}

/// `relu(layer(xs))`, the layer's response recorded under `name` if the probe records
/// (the ReLU is then a separate op, so that the response exists as a tensor).
pub(crate) fn layer_then_relu<L: ThenRelu>(
    layer: &L,
    xs: &Tensor,
    train: bool,
    name: &str,
    probe: &mut Probe,
) -> Result<Tensor> {
    if !probe.record {
        return layer.forward_relu_t(xs, train);
    }
    let h = layer.forward_t(xs, train)?;
    probe.record(name, &h);
    relu(&h)
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
