//! Writing a register tile's sums back to memory, and prefetching where they go:
//! shared by the forward and the kernel-gradient microkernels.

/// Row r of a register tile's sums, `lo[r]` and `hi[r]`, to the 16 floats at `out + r *
/// stride`, added to what they hold if `add`.
///
/// # Safety
/// The CPU has AVX2; `out + r * stride + j` is writable, and readable if `add`, for
/// r < R and j < 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn store_rows<const R: usize>(
    out: *mut f32,
    stride: usize,
    lo: &[std::arch::x86_64::__m256; R],
    hi: &[std::arch::x86_64::__m256; R],
    add: bool,
) {
    use std::arch::x86_64::*;
    for (r, (&l, &h)) in lo.iter().zip(hi).enumerate() {
        // SAFETY: per the contract.
        unsafe {
            let dst = out.add(r * stride);
            let (mut l, mut h) = (l, h);
            if add {
                l = _mm256_add_ps(_mm256_loadu_ps(dst), l);
                h = _mm256_add_ps(_mm256_loadu_ps(dst.add(8)), h);
            }
            _mm256_storeu_ps(dst, l);
            _mm256_storeu_ps(dst.add(8), h);
        }
    }
}

/// Asks for the cache lines of `R` rows of 16 floats, `stride` apart from `out`, to be
/// brought into L1. A prefetch reads nothing and cannot fault.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) fn prefetch_rows<const R: usize>(out: *const f32, stride: usize) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    for r in 0..R {
        let row = out.wrapping_add(r * stride);
        _mm_prefetch::<_MM_HINT_T0>(row.cast());
        _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(15).cast());
    }
}

/// Row r of a register tile's sums, `acc[r]`, to the 16 floats at `out + r * stride`,
/// added to what they hold if `add`.
///
/// # Safety
/// The CPU has AVX-512F; `out + r * stride + j` is writable, and readable if `add`, for
/// r < R and j < 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn store_rows_512<const R: usize>(
    out: *mut f32,
    stride: usize,
    acc: &[std::arch::x86_64::__m512; R],
    add: bool,
) {
    use std::arch::x86_64::*;
    for (r, &v) in acc.iter().enumerate() {
        // SAFETY: per the contract.
        unsafe {
            let dst = out.add(r * stride);
            let v = if add {
                _mm512_add_ps(_mm512_loadu_ps(dst), v)
            } else {
                v
            };
            _mm512_storeu_ps(dst, v);
        }
    }
}
