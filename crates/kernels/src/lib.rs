//! Our own CPU kernels, as Candle custom ops with backward passes, where the profile of
//! a training step showed Candle's generic operations spending the time: the
//! convolution (`conv2d`), batch normalisation (`batch_norm`), ReLU (`relu`), the dense
//! layer's product (`linear`), the SGD step's update (`sgd`). Each is f32 on the CPU;
//! on any other device or dtype (`runs_here` is false) the callers use Candle's own
//! operations, so a CUDA build computes what it always did.

pub mod batch_norm;
pub mod conv2d;
mod im2col;
pub mod linear;
mod matmul;
mod parallel;
pub mod relu;
mod same_conv;
pub mod sgd;
mod store;
#[cfg(test)]
mod test_support;
pub mod testing;
mod transpose;

use candle_core::{CpuStorage, DType, Layout, Result, Tensor};

/// The kernels' numerical version. Runs of one configuration give the same numbers bit
/// for bit while this holds; a change that moves them (another summation order, a
/// fused operation, another tile shape) raises it, so that runs and checkpoints of
/// different kernels are told apart rather than mixed.
pub const VERSION: u32 = 4;

/// The instruction set the kernels compute with on this CPU (`DEGRADE_KERNELS=avx2`
/// keeps an AVX-512 machine on the AVX2 path; both give the same numbers).
pub fn cpu_path() -> &'static str {
    match (same_conv::has_avx2_fma(), same_conv::Isa::here()) {
        (false, _) => "generic",
        (true, same_conv::Isa::Avx2) => "avx2+fma",
        (true, same_conv::Isa::Avx512) => "avx512",
    }
}
use parallel::{for_image_chunks, for_parts, map_image_chunks, zeros};
use std::mem::MaybeUninit;

/// Whether our kernels compute on `t`: f32 on the CPU. Elsewhere Candle's operations do.
pub fn runs_here(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// `max(v, floor)`, except that a NaN stays NaN (a diverging run must show it).
///
/// Written as a comparison so that it compiles to one vector max per lane group:
/// `f32::max`'s rule (a NaN gives the other operand) kept these loops scalar, and the
/// scale-and-shift pass of batch norm was 5 % of a training step.
#[inline(always)]
fn at_least(v: f32, floor: f32) -> f32 {
    if v < floor {
        floor
    } else {
        v
    }
}

/// A parameter's gradient, sliced from a backward op's one output beside the input's
/// activation-sized gradient, copied into storage of its own. Candle's backward pass
/// keeps a first gradient as it is (vendor/README.md), so the slice would otherwise
/// keep the whole output, the input's gradient included, until the optimiser step:
/// another activation-sized buffer held per layer. (`Tensor::copy` would not do: it
/// clones the whole storage behind the slice.)
fn apart(slice: &Tensor) -> Result<Tensor> {
    let values = slice.flatten_all()?.to_vec1::<f32>()?;
    Tensor::from_vec(values, slice.shape(), slice.device())
}

/// The input's values, if it is f32 and laid out contiguously (the callers make it so).
fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: only f32 is supported")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: the input must be contiguous"),
    }
}

/// An output buffer whose every element the op writes: allocated without zeroing it
/// (zeroing every activation-sized output was a tenth of a training step).
fn uninit(len: usize) -> Vec<MaybeUninit<f32>> {
    let mut v = Vec::with_capacity(len);
    v.resize_with(len, MaybeUninit::uninit);
    v
}

/// The buffer from `uninit`, once the op has written every element.
///
/// # Safety
/// Every element of `v` must have been written.
unsafe fn assume_init(v: Vec<MaybeUninit<f32>>) -> Vec<f32> {
    let mut v = std::mem::ManuallyDrop::new(v);
    // SAFETY: MaybeUninit<f32> has f32's size and alignment, the elements are
    // initialised (the caller's promise), and the allocation is handed over whole.
    unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<f32>(), v.len(), v.capacity()) }
}

#[cfg(test)]
mod tests {
    use candle_core::{CpuStorage, CustomOp1, Device, Layout, Result, Shape, Tensor, Var};

    /// y = 2x, whose backward pass returns `grad` reshaped to `dims`.
    struct Doubles {
        grad_dims: Vec<usize>,
    }

    impl CustomOp1 for Doubles {
        fn name(&self) -> &'static str {
            "doubles"
        }

        fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
            let x = super::contiguous_f32(s, l, "doubles")?;
            let y = x.iter().map(|v| 2.0 * v).collect();
            Ok((CpuStorage::F32(y), l.shape().clone()))
        }

        fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
            Ok(Some((grad * 2.0)?.reshape(self.grad_dims.as_slice())?))
        }
    }

    /// Candle's backward pass as vendored (vendor/README.md): a tensor's one gradient is
    /// kept as it is, two are added, and a gradient of another shape is an error, as it
    /// was when every gradient was added to zeros.
    #[test]
    fn gradients_are_kept_added_and_checked() {
        let x = Var::new(&[1f32, -2.0, 3.0, 0.5], &Device::Cpu).unwrap();
        let op = || Doubles { grad_dims: vec![4] };
        let once = x.as_tensor().apply_op1(op()).unwrap();
        let grads = once.sum_all().unwrap().backward().unwrap();
        assert_eq!(grads.get(&x).unwrap().to_vec1::<f32>().unwrap(), [2.0; 4]);
        let y = x.as_tensor().apply_op1(op()).unwrap();
        let twice = (&y + x.as_tensor().apply_op1(op()).unwrap()).unwrap();
        let grads = (twice * 3.0)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert_eq!(grads.get(&x).unwrap().to_vec1::<f32>().unwrap(), [12.0; 4]);
        let wrong = x
            .as_tensor()
            .apply_op1(Doubles {
                grad_dims: vec![2, 2],
            })
            .unwrap();
        let err = wrong.sum_all().unwrap().backward().unwrap_err().to_string();
        assert!(err.contains("shape mismatch"), "{err}");
    }
}
