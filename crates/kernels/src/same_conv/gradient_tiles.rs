//! The microkernels of the kernel gradient: taps by 16 output channels, on AVX2 and on
//! AVX-512.

use super::stores::{prefetch_rows, store_rows, store_rows_512};

/// How a gradient tile walks the output positions: `rows` rows of `w` positions (b,
/// dY^T, holds them compact, w per row); along the padded image a, the next position
/// is `step` values on and the next row `row_step` (for stride s, s and s times the
/// padded row).
#[derive(Debug, Clone, Copy)]
pub(super) struct Walk {
    pub(super) rows: usize,
    pub(super) w: usize,
    pub(super) row_step: usize,
    pub(super) step: usize,
}

/// out[t * b_stride + j] += sum over positions (y, x), y < rows, x < w, of
/// a[offsets[t] + y * row_step + x * step] * b[(y * w + x) * b_stride + j], for t < T
/// and j < 16, where `rows`, `w`, `row_step` and `step` are `walk`'s.
///
/// # Safety
/// The CPU has AVX2 and FMA; `offsets` has T entries; `a + offsets[t] + y * row_step +
/// x * step` is readable and `b + (y * w + x) * b_stride + j` too, for every t < T,
/// y < rows, x < w, j < 16; `out + t * b_stride + j` is readable and writable for t < T,
/// j < 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // a register tile reads clearest indexed
pub(super) unsafe fn grad_tile<const T: usize>(
    a: *const f32,
    offsets: &[usize],
    b: *const f32,
    b_stride: usize,
    walk: Walk,
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    debug_assert!(offsets.len() == T);
    let Walk {
        rows,
        w,
        row_step,
        step,
    } = walk;
    // The sums are added to `out` at the end; its lines were last touched a whole image
    // ago (the kernel gradient of a 256-channel layer is 2.4 MB) and came from L3 while
    // the tile waited: 15 % of the tile's time. Fetched now, they arrive during the sum.
    prefetch_rows::<T>(out, b_stride);
    // A fixed-size copy, so that the loads below unroll without a length check.
    let mut offs = [0usize; T];
    offs.copy_from_slice(&offsets[..T]);
    let mut lo = [_mm256_setzero_ps(); T];
    let mut hi = [_mm256_setzero_ps(); T];
    for y in 0..rows {
        for x in 0..w {
            // SAFETY: readable per the contract.
            let (b0, b1) = unsafe {
                let cell = b.add((y * w + x) * b_stride);
                (_mm256_loadu_ps(cell), _mm256_loadu_ps(cell.add(8)))
            };
            for t in 0..T {
                // SAFETY: readable per the contract.
                let at = unsafe { _mm256_broadcast_ss(&*a.add(offs[t] + y * row_step + x * step)) };
                lo[t] = _mm256_fmadd_ps(at, b0, lo[t]);
                hi[t] = _mm256_fmadd_ps(at, b1, hi[t]);
            }
        }
    }
    // SAFETY: readable and writable per the contract.
    unsafe { store_rows(out, b_stride, &lo, &hi, true) }
}

/// `grad_tile` on AVX-512: T (up to 12) taps by 16 channels in T registers, one load of
/// dY^T and T broadcasts of the image per position.
///
/// # Safety
/// As `grad_tile`, with AVX-512F for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // a register tile reads clearest indexed
pub(super) unsafe fn grad_tile_512<const T: usize>(
    a: *const f32,
    offsets: &[usize],
    b: *const f32,
    b_stride: usize,
    walk: Walk,
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    debug_assert!(offsets.len() == T);
    let Walk {
        rows,
        w,
        row_step,
        step,
    } = walk;
    prefetch_rows::<T>(out, b_stride);
    let mut offs = [0usize; T];
    offs.copy_from_slice(&offsets[..T]);
    let mut acc = [_mm512_setzero_ps(); T];
    for y in 0..rows {
        for x in 0..w {
            // SAFETY: readable per the contract.
            let dy = unsafe { _mm512_loadu_ps(b.add((y * w + x) * b_stride)) };
            for t in 0..T {
                // SAFETY: readable per the contract.
                let at = _mm512_set1_ps(unsafe { *a.add(offs[t] + y * row_step + x * step) });
                acc[t] = _mm512_fmadd_ps(at, dy, acc[t]);
            }
        }
    }
    // SAFETY: readable and writable per the contract.
    unsafe { store_rows_512(out, b_stride, &acc, true) }
}
