//! One step of SGD with momentum for one parameter, in place (`runner::sgd` has the
//! rule and PyTorch's semantics).
//!
//! Written as tensor operations, the step is seven of them (weight decay, the momentum
//! buffer's update, the weight's update), each a pass over the parameter into a new
//! allocation: a tenth of an MLP's training step. Here it is two passes that write into
//! the buffer and the weight, with the same numbers bit for bit: each operation in the
//! same order, rounded to f32 as Candle's are, and `x * c` as Candle's `affine` computes
//! it (`x * c + 0.0`, which turns a -0.0 into 0.0).

use super::{for_parts, runs_here};
use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result, Tensor};

/// The step's hyperparameters.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub lr: f64,
    pub momentum: f64,
    pub weight_decay: f64,
}

/// Whether `momentum_step` runs on these tensors: f32 on the CPU, each laid out
/// contiguously (a parameter and its buffer always are).
pub fn in_place_here(w: &Tensor, grad: &Tensor, buffer: &Tensor) -> bool {
    [w, grad, buffer]
        .iter()
        .all(|t| runs_here(t) && t.is_contiguous() && t.shape() == w.shape())
}

/// `buffer = momentum * buffer + (grad + weight_decay * w)`, then
/// `w = w - lr * buffer`, both in place. Where `in_place_here` is false, an error.
pub fn momentum_step(w: &Tensor, grad: &Tensor, buffer: &Tensor, rule: Rule) -> Result<()> {
    if !in_place_here(w, grad, buffer) {
        candle_core::bail!("sgd: the parameter, its gradient and its buffer must be contiguous f32 of one shape on the CPU")
    }
    buffer.inplace_op3(grad, w, &UpdateBuffer(rule))?;
    w.inplace_op2(buffer, &UpdateWeight(rule))
}

/// A contiguous f32 destination's values.
fn values_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout) -> Result<&'a mut [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((start, end))) => Ok(&mut v[start..end]),
        _ => candle_core::bail!("sgd: the destination must be contiguous f32"),
    }
}

/// In the buffer: `b = (b * momentum + 0) + g` with `g = grad + (w * weight_decay + 0)`
/// (just `grad` without weight decay, as `runner::sgd` skips that operation).
struct UpdateBuffer(Rule);

impl InplaceOp3 for UpdateBuffer {
    fn name(&self) -> &'static str {
        "sgd-momentum-buffer"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<()> {
        let b = values_mut(dst, dst_l)?;
        let grad = super::contiguous_f32(gs, gl, self.name())?;
        let w = super::contiguous_f32(ws, wl, self.name())?;
        if grad.len() != b.len() || w.len() != b.len() {
            candle_core::bail!("sgd: parameter, gradient and buffer differ in size")
        }
        let (mu, wd) = (self.0.momentum as f32, self.0.weight_decay as f32);
        let decays = self.0.weight_decay != 0.0;
        // One loop per case: with the test inside, the loop stayed scalar.
        for_parts(b, |at, part| {
            let (grad, w) = (&grad[at..at + part.len()], &w[at..at + part.len()]);
            if decays {
                for ((b, &g), &w) in part.iter_mut().zip(grad).zip(w) {
                    *b = (*b * mu + 0.0) + (g + (w * wd + 0.0));
                }
            } else {
                for (b, &g) in part.iter_mut().zip(grad) {
                    *b = (*b * mu + 0.0) + g;
                }
            }
        });
        Ok(())
    }
}

/// In the weight: `w = w - (b * lr + 0)`.
struct UpdateWeight(Rule);

impl InplaceOp2 for UpdateWeight {
    fn name(&self) -> &'static str {
        "sgd-weight"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<()> {
        let w = values_mut(dst, dst_l)?;
        let b = super::contiguous_f32(bs, bl, self.name())?;
        if b.len() != w.len() {
            candle_core::bail!("sgd: parameter and buffer differ in size")
        }
        let lr = self.0.lr as f32;
        for_parts(w, |at, part| {
            let b = &b[at..at + part.len()];
            for (w, &b) in part.iter_mut().zip(b) {
                *w -= b * lr + 0.0;
            }
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::normal;
    use candle_core::Device;

    /// The step as `runner::sgd` writes it in tensor operations.
    fn by_tensor_ops(w: &Tensor, grad: &Tensor, b: &Tensor, r: Rule) -> (Tensor, Tensor) {
        let g = if r.weight_decay != 0.0 {
            (grad + (w * r.weight_decay).unwrap()).unwrap()
        } else {
            grad.clone()
        };
        let b = ((b * r.momentum).unwrap() + g).unwrap();
        let w = (w - (&b * r.lr).unwrap()).unwrap();
        (w, b)
    }

    /// Fails at the first value whose bits differ.
    fn assert_same_bits(ours: &Tensor, want: &Tensor, what: &str) {
        let (a, b): (Vec<f32>, Vec<f32>) = (ours.to_vec1().unwrap(), want.to_vec1().unwrap());
        if let Some(i) = (0..a.len()).find(|&i| a[i].to_bits() != b[i].to_bits()) {
            panic!(
                "{what}: value {i} is {:e}, the tensor operations give {:e}",
                a[i], b[i]
            );
        }
    }

    #[test]
    fn matches_the_tensor_operations_bit_for_bit() {
        // Large enough to be split between threads, plus zeros of both signs, a NaN and
        // an infinity among the values: at the same places in all three tensors (where
        // the `+ 0.0` of Candle's affine decides the sign of a zero), then shifted.
        let n = 70_001;
        let special = [0.0f32, -0.0, f32::NAN, f32::INFINITY, -0.0, 1e-38, -0.0];
        let with_specials = |seed: u64, shift: bool| {
            let mut v: Vec<f32> = normal(&[n], 0.0, 1.0, seed).to_vec1().unwrap();
            v[..special.len()].copy_from_slice(&special);
            if shift {
                v.rotate_left(seed as usize % 3);
            }
            Tensor::from_vec(v, n, &Device::Cpu).unwrap()
        };
        let cases = [(1e-4, false), (1e-4, true), (0.0, false), (0.0, true)];
        for (i, (weight_decay, shift)) in cases.into_iter().enumerate() {
            let rule = Rule {
                lr: 0.1,
                momentum: 0.9,
                weight_decay,
            };
            let s = 3 * i as u64;
            let w0 = with_specials(s, shift);
            let (grad, b0) = (with_specials(s + 1, shift), with_specials(s + 2, shift));
            let (want_w, want_b) = by_tensor_ops(&w0, &grad, &b0, rule);
            let (w, b) = (w0.copy().unwrap(), b0.copy().unwrap());
            momentum_step(&w, &grad, &b, rule).unwrap();
            let case = format!("weight decay {weight_decay}, shifted {shift}");
            assert_same_bits(&b, &want_b, &format!("buffer, {case}"));
            assert_same_bits(&w, &want_w, &format!("weight, {case}"));
        }
    }

    #[test]
    fn other_tensors_are_refused() {
        let w = normal(&[4], 0.0, 1.0, 1);
        let rule = Rule {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
        };
        let short = normal(&[3], 0.0, 1.0, 2);
        assert!(momentum_step(&w, &short, &w.copy().unwrap(), rule).is_err());
        let f64s = w.to_dtype(candle_core::DType::F64).unwrap();
        assert!(momentum_step(&f64s, &f64s.copy().unwrap(), &f64s.copy().unwrap(), rule).is_err());
    }
}
