//! Matrix transposes between the convolution's two layouts: channel-major (o, h * w), as
//! tensors hold activations, and position-major (h * w, o), as the channel tiles of
//! `same_conv` sum them (16 channels of one position in one register).
//!
//! Element by element, a transpose reads one of its two sides with a stride, one float
//! per load: that gather was a tenth of a training step (plain-56, width 16, on one
//! Zen 5 core). Here 8 x 8 blocks go through AVX2 registers: eight row loads, three
//! rounds of shuffles, eight row stores.

use crate::store::Store;

/// `dst[j * rows + i] = src[i * cols + j]` for i < rows, j < cols: `src` is a
/// rows x cols matrix, row-major, and `dst` receives its transpose.
pub fn transpose<E: Store>(src: &[f32], rows: usize, cols: usize, dst: &mut [E]) {
    assert_eq!(src.len(), rows * cols, "source of the wrong size");
    assert_eq!(dst.len(), rows * cols, "destination of the wrong size");
    let (block_rows, block_cols) = if simd_here() {
        (rows / 8 * 8, cols / 8 * 8)
    } else {
        (0, 0)
    };
    #[cfg(target_arch = "x86_64")]
    if block_rows > 0 && block_cols > 0 {
        let d = E::as_f32_ptr(dst);
        // Rows of blocks outside: a block row's eight source rows stay in L1 while
        // their whole width goes out.
        for i in (0..block_rows).step_by(8) {
            for j in (0..block_cols).step_by(8) {
                // SAFETY: AVX2 is present (`simd_here`); the block's reads at
                // `(i + r) * cols + j + 0..8`, r < 8, are inside `src` (i + 8 <= rows,
                // j + 8 <= cols, src.len() = rows * cols, asserted) and its writes at
                // `(j + r) * rows + i + 0..8` inside `dst` (likewise, dst.len()
                // asserted); `E` stores an f32 in its own four bytes (`Store`).
                unsafe {
                    block8(
                        src.as_ptr().add(i * cols + j),
                        cols,
                        d.add(j * rows + i),
                        rows,
                    )
                }
            }
        }
    }
    // The edges the blocks leave: the last rows % 8 rows, and the last cols % 8 columns
    // of the rows above them.
    for i in 0..rows {
        let from = if i < block_rows { block_cols } else { 0 };
        for j in from..cols {
            dst[j * rows + i].store(src[i * cols + j]);
        }
    }
}

fn simd_here() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The 8 x 8 block at `src` (rows `src_stride` apart) transposed into `dst` (rows
/// `dst_stride` apart).
///
/// # Safety
/// The CPU has AVX2; `src + r * src_stride + 0..8` is readable and
/// `dst + r * dst_stride + 0..8` writable for r < 8.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block8(src: *const f32, src_stride: usize, dst: *mut f32, dst_stride: usize) {
    use std::arch::x86_64::*;
    // SAFETY: the reads and writes are the ones the caller vouches for.
    unsafe {
        let r: [__m256; 8] = std::array::from_fn(|k| _mm256_loadu_ps(src.add(k * src_stride)));
        // Pairs of rows interleaved: (r0 r1) -> a0 b0 a1 b1 | a4 b4 a5 b5 and so on.
        let t = [
            _mm256_unpacklo_ps(r[0], r[1]),
            _mm256_unpackhi_ps(r[0], r[1]),
            _mm256_unpacklo_ps(r[2], r[3]),
            _mm256_unpackhi_ps(r[2], r[3]),
            _mm256_unpacklo_ps(r[4], r[5]),
            _mm256_unpackhi_ps(r[4], r[5]),
            _mm256_unpacklo_ps(r[6], r[7]),
            _mm256_unpackhi_ps(r[6], r[7]),
        ];
        // Quads: columns 0 and 4 of rows 0-3 (s0), 1 and 5 (s1), 2 and 6, 3 and 7; the
        // same of rows 4-7 in s4..s7.
        let s = [
            _mm256_shuffle_ps::<0x44>(t[0], t[2]),
            _mm256_shuffle_ps::<0xEE>(t[0], t[2]),
            _mm256_shuffle_ps::<0x44>(t[1], t[3]),
            _mm256_shuffle_ps::<0xEE>(t[1], t[3]),
            _mm256_shuffle_ps::<0x44>(t[4], t[6]),
            _mm256_shuffle_ps::<0xEE>(t[4], t[6]),
            _mm256_shuffle_ps::<0x44>(t[5], t[7]),
            _mm256_shuffle_ps::<0xEE>(t[5], t[7]),
        ];
        // Column c is the low halves (c < 4) or the high halves (c >= 4) of the quads
        // of rows 0-3 and 4-7.
        for c in 0..4 {
            _mm256_storeu_ps(
                dst.add(c * dst_stride),
                _mm256_permute2f128_ps::<0x20>(s[c], s[c + 4]),
            );
            _mm256_storeu_ps(
                dst.add((c + 4) * dst_stride),
                _mm256_permute2f128_ps::<0x31>(s[c], s[c + 4]),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::MaybeUninit;

    fn by_definition(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        let mut dst = vec![0f32; rows * cols];
        for i in 0..rows {
            for j in 0..cols {
                dst[j * rows + i] = src[i * cols + j];
            }
        }
        dst
    }

    #[test]
    fn every_shape_is_transposed_exactly() {
        // Whole blocks, edges in one dimension, in both, and matrices smaller than a
        // block; the layouts the convolutions use (784 x 16, 196 x 32, 49 x 64).
        let shapes = (1..=17)
            .flat_map(|r| [1, 7, 8, 9, 16, 23].map(|c| (r, c)))
            .chain([(784, 16), (196, 32), (49, 64), (16, 784), (64, 49)]);
        for (rows, cols) in shapes {
            let src: Vec<f32> = (0..rows * cols).map(|v| v as f32 + 0.5).collect();
            let want = by_definition(&src, rows, cols);
            let mut dst = vec![f32::NAN; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            assert_eq!(dst, want, "{rows} x {cols}");
            // The other kind of destination, initialised here to a value no position
            // holds, so that a position left unwritten shows.
            let mut uninit = vec![MaybeUninit::new(-1f32); rows * cols];
            transpose(&src, rows, cols, &mut uninit);
            // SAFETY: every element was initialised above.
            let written: Vec<f32> = uninit.iter().map(|v| unsafe { v.assume_init() }).collect();
            assert_eq!(written, want, "{rows} x {cols}, the other destination type");
        }
    }

    #[test]
    fn non_finite_values_are_carried_as_they_are() {
        let src = [f32::NAN, f32::INFINITY, -0.0, f32::NEG_INFINITY]
            .iter()
            .copied()
            .cycle()
            .take(64)
            .collect::<Vec<_>>();
        let mut dst = vec![0f32; 64];
        transpose(&src, 8, 8, &mut dst);
        let want = by_definition(&src, 8, 8);
        for (a, b) in dst.iter().zip(&want) {
            assert_eq!(a.to_bits(), b.to_bits());
        }
    }
}
