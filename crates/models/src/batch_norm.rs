//! Batch normalisation with running statistics, under the parameter names
//! `candle_nn::batch_norm` uses (`weight`, `bias`, `running_mean`, `running_var`), so
//! checkpoints of either read into the other. On the CPU in f32 both modes run our
//! fused kernels (`kernels::batch_norm`); anything else runs Candle's own `BatchNorm`,
//! which shares the same variables. Evaluation mode on the CPU is not differentiable
//! (see `batch_norm_eval`): it measures, nothing trains from it.

use candle_core::{Result, Tensor, Var};
use candle_nn::{ModuleT, VarBuilder};
use kernels::batch_norm::{
    batch_norm_add_relu_train, batch_norm_eval, batch_norm_train, EvalEnd, EvalParams,
};
use kernels::relu::add_relu;
use kernels::runs_here;

/// PyTorch's and Candle's default: running = 0.9 * running + 0.1 * batch.
const MOMENTUM: f32 = 0.1;

#[derive(Debug, Clone)]
pub struct BatchNorm {
    gamma: Tensor,
    beta: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    candle: candle_nn::BatchNorm,
}

/// `features` channels; gamma is whatever `vb` already holds under `weight` (create it
/// first to choose its initial value), otherwise 1.
pub fn batch_norm(features: usize, eps: f64, vb: VarBuilder) -> Result<BatchNorm> {
    let candle = candle_nn::batch_norm(features, eps, vb.clone())?;
    // The same variables again: `get` returns the VarMap's tensors, and a Var made from
    // a variable tensor shares its storage, so updates are seen by both.
    let running_mean = Var::from_tensor(&vb.get(features, "running_mean")?)?;
    let running_var = Var::from_tensor(&vb.get(features, "running_var")?)?;
    Ok(BatchNorm {
        gamma: vb.get(features, "weight")?,
        beta: vb.get(features, "bias")?,
        running_mean,
        running_var,
        eps,
        candle,
    })
}

impl BatchNorm {
    /// Folds one batch's statistics into the running ones, as Candle and PyTorch do
    /// (the variance unbiased: count / (count - 1)).
    fn update_running(&self, mean: &[f32], var: &[f32], count: usize) -> Result<()> {
        let unbias = count as f32 / (count.max(2) - 1) as f32;
        let blend = |running: &Var, batch: &[f32], factor: f32| -> Result<()> {
            let old = running.as_tensor().to_vec1::<f32>()?;
            let new: Vec<f32> = old
                .iter()
                .zip(batch)
                .map(|(&r, &b)| (1.0 - MOMENTUM) * r + MOMENTUM * factor * b)
                .collect();
            running.set(&Tensor::from_vec(new, old.len(), running.device())?)
        };
        blend(&self.running_mean, mean, 1.0)?;
        blend(&self.running_var, var, unbias)
    }
}

impl BatchNorm {
    /// Evaluation mode with the running statistics, then `end`, in one op.
    fn eval(&self, xs: &Tensor, end: EvalEnd) -> Result<Tensor> {
        let params = EvalParams {
            gamma: &self.gamma,
            beta: &self.beta,
            running_mean: self.running_mean.as_tensor(),
            running_var: self.running_var.as_tensor(),
            eps: self.eps,
        };
        batch_norm_eval(xs, params, end)
    }

    /// The normalisation, then max(., 0) if `relu`: one op on the CPU.
    fn forward_maybe_relu(&self, xs: &Tensor, train: bool, relu: bool) -> Result<Tensor> {
        match (runs_here(xs), train) {
            (true, true) => {
                let (ys, stats) = batch_norm_train(xs, &self.gamma, &self.beta, self.eps, relu)?;
                self.update_running(&stats.mean, &stats.var, stats.count)?;
                Ok(ys)
            }
            (true, false) => self.eval(xs, if relu { EvalEnd::Relu } else { EvalEnd::Linear }),
            (false, _) => {
                let ys = self.candle.forward_t(xs, train)?;
                if relu {
                    kernels::relu::relu(&ys)
                } else {
                    Ok(ys)
                }
            }
        }
    }
}

impl ModuleT for BatchNorm {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_maybe_relu(xs, train, false)
    }
}

impl ThenRelu for BatchNorm {
    fn forward_relu_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_maybe_relu(xs, train, true)
    }

    fn forward_add_relu_t(&self, xs: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor> {
        match (runs_here(xs) && runs_here(residual), train) {
            (true, true) => {
                let (ys, stats) =
                    batch_norm_add_relu_train(xs, &self.gamma, &self.beta, residual, self.eps)?;
                self.update_running(&stats.mean, &stats.var, stats.count)?;
                Ok(ys)
            }
            (true, false) => self.eval(xs, EvalEnd::AddRelu(residual)),
            (false, _) => add_relu(&self.forward_t(xs, train)?, residual),
        }
    }
}

/// A layer that ends in batch normalisation, whose ReLU can be part of the same op.
///
/// Fused, the ReLU costs no pass of its own and no gradient of its own for Candle's
/// backward pass to zero and add up (5 % of a conv net's training step).
pub trait ThenRelu: ModuleT {
    /// `relu(self.forward_t(xs, train))`.
    fn forward_relu_t(&self, xs: &Tensor, train: bool) -> Result<Tensor>;

    /// `relu(self.forward_t(xs, train) + residual)`, the end of a residual block.
    fn forward_add_relu_t(&self, xs: &Tensor, residual: &Tensor, train: bool) -> Result<Tensor>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::normal_tensor;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;
    use kernels::testing::max_abs_diff;

    /// Three training steps then evaluation: the same outputs and running statistics
    /// as Candle's `BatchNorm` on its own copy of the variables.
    #[test]
    fn running_statistics_follow_candles() {
        let dev = Device::Cpu;
        let (ours_map, theirs_map) = (VarMap::new(), VarMap::new());
        let ours = batch_norm(
            6,
            1e-5,
            VarBuilder::from_varmap(&ours_map, DType::F32, &dev),
        )
        .unwrap();
        let theirs = candle_nn::batch_norm(
            6,
            1e-5,
            VarBuilder::from_varmap(&theirs_map, DType::F32, &dev),
        )
        .unwrap();
        for step in 0..3 {
            let xs = ((normal_tensor(&[5, 6, 4, 4], step) * 1.5).unwrap() + step as f64).unwrap();
            let a = ours.forward_t(&xs, true).unwrap();
            let b = theirs.forward_t(&xs, true).unwrap();
            assert!(max_abs_diff(&a, &b) < 1e-4, "step {step}");
        }
        let xs = normal_tensor(&[5, 6, 4, 4], 3);
        let a = ours.forward_t(&xs, false).unwrap();
        let b = theirs.forward_t(&xs, false).unwrap();
        assert!(max_abs_diff(&a, &b) < 1e-4, "evaluation");
        let data = |m: &VarMap, name: &str| m.data().lock().unwrap()[name].as_tensor().clone();
        for name in ["running_mean", "running_var"] {
            assert!(
                max_abs_diff(&data(&ours_map, name), &data(&theirs_map, name)) < 1e-5,
                "{name}"
            );
        }
    }
}
