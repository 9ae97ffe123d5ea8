//! Bringing the next image into L2 while this one's tiles compute.
//!
//! The kernels copy each image into their padded buffer (`Scratch::load`) before its
//! tiles run. A batch's activations are megabytes, far from L1 and L2 when a layer starts
//! on an image, and that copy waited on memory: 8-9 % of a training step (plain-56,
//! width 16, one Xeon core). Asking for the next image a few cache lines per tile, while
//! this one's tiles keep the arithmetic units busy, cut it to about 5 %.

/// One image of a batch laid out image after image: the kernels read image `index` and
/// bring image `index + 1`, where there is one, into L2 as they go. (The last image of a
/// thread's task asks for the first of the next task, which on two threads the other
/// thread may take: one request in eight images wasted; on one thread it is the next
/// image computed.)
#[derive(Clone, Copy)]
pub struct Image<'a> {
    pub batch: &'a [f32],
    pub index: usize,
}

impl<'a> Image<'a> {
    /// The image's `len` values.
    ///
    /// # Panics
    /// When the batch holds no image `index` of `len` values (a bug in the caller).
    pub(super) fn values(&self, len: usize) -> &'a [f32] {
        self.image(self.index, len)
            .unwrap_or_else(|| panic!("no image {} of {len} values", self.index))
    }

    /// The next image's `len` values, or nothing after the last image.
    pub(super) fn next(&self, len: usize) -> &'a [f32] {
        self.image(self.index + 1, len).unwrap_or(&[])
    }

    fn image(&self, index: usize, len: usize) -> Option<&'a [f32]> {
        self.batch
            .get(index.checked_mul(len)?..(index + 1).checked_mul(len)?)
    }
}

/// Values per cache line.
const LINE: usize = 16;

/// `values` asked into L2 in parts that differ by at most one line, one part per
/// `step`, spread over the `steps` calls of a tile loop: asked all at once, the requests
/// queued behind one another and stalled the tiles they were to hide behind (2-5 %
/// slower).
pub(super) struct Ahead<'a> {
    lines: std::slice::Chunks<'a, f32>,
    count: usize,
    steps: usize,
    done: usize,
}

impl<'a> Ahead<'a> {
    pub(super) fn new(values: &'a [f32], steps: usize) -> Self {
        let lines = values.chunks(LINE);
        Ahead {
            count: lines.len(),
            lines,
            steps: steps.max(1),
            done: 0,
        }
    }

    /// Asks for the next part's cache lines (after the last of `steps` parts, none). A
    /// prefetch reads nothing and cannot fault.
    pub(super) fn step(&mut self) {
        let part = |i: usize| self.count * i.min(self.steps) / self.steps;
        let take = part(self.done + 1) - part(self.done);
        self.done += 1;
        for line in self.lines.by_ref().take(take) {
            #[cfg(target_arch = "x86_64")]
            {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T1};
                // SAFETY: every x86_64 CPU has SSE, and a prefetch only asks for a line.
                unsafe { _mm_prefetch::<_MM_HINT_T1>(line.as_ptr().cast()) };
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = line;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_is_its_own_values_and_the_next_follows() {
        let batch: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let first = Image {
            batch: &batch,
            index: 0,
        };
        assert_eq!(first.values(4), &batch[0..4]);
        assert_eq!(first.next(4), &batch[4..8]);
        let last = Image {
            batch: &batch,
            index: 2,
        };
        assert_eq!(last.values(4), &batch[8..12]);
        assert!(last.next(4).is_empty());
        let alone = Image {
            batch: &batch[..4],
            index: 0,
        };
        assert!(alone.next(4).is_empty());
    }

    #[test]
    #[should_panic(expected = "no image 3 of 4 values")]
    fn an_image_past_the_batch_is_a_bug() {
        let batch = [0f32; 12];
        Image {
            batch: &batch,
            index: 3,
        }
        .values(4);
    }

    #[test]
    fn the_steps_ask_for_every_line_once_in_near_equal_parts() {
        for len in [0, 1, 15, 16, 17, 784, 3136, 12544, 50_000] {
            for steps in [0, 1, 3, 40, 144, 1000] {
                let values = vec![0f32; len];
                let mut ahead = Ahead::new(&values, steps);
                let lines = len.div_ceil(LINE);
                let (least, most) = (lines / steps.max(1), lines.div_ceil(steps.max(1)));
                let mut taken = 0;
                for _ in 0..steps.max(1) {
                    let before = ahead.lines.len();
                    ahead.step();
                    let part = before - ahead.lines.len();
                    assert!((least..=most).contains(&part), "{len} in {steps}: {part}");
                    taken += part;
                }
                assert_eq!(taken, lines, "{len} values in {steps} steps");
                ahead.step();
                assert_eq!(ahead.lines.len(), 0, "{len} in {steps}: lines left");
            }
        }
    }
}
