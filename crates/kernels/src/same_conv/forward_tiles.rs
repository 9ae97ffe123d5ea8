//! The microkernels of the forward product (and of the input gradient, which is the
//! same convolution of dY with the flipped kernel): channel tiles and position tiles,
//! on AVX2 and on AVX-512.

#[cfg(target_arch = "x86_64")]
use super::stores::{prefetch_rows, store_rows, store_rows_512};
#[cfg(target_arch = "x86_64")]
use super::CHANNEL_TILE;

/// out[q * out_stride + j] = sum over taps t of a[starts[q] + offsets[t]] * b[t * 16 + j]
/// (added to what `out` holds if `add`), for q < N and j < 16: 16 output channels of N
/// positions in 2N registers, two loads of weights and N broadcasts of the image per tap.
///
/// # Safety
/// The CPU has AVX2 and FMA; `starts` has N entries; `a + starts[q] + offsets[t]` is
/// readable for every q and t; `b` holds `offsets.len() * 16` values; `out + q *
/// out_stride + j` is writable (and readable if `add`) for q < N, j < 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // a register tile reads clearest indexed
pub(super) unsafe fn channel_tile<const N: usize>(
    a: *const f32,
    starts: &[usize],
    offsets: &[usize],
    b: &[f32],
    out: *mut f32,
    out_stride: usize,
    add: bool,
) {
    use std::arch::x86_64::*;
    debug_assert!(starts.len() == N && b.len() >= offsets.len() * CHANNEL_TILE);
    // Each position's own start, once: the loop below adds only the tap's offset.
    // SAFETY: within `a` per the contract (offset 0 is a tap's offset minus itself).
    let rows: [*const f32; N] = std::array::from_fn(|q| unsafe { a.add(starts[q]) });
    if add {
        // As in `grad_tile`: the sums of the previous pass, wanted at the end.
        prefetch_rows::<N>(out, out_stride);
    }
    let mut lo = [_mm256_setzero_ps(); N];
    let mut hi = [_mm256_setzero_ps(); N];
    for (&off, bt) in offsets.iter().zip(b.chunks_exact(CHANNEL_TILE)) {
        // SAFETY: `bt` holds 16 values.
        let (b0, b1) = unsafe {
            (
                _mm256_loadu_ps(bt.as_ptr()),
                _mm256_loadu_ps(bt.as_ptr().add(8)),
            )
        };
        for q in 0..N {
            // SAFETY: readable per the contract.
            let v = unsafe { _mm256_broadcast_ss(&*rows[q].add(off)) };
            lo[q] = _mm256_fmadd_ps(v, b0, lo[q]);
            hi[q] = _mm256_fmadd_ps(v, b1, hi[q]);
        }
    }
    // SAFETY: writable, and readable when adding, per the contract.
    unsafe { store_rows(out, out_stride, &lo, &hi, add) }
}

/// out[j * out_stride + i] = sum over taps t of a[offsets[t] + i] * b[t * N + j] (added
/// to what `out` holds if `add`), for i < MR and j < N.
///
/// # Safety
/// The CPU has AVX2 and FMA; `a + offsets[t] + i` is readable for every t and i < MR;
/// `b` holds `offsets.len() * N` values; `out + j * out_stride + i` is writable (and
/// readable if `add`) for j < N, i < MR.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn tile<const N: usize>(
    a: *const f32,
    offsets: &[usize],
    b: &[f32],
    out: *mut f32,
    out_stride: usize,
    add: bool,
) {
    use std::arch::x86_64::*;
    debug_assert!(b.len() >= offsets.len() * N);
    let mut lo = [_mm256_setzero_ps(); N];
    let mut hi = [_mm256_setzero_ps(); N];
    for (&off, bt) in offsets.iter().zip(b.chunks_exact(N)) {
        // SAFETY: readable per the contract.
        let (a0, a1) = unsafe { (_mm256_loadu_ps(a.add(off)), _mm256_loadu_ps(a.add(off + 8))) };
        for j in 0..N {
            let bj = _mm256_set1_ps(bt[j]);
            lo[j] = _mm256_fmadd_ps(a0, bj, lo[j]);
            hi[j] = _mm256_fmadd_ps(a1, bj, hi[j]);
        }
    }
    // SAFETY: writable, and readable when adding, per the contract.
    unsafe { store_rows(out, out_stride, &lo, &hi, add) }
}

/// `channel_tile` on AVX-512: the 16 channels are one register, so N (up to 12)
/// positions take N registers of sums, with one load of weights and N broadcasts of the
/// image per tap.
///
/// # Safety
/// As `channel_tile`, with AVX-512F for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // a register tile reads clearest indexed
pub(super) unsafe fn channel_tile_512<const N: usize>(
    a: *const f32,
    starts: &[usize],
    offsets: &[usize],
    b: &[f32],
    out: *mut f32,
    out_stride: usize,
    add: bool,
) {
    use std::arch::x86_64::*;
    debug_assert!(starts.len() == N && b.len() >= offsets.len() * CHANNEL_TILE);
    // SAFETY: within `a` per the contract (offset 0 is a tap's offset minus itself).
    let rows: [*const f32; N] = std::array::from_fn(|q| unsafe { a.add(starts[q]) });
    if add {
        prefetch_rows::<N>(out, out_stride);
    }
    let mut acc = [_mm512_setzero_ps(); N];
    for (&off, bt) in offsets.iter().zip(b.chunks_exact(CHANNEL_TILE)) {
        // SAFETY: `bt` holds 16 values.
        let weights = unsafe { _mm512_loadu_ps(bt.as_ptr()) };
        for q in 0..N {
            // SAFETY: readable per the contract.
            let v = _mm512_set1_ps(unsafe { *rows[q].add(off) });
            acc[q] = _mm512_fmadd_ps(v, weights, acc[q]);
        }
    }
    // SAFETY: writable, and readable when adding, per the contract.
    unsafe { store_rows_512(out, out_stride, &acc, add) }
}

/// `tile` on AVX-512 for M blocks of 16 positions (consecutive, one register each) by N
/// channels: out[j * out_stride + i] for i < 16 * M, one register of sums per block
/// and channel, M loads of the image and N broadcasts of weights per tap. Each sum is
/// the chain `tile` computes, so the two give the same bits.
///
/// # Safety
/// As `tile`, with AVX-512F for AVX2 and 16 * M positions for MR.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // a register tile reads clearest indexed
pub(super) unsafe fn tile_512<const M: usize, const N: usize>(
    a: *const f32,
    offsets: &[usize],
    b: &[f32],
    out: *mut f32,
    out_stride: usize,
    add: bool,
) {
    use std::arch::x86_64::*;
    debug_assert!(b.len() >= offsets.len() * N);
    let mut acc = [[_mm512_setzero_ps(); N]; M];
    for (&off, bt) in offsets.iter().zip(b.chunks_exact(N)) {
        let mut image = [_mm512_setzero_ps(); M];
        for (m, block) in image.iter_mut().enumerate() {
            // SAFETY: readable per the contract.
            *block = unsafe { _mm512_loadu_ps(a.add(off + 16 * m)) };
        }
        for j in 0..N {
            let weight = _mm512_set1_ps(bt[j]);
            for m in 0..M {
                acc[m][j] = _mm512_fmadd_ps(image[m], weight, acc[m][j]);
            }
        }
    }
    for (m, sums) in acc.iter().enumerate() {
        // SAFETY: writable, and readable when adding, per the contract.
        unsafe { store_rows_512(out.add(16 * m), out_stride, sums, add) }
    }
}

/// Which sides of a row tile lie on the image's border, where the padded image holds
/// zeros: the first row is the image's first, the last row its last, the first position
/// its first column, the last position its last column. (Only the x86-64 microkernels
/// read it; elsewhere the row tiles never run.)
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) struct Border {
    pub(super) top: bool,
    pub(super) bottom: bool,
    pub(super) left: bool,
    pub(super) right: bool,
}

/// The forward product of a 3x3 stride-1 convolution on AVX-512 for R output rows by N
/// consecutive positions of each, 16 output channels in one register:
/// out[r * out_row + q * out_stride + j] = sum over groups g and taps kx < 3 of
/// a[offsets[3g] + r * row + q + kx] * b[(3g + kx) * 16 + j] (added to what `out` holds
/// if `add`), for r < R, q < N and j < 16, the values of `a` that `border` names taken
/// as zero.
///
/// A group is one kernel row, the taps (c, ky, 0..3): they read one padded row at three
/// consecutive shifts, so the value at column i of that row is broadcast once and feeds
/// the three sums it meets (position i - kx with tap kx). `channel_tile_512` broadcasts
/// once per fused multiply-add, and on a core with two 512-bit FMA units (the Intel
/// Xeon measured in the README) those loads rather than the arithmetic set its speed.
/// Each sum still gets its taps in the order (c, ky, kx), the chain `channel_tile_512`
/// computes (less the zero products below), so the two give the same bits. R * N is at
/// most 24, so that the sums, the group's three weights and the broadcasts fit in the
/// 32 registers.
///
/// Where the tile lies on the image's border (`border`), some of the values it would
/// read are the padding's zeros: kernel row 0 of its first row, kernel row 2 of its
/// last, column 0 and column N + 1. A zero times a finite weight leaves a sum as it was
/// (but for the sign of a sum that is exactly zero), so those products are left out and
/// the values not read: on a 7x7 image they are 18 % of the products (2 of every 21
/// kernel rows by positions, and 2 of every 21 products along a row).
///
/// # Safety
/// The CPU has AVX-512F; `offsets` holds whole channels, kernel rows 0, 1 and 2 in turn,
/// each three consecutive offsets; `a + offsets[3g] + r * row + i` is readable for every
/// group g, r < R and i < N + 2; `b` holds `offsets.len() * 16` values; `out + r *
/// out_row + q * out_stride + j` is writable (and readable if `add`) for r < R, q < N,
/// j < 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::needless_range_loop)] // a register tile reads clearest indexed
#[allow(clippy::too_many_arguments)] // the tile's geometry, as `channel_tile_512`'s plus two
pub(super) unsafe fn row_tile_512<const R: usize, const N: usize>(
    a: *const f32,
    row: usize,
    offsets: &[usize],
    b: &[f32],
    out: *mut f32,
    out_stride: usize,
    out_row: usize,
    add: bool,
    border: Border,
) {
    use std::arch::x86_64::*;
    debug_assert!(R * N <= 24 && offsets.len().is_multiple_of(9));
    // Whole channels, from kernel row 0: the groups' kernel rows are 0, 1, 2 in turn.
    debug_assert!(offsets
        .chunks_exact(9)
        .all(|c| c[3] == c[0] + row && c[6] == c[0] + 2 * row));
    debug_assert!(b.len() >= offsets.len() * CHANNEL_TILE);
    if add {
        for r in 0..R {
            prefetch_rows::<N>(out.wrapping_add(r * out_row), out_stride);
        }
    }
    let mut acc = [[_mm512_setzero_ps(); N]; R];
    let groups = offsets
        .chunks_exact(3)
        .zip(b.chunks_exact(3 * CHANNEL_TILE));
    for ((taps, group), ky) in groups.zip([0, 1, 2].into_iter().cycle()) {
        debug_assert!(taps[1] == taps[0] + 1 && taps[2] == taps[0] + 2);
        // SAFETY: `group` holds 48 values.
        let weights = unsafe {
            [
                _mm512_loadu_ps(group.as_ptr()),
                _mm512_loadu_ps(group.as_ptr().add(CHANNEL_TILE)),
                _mm512_loadu_ps(group.as_ptr().add(2 * CHANNEL_TILE)),
            ]
        };
        for r in 0..R {
            if (ky == 0 && r == 0 && border.top) || (ky == 2 && r == R - 1 && border.bottom) {
                continue;
            }
            // SAFETY: within `a` per the contract (column 0 of this row).
            let image_row = unsafe { a.add(taps[0] + r * row) };
            for i in 0..N + 2 {
                if (i == 0 && border.left) || (i == N + 1 && border.right) {
                    continue;
                }
                // SAFETY: readable per the contract.
                let v = _mm512_set1_ps(unsafe { *image_row.add(i) });
                for kx in 0..3 {
                    if i >= kx && i - kx < N {
                        let q = i - kx;
                        acc[r][q] = _mm512_fmadd_ps(v, weights[kx], acc[r][q]);
                    }
                }
            }
        }
    }
    for (r, sums) in acc.iter().enumerate() {
        // SAFETY: writable, and readable when adding, per the contract.
        unsafe { store_rows_512(out.add(r * out_row), out_stride, sums, add) }
    }
}
