//! The microkernels of the kernel gradient: taps by 16 output channels, on AVX2 and on
//! AVX-512.

#[cfg(target_arch = "x86_64")]
use super::stores::{prefetch_rows, store_rows, store_rows_512};

/// How a gradient tile walks the output positions: `rows` rows of `w` positions (b,
/// dY^T, holds them compact, w per row); along the padded image a, the next position
/// is `step` values on and the next row `row_step` (for stride s, s and s times the
/// padded row). (Only the x86-64 microkernels read it; elsewhere they never run.)
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
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

/// The kernel gradient of a 3x3 stride-1 convolution on AVX-512, for G groups of three
/// taps (one kernel row each: (c, ky, kx) for kx < 3, consecutive offsets) by 16
/// channels: out[t * b_stride + j] += sum over positions (y, x), y < rows, x < w, of
/// a[offsets[t] + y * row_step + x] * b[(y * w + x) * b_stride + j], for t < 3G and
/// j < 16, where `rows`, `w` and `row_step` are `walk`'s (its step is 1).
///
/// `grad_tile_512` broadcasts the image once per fused multiply-add. Here each output
/// row's image row is swept once per group: the value at column p feeds tap kx with
/// position p - kx, for the three taps, while the last three rows of dY^T wait in
/// registers. Each tap's sum still takes the positions in order, the chain
/// `grad_tile_512` computes (less the zero products below), so the two give the same
/// bits. w is at least 2: columns 1 and w, where fewer than three taps meet, are written
/// out before and after the loop, and column 1 already reads dY at position 1.
///
/// Columns 0 and w + 1 of each row are the padding's zeros, whose products (one tap
/// each) leave a finite sum as it was: they are left out and the values not read, 2 of
/// the 3w products per row and group, a tenth of them on a 7x7 image. (The padding rows
/// above and below are still swept: skipping them would need each tile's groups to be
/// one kernel row.)
///
/// # Safety
/// The CPU has AVX-512F; `offsets` has 3G entries, each group three consecutive offsets;
/// `walk.step` is 1 and `walk.w` at least 2; `a + offsets[3g] + y * row_step + p` is
/// readable for every group g, y < rows and 1 <= p <= w (the values at p = 0 and p =
/// w + 1 are taken to be zero), and `b + (y * w + x) * b_stride + j` too, for y < rows,
/// x < w, j < 16; `out + t * b_stride + j` is readable and writable for t < 3G, j < 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // a register tile reads clearest indexed
pub(super) unsafe fn row_grad_tile_512<const G: usize>(
    a: *const f32,
    offsets: &[usize],
    b: *const f32,
    b_stride: usize,
    walk: Walk,
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    let Walk {
        rows, w, row_step, ..
    } = walk;
    debug_assert!(offsets.len() == 3 * G && walk.step == 1 && w >= 2);
    for g in 0..G {
        prefetch_rows::<3>(out.wrapping_add(3 * g * b_stride), b_stride);
    }
    let mut starts = [0usize; G];
    for (start, taps) in starts.iter_mut().zip(offsets.chunks_exact(3)) {
        debug_assert!(taps[1] == taps[0] + 1 && taps[2] == taps[0] + 2);
        *start = taps[0];
    }
    // acc[g][kx]: the sum of tap (group g, kx).
    let mut acc = [[_mm512_setzero_ps(); 3]; G];
    for y in 0..rows {
        // SAFETY (the block): the reads are within `a` and `b` per the contract: image
        // columns p < w + 2 of row y, dY^T at positions x < w of row y.
        unsafe {
            let image = a.add(y * row_step);
            let dy = b.add(y * w * b_stride);
            // dY^T at positions p, p - 1 and p - 2, as the sweep reaches column p.
            // Column 0, the padding, would meet only tap 0 (position 0); column 1 meets
            // taps 0 and 1.
            let mut d1 = _mm512_loadu_ps(dy);
            let mut d0 = _mm512_loadu_ps(dy.add(b_stride));
            for g in 0..G {
                let v = _mm512_set1_ps(*image.add(starts[g] + 1));
                acc[g][0] = _mm512_fmadd_ps(v, d0, acc[g][0]);
                acc[g][1] = _mm512_fmadd_ps(v, d1, acc[g][1]);
            }
            for p in 2..w {
                let d2 = d1;
                d1 = d0;
                d0 = _mm512_loadu_ps(dy.add(p * b_stride));
                for g in 0..G {
                    let v = _mm512_set1_ps(*image.add(starts[g] + p));
                    acc[g][0] = _mm512_fmadd_ps(v, d0, acc[g][0]);
                    acc[g][1] = _mm512_fmadd_ps(v, d1, acc[g][1]);
                    acc[g][2] = _mm512_fmadd_ps(v, d2, acc[g][2]);
                }
            }
            // Column w, the row's last value: taps 1 and 2. (Column w + 1, the padding,
            // would meet only tap 2.)
            for g in 0..G {
                let v = _mm512_set1_ps(*image.add(starts[g] + w));
                acc[g][1] = _mm512_fmadd_ps(v, d0, acc[g][1]);
                acc[g][2] = _mm512_fmadd_ps(v, d1, acc[g][2]);
            }
        }
    }
    for (g, sums) in acc.iter().enumerate() {
        // SAFETY: readable and writable per the contract: group g's taps are rows 3g to
        // 3g + 2 of `out`.
        unsafe { store_rows_512(out.add(3 * g * b_stride), b_stride, sums, true) }
    }
}
