//! How the kernels split their work between the compute threads.
//!
//! They run on Candle's own CPU thread pool (`candle_core::utils::barrier_pool`): the
//! calling thread plus `CANDLE_NUM_THREADS - 1` workers. A pool of our own (rayon's
//! global one) would make two pools of busy threads on a machine with two cores: after
//! each of our ops its workers keep spinning while Candle's own worker spins after each
//! of Candle's ops, and each takes cycles the other pool is computing with (measured: 6 %
//! of a two-thread step was Candle's worker spinning). With one pool the threads that
//! compute are the threads that wait.
//!
//! A batch is cut into tasks of a fixed number of images (a dense layer's product into
//! blocks of output rows), and each thread takes the next task when it is free: on a
//! shared machine one thread is often slower, and with one fixed half of the batch per
//! thread the other waited for it (4 % of a two-thread step). Partial sums are kept per task and added up in task order, so the numbers do
//! not depend on which thread did what, nor on the thread count: a training run gives
//! the same numbers on every rerun, with one thread or two.

use candle_core::utils::barrier_pool;
use std::mem::MaybeUninit;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Images per task: a batch of 128 makes 16 tasks, enough for two threads to even out.
const IMAGES_PER_TASK: usize = 8;

/// Below this many values an op runs on the calling thread alone: handing a few
/// thousand values to another thread costs more than it saves (an MLP of width 64 at
/// batch 128 has 8192 per layer; PyTorch's grain size is 32768 for the same reason).
const PARALLEL_MIN_VALUES: usize = 32 * 1024;

/// Elementwise work is cut into this many tasks per thread.
const TASKS_PER_THREAD: usize = 4;

/// The compute threads: the calling thread and the pool's workers.
fn threads() -> usize {
    barrier_pool().n_workers() + 1
}

/// Runs `task(scratch, 0)`, ..., `task(scratch, tasks - 1)` and returns their results in
/// that order. With `parallel`, on every compute thread, each taking the next task when
/// it is free; `scratch()` makes a thread's working memory, once per thread that gets a
/// task.
fn run_tasks<S, T: Send>(
    tasks: usize,
    parallel: bool,
    scratch: impl Fn() -> S + Sync,
    task: impl Fn(&mut S, usize) -> T + Sync,
) -> Vec<T> {
    if !parallel || tasks <= 1 || threads() == 1 {
        let mut s = scratch();
        return (0..tasks).map(|i| task(&mut s, i)).collect();
    }
    let results: Vec<Mutex<Option<T>>> = (0..tasks).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    // `task` must not panic: the pool would re-raise it here, but Candle's pool lock
    // would stay poisoned for every later op (the kernels' tasks only index within
    // bounds).
    barrier_pool().execute(|_| {
        let mut s = None;
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = results.get(i) else { break };
            let result = task(s.get_or_insert_with(&scratch), i);
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        }
    });
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("the threads take every task before the pool returns")
        })
        .collect()
}

/// Cuts `out` into consecutive parts of `len` values (the last may be shorter) and runs
/// `f(scratch, offset, part)` on each, as tasks; `offset` is where the part starts.
fn map_parts<E: Send, S, T: Send>(
    out: &mut [E],
    len: usize,
    parallel: bool,
    scratch: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, usize, &mut [E]) -> T + Sync,
) -> Vec<T> {
    let parts: Vec<Mutex<Option<&mut [E]>>> = out
        .chunks_mut(len.max(1))
        .map(|c| Mutex::new(Some(c)))
        .collect();
    run_tasks(parts.len(), parallel, scratch, |s, i| {
        let part = parts[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .expect("each part is one task");
        f(s, i * len, part)
    })
}

/// Cuts a batch of `images` into tasks of a few images each: `f` gets the thread's
/// scratch (from `scratch()`), a range of image indices and the matching part of `out`
/// (`per_image` values each), and returns a partial result; the results come back in
/// the images' order.
pub(super) fn for_image_chunks<E: Send, S, T: Send>(
    images: usize,
    out: &mut [E],
    per_image: usize,
    scratch: impl Fn() -> S + Sync,
    f: impl Fn(&mut S, Range<usize>, &mut [E]) -> T + Sync,
) -> Vec<T> {
    if per_image == 0 {
        return vec![f(&mut scratch(), 0..images, out)];
    }
    let parallel = out.len() >= PARALLEL_MIN_VALUES;
    map_parts(
        out,
        IMAGES_PER_TASK * per_image,
        parallel,
        scratch,
        |s, offset, part| {
            let start = offset / per_image;
            f(s, start..start + part.len() / per_image, part)
        },
    )
}

/// Multiply-adds per task of a matrix product cut by rows, at least: a few microseconds
/// of work, well above what handing a task to another thread costs.
const PRODUCT_TASK_MACS: usize = 256 * 1024;

/// A product's task has whole sixteens of rows: each block packs the right-hand factor
/// again, and with 16 rows or more that stays under a sixteenth of the block's work.
const PRODUCT_ROW_GROUP: usize = 16;

/// Cuts the `rows` rows of a matrix product's output `out` (`per_row` values each,
/// costing `macs_per_row` multiply-adds each) into blocks of at least
/// `PRODUCT_TASK_MACS` and runs `f(rows, part)` on each block and its part of `out`, on
/// the compute threads when there is more than one block. The blocks depend on the
/// sizes only, so each value is summed the same way whatever the thread count.
///
/// # Panics
/// When `out` does not hold `rows * per_row` values (a bug in the calling kernel).
pub(super) fn for_row_blocks<E: Send>(
    rows: usize,
    out: &mut [E],
    per_row: usize,
    macs_per_row: usize,
    f: impl Fn(Range<usize>, &mut [E]) + Sync,
) {
    assert_eq!(
        out.len(),
        rows * per_row,
        "row blocks: output of the wrong size"
    );
    if per_row == 0 || rows == 0 {
        return f(0..rows, out);
    }
    let block = (PRODUCT_TASK_MACS / macs_per_row.max(1))
        .max(1)
        .next_multiple_of(PRODUCT_ROW_GROUP)
        .min(rows);
    map_parts(
        out,
        block * per_row,
        rows > block,
        || (),
        |_, offset, part| {
            let start = offset / per_row;
            f(start..start + part.len() / per_row, part)
        },
    );
}

/// Cuts a batch of `images` (`values` values in all) into tasks of a few images each
/// and maps each range of image indices with `f` (partial sums, to be added up by the
/// caller in the order they come back).
pub(super) fn map_image_chunks<T: Send>(
    images: usize,
    values: usize,
    f: impl Fn(Range<usize>) -> T + Sync,
) -> Vec<T> {
    // Below the parallel size, one task: the sums come out as one pass over the batch
    // gives them (an MLP's batch norm: its runs' numbers stay those of finished runs).
    // The choice depends on sizes only, never on the thread count.
    if values < PARALLEL_MIN_VALUES {
        return vec![f(0..images)];
    }
    let tasks = images.div_ceil(IMAGES_PER_TASK).max(1);
    run_tasks(
        tasks,
        true,
        || (),
        |_, i| f(i * IMAGES_PER_TASK..((i + 1) * IMAGES_PER_TASK).min(images)),
    )
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
/// `out` starting at `offset`.
pub(super) fn for_parts<E: Send>(out: &mut [E], f: impl Fn(usize, &mut [E]) + Sync) {
    if out.len() < PARALLEL_MIN_VALUES {
        return f(0, out);
    }
    let len = out.len().div_ceil(threads() * TASKS_PER_THREAD);
    map_parts(out, len, true, || (), |_, offset, part| f(offset, part));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ranges_cover_the_batch_once_in_order() {
        // Large enough to be split whatever the thread count, and a last task that is
        // not full.
        let (images, per_image) = (3 * IMAGES_PER_TASK + 5, PARALLEL_MIN_VALUES / 4);
        let mut out = vec![0usize; images * per_image];
        let ranges = for_image_chunks(
            images,
            &mut out,
            per_image,
            || (),
            |_, range, part| {
                assert_eq!(part.len(), range.len() * per_image);
                for (i, image) in range.clone().zip(part.chunks_mut(per_image)) {
                    image.fill(i + 1);
                }
                range
            },
        );
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(images));
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
        for (i, image) in out.chunks(per_image).enumerate() {
            assert!(image.iter().all(|&v| v == i + 1), "image {i}");
        }
        let mapped = map_image_chunks(images, images * per_image, |range| range);
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

    #[test]
    fn scratch_is_made_once_per_thread_that_works() {
        let made = AtomicUsize::new(0);
        let mut out = vec![0u8; 64 * PARALLEL_MIN_VALUES];
        let scratch = || made.fetch_add(1, Ordering::Relaxed);
        let tasks = for_image_chunks(64, &mut out, PARALLEL_MIN_VALUES, scratch, |_, r, _| r);
        assert_eq!(tasks.len(), 64 / IMAGES_PER_TASK);
        let made = made.into_inner();
        assert!((1..=threads()).contains(&made), "{made} scratches");
    }
}
