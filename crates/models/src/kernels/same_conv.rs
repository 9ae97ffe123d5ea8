//! A "same" convolution (stride 1, k = 2 * pad + 1) without a column matrix, for CPUs
//! with AVX2 and FMA: most of a CIFAR-style net's convolutions, forward, and (with the
//! flipped kernel) their input gradients.
//!
//! `im2col` writes every input value k*k times into a column matrix that the gemm then
//! reads back: 15 % of a training step was those copies. Here the image is copied once
//! into a zero-padded buffer whose rows are `w + 2 * pad` long. In that layout, for the
//! output positions counted along the padded rows, the input under kernel tap (c, ky, kx)
//! is the padded buffer shifted by a constant, `c * plane + ky * row + kx`: the column
//! matrix's row for that tap is a slice of the buffer, so the microkernel loads it
//! straight from there. It computes 16 consecutive output positions by up to 6 output
//! channels (the shape of the `gemm` crate's own AVX2 kernel) in 12 registers; the
//! positions that fall on the padding columns are computed and dropped (2 / (w + 2) of
//! the work).

use super::im2col::Window;
use std::mem::MaybeUninit;

/// Output positions per microkernel call: two AVX2 registers of eight f32.
const MR: usize = 16;
/// Output channels per microkernel call, at most.
const NR: usize = 6;

/// A place a kernel writes an f32 to: an initialised output or an uninitialised one.
pub trait Store {
    fn store(&mut self, v: f32);
}

impl Store for f32 {
    fn store(&mut self, v: f32) {
        *self = v;
    }
}

impl Store for MaybeUninit<f32> {
    fn store(&mut self, v: f32) {
        self.write(v);
    }
}

/// Whether `win` is a convolution this kernel computes, on this CPU.
pub fn applies(win: &Window) -> bool {
    win.is_same() && !win.is_identity() && has_avx2_fma()
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx2_fma() -> bool {
    false
}

/// The kernel (o, c, k, k) rearranged for the microkernel: per panel of up to NR output
/// channels, for each tap (c, ky, kx) in order, the panel's NR weights side by side.
pub struct PackedKernel {
    values: Vec<f32>,
    out_channels: usize,
    taps: usize,
}

impl PackedKernel {
    pub fn new(w: &[f32], out_channels: usize, taps: usize) -> Self {
        assert_eq!(w.len(), out_channels * taps, "kernel of the wrong size");
        let mut values = Vec::with_capacity(w.len());
        for o0 in (0..out_channels).step_by(NR) {
            let nr = NR.min(out_channels - o0);
            for t in 0..taps {
                values.extend((o0..o0 + nr).map(|oi| w[oi * taps + t]));
            }
        }
        PackedKernel {
            values,
            out_channels,
            taps,
        }
    }
}

/// Per-thread working memory for one window: the zero-padded image and the output
/// along padded rows. The padding's zeros are written once; every image overwrites
/// only the interior.
pub struct Scratch {
    padded: Vec<f32>,
    wide: Vec<f32>,
}

/// The padded layout's sizes.
struct Padded {
    /// Length of a padded row: w + 2 * pad.
    row: usize,
    /// One padded channel: (h + 2 * pad) rows.
    plane: usize,
    /// Output positions counted along padded rows (h rows), rounded up to MR.
    wide: usize,
}

fn padded(win: &Window) -> Padded {
    let row = win.w + 2 * win.pad;
    Padded {
        row,
        plane: (win.h + 2 * win.pad) * row,
        wide: (win.h * row).div_ceil(MR) * MR,
    }
}

impl Scratch {
    pub fn new(win: &Window, out_channels: usize) -> Self {
        let p = padded(win);
        // The last block of positions reads up to MR - 1 + (k - 1) values past the
        // last plane's end.
        let slack = p.wide - win.h * p.row + win.k;
        Scratch {
            padded: vec![0f32; win.channels * p.plane + slack],
            wide: vec![0f32; out_channels * p.wide],
        }
    }
}

/// `y = conv(x)` for one image: `x` is (c, h, w), `y` is (o, h, w), the kernel packed
/// from (o, c, k, k), `scratch` made for this window and kernel. `win` must be one that
/// `applies` to.
pub fn same_conv<E: Store>(
    win: &Window,
    x: &[f32],
    kernel: &PackedKernel,
    y: &mut [E],
    scratch: &mut Scratch,
) {
    let p = padded(win);
    let (c, h, w, k, pad) = (win.channels, win.h, win.w, win.k, win.pad);
    let o = kernel.out_channels;
    assert!(applies(win), "same_conv on a window it does not apply to");
    assert_eq!(kernel.taps, c * k * k, "kernel and window differ");
    assert_eq!(x.len(), c * h * w, "image of the wrong size");
    assert_eq!(y.len(), o * h * w, "output of the wrong size");
    assert_eq!(scratch.wide.len(), o * p.wide, "scratch for another window");
    let offsets: Vec<usize> = (0..c)
        .flat_map(|ci| (0..k).flat_map(move |ky| (0..k).map(move |kx| (ci, ky, kx))))
        .map(|(ci, ky, kx)| ci * p.plane + ky * p.row + kx)
        .collect();
    // Every microkernel load, at offset + position + 0..MR, stays inside `padded`.
    let last_offset = offsets.last().copied().unwrap_or(0);
    assert!(
        last_offset + p.wide <= scratch.padded.len(),
        "scratch too small"
    );
    for ci in 0..c {
        for iy in 0..h {
            let at = ci * p.plane + (iy + pad) * p.row + pad;
            scratch.padded[at..at + w].copy_from_slice(&x[(ci * h + iy) * w..][..w]);
        }
    }
    let mut packed = kernel.values.as_slice();
    for o0 in (0..o).step_by(NR) {
        let nr = NR.min(o - o0);
        let (panel, rest) = packed.split_at(nr * kernel.taps);
        packed = rest;
        let out = &mut scratch.wide[o0 * p.wide..(o0 + nr) * p.wide];
        for q0 in (0..p.wide).step_by(MR) {
            // SAFETY: AVX2 and FMA are present (`applies`, asserted above); the loads at
            // `offsets[t] + q0 + 0..MR` are within `padded` (asserted above, q0 + MR <=
            // p.wide); the panel holds taps * nr weights; the stores at
            // `j * p.wide + q0 + 0..MR`, j < nr, are within `out`.
            unsafe {
                microkernel(
                    nr,
                    scratch.padded.as_ptr().add(q0),
                    &offsets,
                    panel,
                    out.as_mut_ptr().add(q0),
                    p.wide,
                )
            }
        }
    }
    // Keep the positions inside the image, dropping the padding columns.
    for (oi, plane) in y.chunks_exact_mut(h * w).enumerate() {
        for (oy, dst) in plane.chunks_exact_mut(w).enumerate() {
            let src = &scratch.wide[oi * p.wide + oy * p.row..][..w];
            for (d, &v) in dst.iter_mut().zip(src) {
                d.store(v);
            }
        }
    }
}

/// Dispatches to the microkernel for `nr` output channels.
///
/// # Safety
/// As for `tile`.
#[cfg(target_arch = "x86_64")]
unsafe fn microkernel(
    nr: usize,
    a: *const f32,
    offsets: &[usize],
    b: &[f32],
    out: *mut f32,
    out_stride: usize,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match nr {
            6 => tile::<6>(a, offsets, b, out, out_stride),
            5 => tile::<5>(a, offsets, b, out, out_stride),
            4 => tile::<4>(a, offsets, b, out, out_stride),
            3 => tile::<3>(a, offsets, b, out, out_stride),
            2 => tile::<2>(a, offsets, b, out, out_stride),
            _ => tile::<1>(a, offsets, b, out, out_stride),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn microkernel(_: usize, _: *const f32, _: &[usize], _: &[f32], _: *mut f32, _: usize) {
    unreachable!("same_conv applies only on x86_64 with AVX2")
}

/// out[j * out_stride + i] = sum over taps t of a[offsets[t] + i] * b[t * N + j], for
/// i < MR and j < N.
///
/// # Safety
/// The CPU has AVX2 and FMA; `a + offsets[t] + i` is readable for every t and i < MR;
/// `b` holds `offsets.len() * N` values; `out + j * out_stride + i` is writable for
/// j < N, i < MR.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile<const N: usize>(
    a: *const f32,
    offsets: &[usize],
    b: &[f32],
    out: *mut f32,
    out_stride: usize,
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
    for j in 0..N {
        // SAFETY: writable per the contract.
        unsafe {
            _mm256_storeu_ps(out.add(j * out_stride), lo[j]);
            _mm256_storeu_ps(out.add(j * out_stride + 8), hi[j]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::im2col::im2col;

    /// Against im2col + the product by definition, for the kernel sizes and channel
    /// counts the nets use and for every output-channel tail (1 to 6).
    #[test]
    fn matches_the_column_matrix_product() {
        if !has_avx2_fma() {
            return; // nothing to compare on this CPU: the callers use im2col + gemm
        }
        let mut seed = 1u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        };
        for &(c, o, side, k) in &[
            (1, 16, 28, 3),
            (3, 7, 9, 3),
            (16, 16, 14, 3),
            (16, 13, 7, 5),
            (64, 64, 7, 3),
            (2, 1, 1, 3),
        ] {
            let win = Window {
                channels: c,
                h: side,
                w: side + 1,
                k,
                stride: 1,
                pad: k / 2,
            };
            let x: Vec<f32> = (0..win.image_len()).map(|_| next()).collect();
            let w: Vec<f32> = (0..o * win.rows()).map(|_| next()).collect();
            let mut cols = vec![0f32; win.rows() * win.cols()];
            im2col(&win, &x, &mut cols);
            let n = win.cols();
            let want: Vec<f32> = (0..o * n)
                .map(|i| {
                    let (oi, q) = (i / n, i % n);
                    (0..win.rows())
                        .map(|r| w[oi * win.rows() + r] * cols[r * n + q])
                        .sum()
                })
                .collect();
            let kernel = PackedKernel::new(&w, o, win.rows());
            let mut scratch = Scratch::new(&win, o);
            // Another image first, through the same scratch: it must leave no trace.
            let other: Vec<f32> = (0..win.image_len()).map(|_| next()).collect();
            let mut y = vec![f32::NAN; o * n];
            same_conv(&win, &other, &kernel, &mut y, &mut scratch);
            same_conv(&win, &x, &kernel, &mut y, &mut scratch);
            for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "c {c} o {o} side {side} k {k}: y[{i}] = {a}, want {b}"
                );
            }
        }
    }
}
