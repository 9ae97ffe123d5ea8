//! Our own CPU kernels, as Candle custom ops with backward passes, where the profile of
//! a training step showed Candle's generic operations spending the time (issue 5,
//! "Training as fast as PyTorch"): the convolution (`conv2d`), batch normalisation
//! (`batch_norm`), ReLU (`relu`). Each is f32 on the CPU; on any other device or dtype
//! (`runs_here` is false) the callers use Candle's own operations, so a CUDA build
//! computes what it always did.

pub mod batch_norm;
pub mod conv2d;
mod gemm;
mod im2col;
pub mod relu;
#[cfg(test)]
mod test_support;

use candle_core::{CpuStorage, DType, Layout, Result, Tensor};
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::ops::Range;

/// Whether our kernels compute on `t`: f32 on the CPU. Elsewhere Candle's operations do.
pub fn runs_here(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// The compute threads Candle was started with (`RAYON_NUM_THREADS`), which our kernels
/// share.
fn threads() -> usize {
    candle_core::utils::get_num_threads().max(1)
}

/// Below this many values an op runs on one thread: handing a few thousand values to
/// another thread costs more than it saves (an MLP of width 64 at batch 128 has 8192
/// per layer; PyTorch's grain size is 32768 for the same reason).
const PARALLEL_MIN_VALUES: usize = 32 * 1024;

/// Threads to split `values` values over.
fn threads_for(values: usize) -> usize {
    if values < PARALLEL_MIN_VALUES {
        1
    } else {
        threads()
    }
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

/// Splits a batch of `images` between the compute threads: `f` gets a contiguous range
/// of image indices and the matching part of `out` (`per_image` values each) and returns
/// a partial result; one range per thread, so per-thread buffers are allocated once.
fn for_image_ranges<E: Send, T: Send>(
    images: usize,
    out: &mut [E],
    per_image: usize,
    f: impl Fn(Range<usize>, &mut [E]) -> T + Sync,
) -> Vec<T> {
    let threads = threads_for(out.len()).min(images).max(1);
    let per_range = images.div_ceil(threads).max(1);
    if threads == 1 || per_image == 0 {
        return vec![f(0..images, out)];
    }
    out.par_chunks_mut(per_range * per_image)
        .enumerate()
        .map(|(i, part)| {
            let start = i * per_range;
            f(start..start + part.len() / per_image, part)
        })
        .collect()
}

/// Splits a batch of `images` (`values` values in all) into one contiguous range per
/// compute thread and maps each with `f` (per-thread partial sums, to be added up by
/// the caller).
fn map_image_ranges<T: Send>(
    images: usize,
    values: usize,
    f: impl Fn(Range<usize>) -> T + Sync,
) -> Vec<T> {
    let threads = threads_for(values).min(images).max(1);
    let per_range = images.div_ceil(threads).max(1);
    if threads == 1 {
        return vec![f(0..images)];
    }
    (0..threads)
        .into_par_iter()
        .map(|i| f(i * per_range..((i + 1) * per_range).min(images)))
        .collect()
}

/// `len` zeros, written by the compute threads in parallel (a serial `vec![0.0; len]`
/// of a conv layer's output was a visible part of the single-threaded remainder of a
/// two-thread training step).
fn zeros(len: usize) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    let spare = &mut v.spare_capacity_mut()[..len];
    let threads = threads_for(len);
    let part = len.div_ceil(threads).max(1);
    let zero =
        |chunk: &mut [std::mem::MaybeUninit<f32>]| chunk.fill(std::mem::MaybeUninit::new(0.0));
    if threads == 1 {
        zero(spare);
    } else {
        spare.par_chunks_mut(part).for_each(zero);
    }
    // SAFETY: all `len` elements were initialised just above.
    unsafe { v.set_len(len) };
    v
}

/// `out[i] = f(i)`-style elementwise work: `f(offset, part)` fills `part`, the slice of
/// `out` starting at `offset`, one contiguous part per compute thread.
fn for_parts<E: Send>(out: &mut [E], f: impl Fn(usize, &mut [E]) + Sync) {
    let threads = threads_for(out.len());
    let part = out.len().div_ceil(threads).max(1);
    if threads == 1 {
        f(0, out);
    } else {
        out.par_chunks_mut(part)
            .enumerate()
            .for_each(|(i, chunk)| f(i * part, chunk));
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
