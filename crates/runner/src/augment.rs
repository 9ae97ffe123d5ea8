//! The paper's training augmentation: pad each side with zeros, crop a random window of
//! the original size, flip horizontally with probability 1/2. Applied to normalised
//! images, so the padding is the mean (zero after normalisation), as in the paper's
//! mean-subtracted input. The draws come from the run's seeded stream, so a run's
//! augmentations are the same every time it is trained.

use experiment::Augment;
use models::rng::SeededRng;

/// Augments every image of `batch` ((channels, rows, cols) each, one after another).
pub fn augment_in_place(
    batch: &mut [f32],
    shape: [usize; 3],
    augment: &Augment,
    rng: &mut SeededRng,
) {
    let [channels, rows, cols] = shape;
    let dim = channels * rows * cols;
    let pad = augment.pad as isize;
    let mut source = vec![0f32; dim];
    for image in batch.chunks_exact_mut(dim.max(1)) {
        // Offsets of the crop window in the padded image, in [0, 2 * pad].
        let dy = draw_offset(rng, augment.pad) - pad;
        let dx = draw_offset(rng, augment.pad) - pad;
        let flip = augment.flip && rng.uniform() < 0.5;
        if dy == 0 && dx == 0 && !flip {
            continue;
        }
        source.copy_from_slice(image);
        shift_and_flip(image, &source, shape, dy, dx, flip);
    }
}

/// Writes into `image` the `source` image seen through a window moved by (`dy`, `dx`)
/// pixels (zeros where the window leaves the image), mirrored left-right if `flip`:
/// output (y, x) = source(y + dy, x' + dx), x' = cols - 1 - x when flipped.
fn shift_and_flip(
    image: &mut [f32],
    source: &[f32],
    shape: [usize; 3],
    dy: isize,
    dx: isize,
    flip: bool,
) {
    let [channels, rows, cols] = shape;
    for c in 0..channels {
        for y in 0..rows {
            for x in 0..cols {
                let xm = if flip { cols - 1 - x } else { x };
                let (sy, sx) = (y as isize + dy, xm as isize + dx);
                let inside = (0..rows as isize).contains(&sy) && (0..cols as isize).contains(&sx);
                image[(c * rows + y) * cols + x] = if inside {
                    source[(c * rows + sy as usize) * cols + sx as usize]
                } else {
                    0.0
                };
            }
        }
    }
}

fn draw_offset(rng: &mut SeededRng, pad: usize) -> isize {
    if pad == 0 {
        return 0;
    }
    // uniform() is in [0, 1): floor maps it onto 0..=2*pad evenly.
    ((rng.uniform() * (2 * pad + 1) as f64) as isize).min(2 * pad as isize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Vec<f32> {
        // Two 3x3 single-channel images with distinct values.
        (1..=18).map(|v| v as f32).collect()
    }

    fn run(seed: u64, augment: Augment) -> Vec<f32> {
        let mut batch = ramp();
        let mut rng = SeededRng::for_stream(seed, "augment/epoch-1");
        augment_in_place(&mut batch, [1, 3, 3], &augment, &mut rng);
        batch
    }

    #[test]
    fn deterministic_for_a_seed_and_changes_with_it() {
        let a = Augment { pad: 1, flip: true };
        assert_eq!(run(1, a), run(1, a));
        let differs = (2..10).any(|s| run(s, a) != run(1, a));
        assert!(differs);
        assert_ne!(run(1, a), ramp(), "some image was moved");
    }

    #[test]
    fn crops_only_shift_and_pad_with_zeros_and_flips_mirror() {
        let mut seen_flip = false;
        for seed in 0..50 {
            let out = run(seed, Augment { pad: 0, flip: true });
            for (img_out, img_in) in out.chunks(9).zip(ramp().chunks(9)) {
                let mirrored: Vec<f32> = img_in
                    .chunks(3)
                    .flat_map(|r| r.iter().rev().copied())
                    .collect();
                assert!(img_out == img_in || img_out == mirrored.as_slice());
                seen_flip |= img_out == mirrored.as_slice();
            }
            // Shifted crops: every value is an input value of the same image, or 0.
            let out = run(
                seed,
                Augment {
                    pad: 2,
                    flip: false,
                },
            );
            for (img_out, img_in) in out.chunks(9).zip(ramp().chunks(9)) {
                assert!(img_out.iter().all(|v| *v == 0.0 || img_in.contains(v)));
            }
        }
        assert!(seen_flip);
        assert_eq!(
            run(
                3,
                Augment {
                    pad: 0,
                    flip: false
                }
            ),
            ramp()
        );
    }

    #[test]
    fn shifts_and_flips_put_every_pixel_where_it_belongs() {
        // One 2-channel 2x3 image; channel 1 is channel 0 + 10.
        let source: Vec<f32> = [1., 2., 3., 4., 5., 6.]
            .iter()
            .chain(&[11., 12., 13., 14., 15., 16.])
            .copied()
            .collect();
        let mut out = vec![f32::NAN; 12];
        // Window one row down, one column left: (y, x) shows (y + 1, x - 1).
        shift_and_flip(&mut out, &source, [2, 2, 3], 1, -1, false);
        assert_eq!(out, [0., 4., 5., 0., 0., 0., 0., 14., 15., 0., 0., 0.]);
        // Mirrored, then the window one column right: (y, x) shows (y, 2 - x + 1).
        shift_and_flip(&mut out, &source, [2, 2, 3], 0, 1, true);
        assert_eq!(out, [0., 3., 2., 0., 6., 5., 0., 13., 12., 0., 16., 15.]);
        shift_and_flip(&mut out, &source, [2, 2, 3], 0, 0, true);
        assert_eq!(out, [3., 2., 1., 6., 5., 4., 13., 12., 11., 16., 15., 14.]);
    }

    #[test]
    fn every_offset_is_drawn() {
        let mut rng = SeededRng::for_stream(0, "t");
        let mut seen = [false; 9];
        for _ in 0..500 {
            seen[draw_offset(&mut rng, 4) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
