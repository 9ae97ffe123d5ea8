//! How the kernels split their work between the compute threads.
//!
//! They run on Candle's own CPU thread pool (`candle_core::utils::barrier_pool`): the
//! calling thread plus `CANDLE_NUM_THREADS - 1` workers. An earlier version used rayon's
//! global pool, which made two pools of busy threads on a machine with two cores: after
//! each of our ops rayon's workers kept spinning while Candle's own worker spun after
//! each of Candle's ops, and each took cycles the other pool was computing with (6 % of a
//! two-thread step was Candle's worker spinning). With one pool the threads that compute
//! are the threads that wait.
//!
//! The split is static, one contiguous part per thread, in a fixed order, so that
//! per-thread partial sums are added up in the same order every time: a training run
//! gives the same numbers on every rerun with the same thread count.

use candle_core::utils::barrier_pool;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::Mutex;

/// The compute threads: the calling thread and the pool's workers.
fn threads() -> usize {
    barrier_pool().n_workers() + 1
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

/// Runs `f(0)`, ..., `f(parts - 1)`, each on its own compute thread (`parts` is at most
/// `threads()`), and returns their results in that order.
fn run_parts<T: Send>(parts: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    if parts <= 1 {
        return (0..parts).map(f).collect();
    }
    let results: Vec<Mutex<Option<T>>> = (0..parts).map(|_| Mutex::new(None)).collect();
    // `f` must not panic: the pool would re-raise it here, but Candle's pool lock would
    // stay poisoned for every later op (the kernels' closures only index within bounds).
    barrier_pool().execute(|thread| {
        if let Some(slot) = results.get(thread) {
            let result = f(thread);
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("the pool runs every thread index up to its size, and parts <= threads()")
        })
        .collect()
}

/// Splits `out` into consecutive parts of `len` values (the last may be shorter) and
/// runs `f(offset, part)` on each, one part per thread; `offset` is where the part
/// starts in `out`.
fn map_parts<E: Send, T: Send>(
    out: &mut [E],
    len: usize,
    f: impl Fn(usize, &mut [E]) -> T + Sync,
) -> Vec<T> {
    let parts: Vec<Mutex<Option<&mut [E]>>> =
        out.chunks_mut(len).map(|c| Mutex::new(Some(c))).collect();
    run_parts(parts.len(), |i| {
        let part = parts[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("each part is taken by one thread");
        f(i * len, part)
    })
}

/// Splits a batch of `images` between the compute threads: `f` gets a contiguous range
/// of image indices and the matching part of `out` (`per_image` values each) and returns
/// a partial result; one range per thread, so per-thread buffers are allocated once.
pub(super) fn for_image_ranges<E: Send, T: Send>(
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
    map_parts(out, per_range * per_image, |offset, part| {
        let start = offset / per_image;
        f(start..start + part.len() / per_image, part)
    })
}

/// Splits a batch of `images` (`values` values in all) into one contiguous range per
/// compute thread and maps each with `f` (per-thread partial sums, to be added up by
/// the caller).
pub(super) fn map_image_ranges<T: Send>(
    images: usize,
    values: usize,
    f: impl Fn(Range<usize>) -> T + Sync,
) -> Vec<T> {
    let threads = threads_for(values).min(images).max(1);
    let per_range = images.div_ceil(threads).max(1);
    let ranges = images.div_ceil(per_range);
    run_parts(ranges.max(1), |i| {
        f(i * per_range..((i + 1) * per_range).min(images))
    })
}

/// `len` zeros, written by the compute threads in parallel (a serial `vec![0.0; len]`
/// of a conv layer's output was a visible part of the single-threaded remainder of a
/// two-thread training step).
pub(super) fn zeros(len: usize) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    for_parts(&mut v.spare_capacity_mut()[..len], |_, part| {
        part.fill(MaybeUninit::new(0.0))
    });
    // SAFETY: all `len` elements were initialised just above.
    unsafe { v.set_len(len) };
    v
}

/// `out[i] = f(i)`-style elementwise work: `f(offset, part)` fills `part`, the slice of
/// `out` starting at `offset`, one contiguous part per compute thread.
pub(super) fn for_parts<E: Send>(out: &mut [E], f: impl Fn(usize, &mut [E]) + Sync) {
    let threads = threads_for(out.len());
    if threads == 1 {
        return f(0, out);
    }
    map_parts(out, out.len().div_ceil(threads).max(1), f);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ranges_cover_the_batch_once_in_order() {
        // Large enough to be split whatever the thread count.
        let (images, per_image) = (7, PARALLEL_MIN_VALUES);
        let mut out = vec![0usize; images * per_image];
        let ranges = for_image_ranges(images, &mut out, per_image, |range, part| {
            assert_eq!(part.len(), range.len() * per_image);
            for (i, image) in range.clone().zip(part.chunks_mut(per_image)) {
                image.fill(i + 1);
            }
            range
        });
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(images));
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        for (i, image) in out.chunks(per_image).enumerate() {
            assert!(image.iter().all(|&v| v == i + 1), "image {i}");
        }
        let mapped = map_image_ranges(images, images * per_image, |range| range);
        assert_eq!(mapped, ranges);
    }

    #[test]
    fn parts_know_their_offsets() {
        let mut out = vec![0usize; 3 * PARALLEL_MIN_VALUES + 5];
        for_parts(&mut out, |at, part| {
            for (i, v) in part.iter_mut().enumerate() {
                *v = at + i;
            }
        });
        assert!(out.iter().enumerate().all(|(i, &v)| v == i));
        assert!(zeros(PARALLEL_MIN_VALUES * 2 + 1).iter().all(|&v| v == 0.0));
    }
}
