//! ReLU, alone and after a residual addition, each one pass forward and one backward.
//!
//! Candle's ReLU backward is four operations (zeros, compare, convert, multiply) and the
//! addition before it two more; here the backward is one masked copy. The mask is taken
//! from the output (`y > 0`), as PyTorch's `threshold_backward` does: an input of
//! exactly 0 passes no gradient (Candle's own `relu` passes it), which matters only for
//! exact zeros, such as the zero channels an option-A shortcut adds.

use super::{assume_init, at_least, contiguous_f32, for_parts, runs_here, uninit};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

/// Where the output was positive, the gradient; elsewhere 0.
pub(super) fn masked(res: &Tensor, grad: &Tensor) -> Result<Tensor> {
    res.apply_op2_no_bwd(&grad.contiguous()?, &MaskBackward)
}

struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, "relu")?;
        let mut y = uninit(x.len());
        for_parts(&mut y, |at, ys| {
            for (o, &v) in ys.iter_mut().zip(&x[at..]) {
                o.write(at_least(v, 0.0));
            }
        });
        // SAFETY: the parts cover `y`, each element written once above.
        let y = unsafe { assume_init(y) };
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(masked(res, grad)?))
    }
}

struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "add-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.shape() != l2.shape() {
            candle_core::bail!(
                "add-relu: shapes {:?} and {:?} differ",
                l1.shape(),
                l2.shape()
            )
        }
        let a = contiguous_f32(s1, l1, "add-relu")?;
        let b = contiguous_f32(s2, l2, "add-relu")?;
        let mut y = uninit(a.len());
        for_parts(&mut y, |at, ys| {
            for ((o, &u), &v) in ys.iter_mut().zip(&a[at..]).zip(&b[at..]) {
                o.write(at_least(u + v, 0.0));
            }
        });
        // SAFETY: the parts cover `y` (a and b have its length), each element written.
        let y = unsafe { assume_init(y) };
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        // Both summands get the same gradient: one tensor, shared.
        let g = masked(res, grad)?;
        Ok((Some(g.clone()), Some(g)))
    }
}

/// (output, gradient of the output) -> gradient of the input.
struct MaskBackward;

impl CustomOp2 for MaskBackward {
    fn name(&self) -> &'static str {
        "relu-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let y = contiguous_f32(s1, l1, "relu backward")?;
        let g = contiguous_f32(s2, l2, "relu backward")?;
        if y.len() != g.len() {
            candle_core::bail!("relu backward: {} outputs, {} gradients", y.len(), g.len())
        }
        let mut dx = uninit(y.len());
        for_parts(&mut dx, |at, out| {
            for ((o, &v), &d) in out.iter_mut().zip(&y[at..]).zip(&g[at..]) {
                o.write(if v > 0.0 { d } else { 0.0 });
            }
        });
        // SAFETY: the parts cover `dx` (g has its length, checked), each element written.
        let dx = unsafe { assume_init(dx) };
        Ok((CpuStorage::F32(dx), l1.shape().clone()))
    }
}

/// max(x, 0).
pub fn relu(xs: &Tensor) -> Result<Tensor> {
    if !runs_here(xs) {
        return xs.relu();
    }
    xs.contiguous()?.apply_op1(Relu)
}

/// max(a + b, 0), the end of a residual block.
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if !runs_here(a) || !runs_here(b) {
        return (a + b)?.relu();
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_grads_match, normal_var, rel_err};
    use candle_core::{DType, Device};

    #[test]
    fn match_candles_relu_and_addition_with_their_gradients() {
        let dev = Device::Cpu;
        // Above the one-thread limit, so split between threads where there are several.
        let shape = [13, 3, 33, 33];
        let (a, b) = (
            normal_var(&shape, 0.0, 1.0, 0),
            normal_var(&shape, 0.0, 1.0, 1),
        );
        // Both sides compute the same input exactly (the outputs are equal, not close), so
        // every ReLU takes the same side of its kink and no output is left out.
        let ours = relu(a.as_tensor()).unwrap();
        let theirs = a.as_tensor().relu().unwrap();
        assert_eq!(rel_err(&ours, &theirs), 0.0);
        assert_grads_match(&ours, &theirs, None, &[(&a, "relu input")], "relu");
        let ours = add_relu(a.as_tensor(), b.as_tensor()).unwrap();
        let theirs = (a.as_tensor() + b.as_tensor()).unwrap().relu().unwrap();
        assert_eq!(rel_err(&ours, &theirs), 0.0);
        let inputs = [(&a, "first"), (&b, "second")];
        assert_grads_match(&ours, &theirs, None, &inputs, "add-relu");
        let c = Tensor::zeros((4, 3), DType::F32, &dev).unwrap();
        assert!(add_relu(a.as_tensor(), &c).is_err());
    }

    /// A NaN passes through (PyTorch's ReLU does the same): a diverging run's NaNs must
    /// reach the loss, where the trainer stops the run, not turn into zeros.
    #[test]
    fn nan_stays_nan() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[f32::NAN, -1.0, 2.0], &dev).unwrap();
        let y: Vec<f32> = relu(&x).unwrap().to_vec1().unwrap();
        assert!(y[0].is_nan() && y[1] == 0.0 && y[2] == 2.0, "{y:?}");
        let y: Vec<f32> = add_relu(&x, &x).unwrap().to_vec1().unwrap();
        assert!(y[0].is_nan() && y[1] == 0.0 && y[2] == 4.0, "{y:?}");
    }
}
