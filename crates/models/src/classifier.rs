//! The linear classifier both families end with. No ReLU follows it, so its weights
//! are LeCun-normal (gain 1, std sqrt(1 / features)); the bias starts at zero.

use crate::summary::LayerSummary;
use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

#[derive(Debug, Clone)]
pub struct Classifier {
    weight: Tensor,
    bias: Tensor,
}

/// `features -> classes`, parameters `weight` and `bias` under `vb`.
pub fn classifier(features: usize, classes: usize, vb: VarBuilder) -> Result<Classifier> {
    let stdev = (1.0 / features as f64).sqrt();
    let weight = vb.get_with_hints(
        (classes, features),
        "weight",
        Init::Randn { mean: 0.0, stdev },
    )?;
    let bias = vb.get_with_hints(classes, "bias", Init::Const(0.0))?;
    Ok(Classifier { weight, bias })
}

/// Its row of a layer table.
pub fn classifier_summary(features: usize, classes: usize) -> LayerSummary {
    LayerSummary {
        name: "classifier".into(),
        kind: format!("linear {features}->{classes}"),
        output: vec![classes],
        params: features * classes + classes,
        multiply_adds: features * classes,
        counts_in_depth: true,
    }
}

impl Module for Classifier {
    /// (batch, features) -> logits (batch, classes).
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        kernels::linear::linear(xs, &self.weight)?.broadcast_add(&self.bias)
    }
}
