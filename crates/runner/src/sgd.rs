//! SGD with momentum and weight decay, with PyTorch's semantics (torch.optim.SGD,
//! dampening 0, not Nesterov):
//!
//! ```text
//! g = grad + weight_decay * w
//! b = g                    on the first step
//! b = momentum * b + g     afterwards
//! w = w - lr * b
//! ```
//!
//! Only trainable variables are given to it: BatchNorm running statistics get neither
//! momentum nor weight decay.

use candle_core::{backprop::GradStore, Result, Tensor, Var};
use std::collections::HashMap;

pub struct Sgd {
    params: Vec<(String, Var)>,
    /// Momentum buffers, one per parameter, created at the first step.
    buffers: Vec<Option<Tensor>>,
    momentum: f64,
    weight_decay: f64,
}

impl Sgd {
    pub fn new(params: Vec<(String, Var)>, momentum: f64, weight_decay: f64) -> Self {
        let buffers = vec![None; params.len()];
        Self {
            params,
            buffers,
            momentum,
            weight_decay,
        }
    }

    /// The momentum buffers that exist so far, by parameter name (for checkpoints).
    pub fn buffers(&self) -> HashMap<String, Tensor> {
        self.params
            .iter()
            .zip(&self.buffers)
            .filter_map(|((name, _), b)| b.as_ref().map(|b| (name.clone(), b.clone())))
            .collect()
    }

    /// Restores buffers saved by `buffers`; a parameter absent from `saved` has none yet.
    pub fn restore_buffers(&mut self, saved: &HashMap<String, Tensor>) -> Result<()> {
        for ((name, var), buffer) in self.params.iter().zip(self.buffers.iter_mut()) {
            *buffer = match saved.get(name) {
                // A copy of its own, since the buffer is updated in place.
                Some(b) if b.shape() == var.shape() => Some(b.to_device(var.device())?.copy()?),
                Some(b) => candle_core::bail!(
                    "momentum buffer {name} has shape {:?}, the parameter {:?}",
                    b.shape(),
                    var.shape()
                ),
                None => None,
            };
        }
        Ok(())
    }

    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        let rule = kernels::sgd::Rule {
            lr,
            momentum: self.momentum,
            weight_decay: self.weight_decay,
        };
        for ((name, var), buffer) in self.params.iter().zip(self.buffers.iter_mut()) {
            let Some(grad) = grads.get(var.as_tensor()) else {
                candle_core::bail!("parameter {name} received no gradient")
            };
            // After the first step, on the CPU: the buffer and the weight updated in
            // place, in two passes, with the numbers of the operations below.
            if let Some(prev) = buffer.as_ref().filter(|_| self.momentum != 0.0) {
                if kernels::sgd::in_place_here(var.as_tensor(), grad, prev) {
                    kernels::sgd::momentum_step(var.as_tensor(), grad, prev, rule)?;
                    continue;
                }
            }
            // Detached: the update must not record a graph. A momentum buffer that kept
            // one would hold every earlier step's graph alive (memory grows per step).
            let w = &var.as_tensor().detach();
            let grad = grad.detach();
            let g = if self.weight_decay != 0.0 {
                (grad + (w * self.weight_decay)?)?
            } else {
                grad
            };
            let b = match buffer.take() {
                Some(prev) if self.momentum != 0.0 => ((prev * self.momentum)? + g)?,
                // From the next step on a momentum buffer is updated in place, so it
                // must not be the gradient's own memory, as `g` is without weight decay.
                // A copy of the gradient's values alone: `copy` would clone all the
                // storage behind a gradient that is a slice (vendor/README.md).
                _ if self.momentum != 0.0 && self.weight_decay == 0.0 => g.force_contiguous()?,
                _ => g,
            };
            var.set(&(w - (&b * lr)?)?)?;
            *buffer = Some(b);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn two_steps_match_numbers_computed_by_hand() {
        // loss = sum(w * x) with x = [1, 2]: grad = x whatever w is.
        let w = Var::new(&[1.0f32, -1.0], &Device::Cpu).unwrap();
        let x = Tensor::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
        let mut sgd = Sgd::new(vec![("w".into(), w.clone())], 0.9, 0.1);

        let grads = (w.as_tensor() * &x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        sgd.step(&grads, 0.5).unwrap();
        // g = [1 + 0.1*1, 2 + 0.1*(-1)] = [1.1, 1.9]; b = g; w = [1 - 0.55, -1 - 0.95]
        let after1 = w.as_tensor().to_vec1::<f32>().unwrap();
        assert!(
            (after1[0] - 0.45).abs() < 1e-6 && (after1[1] + 1.95).abs() < 1e-6,
            "{after1:?}"
        );

        let grads = (w.as_tensor() * &x)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        sgd.step(&grads, 0.5).unwrap();
        // g = [1 + 0.045, 2 - 0.195] = [1.045, 1.805]
        // b = 0.9*[1.1, 1.9] + g = [2.035, 3.515]; w = [0.45 - 1.0175, -1.95 - 1.7575]
        let after2 = w.as_tensor().to_vec1::<f32>().unwrap();
        assert!((after2[0] + 0.5675).abs() < 1e-5, "{after2:?}");
        assert!((after2[1] + 3.7075).abs() < 1e-5, "{after2:?}");
    }

    #[test]
    fn momentum_buffers_and_weights_carry_no_graph() {
        let w = Var::new(&[1.0f32, 2.0], &Device::Cpu).unwrap();
        let mut sgd = Sgd::new(vec![("w".into(), w.clone())], 0.9, 0.1);
        for _ in 0..3 {
            let grads = w
                .as_tensor()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            sgd.step(&grads, 0.1).unwrap();
        }
        let buffer = sgd.buffers[0].as_ref().unwrap();
        assert!(!buffer.track_op(), "buffer keeps a graph");
    }

    #[test]
    fn missing_gradient_is_an_error() {
        let w = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let other = Var::new(&[1.0f32], &Device::Cpu).unwrap();
        let grads = other.as_tensor().sum_all().unwrap().backward().unwrap();
        let mut sgd = Sgd::new(vec![("w".into(), w)], 0.9, 0.0);
        assert!(sgd.step(&grads, 0.1).is_err());
    }
}
