//! A "same" convolution (stride 1, k = 2 * pad + 1) without a column matrix, for CPUs
//! with AVX2 and FMA: most of a CIFAR-style net's convolutions, forward, their input
//! gradients (the same convolution of dY with the flipped kernel) and their kernel
//! gradients (`same_conv_weight_grad`).
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

/// Per-thread working memory for one window: the zero-padded image, the output along
/// padded rows, and where each tap reads. The padding's zeros are written once; every
/// image overwrites only the interior.
pub struct Scratch {
    window: Window,
    padded: Vec<f32>,
    wide: Vec<f32>,
    /// Per tap (c, ky, kx), in the kernel's order: the input under output position q
    /// (counted along padded rows) is `padded[offset + q]`.
    offsets: Vec<usize>,
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
        let k = win.k;
        let offsets: Vec<usize> = (0..win.channels)
            .flat_map(|ci| (0..k).flat_map(move |ky| (0..k).map(move |kx| (ci, ky, kx))))
            .map(|(ci, ky, kx)| ci * p.plane + ky * p.row + kx)
            .collect();
        let padded = vec![0f32; win.channels * p.plane + slack];
        // Every microkernel read, at an offset + 0..p.wide, is inside `padded`.
        let last = offsets.last().copied().unwrap_or(0);
        assert!(last + p.wide <= padded.len(), "padding slack miscounted");
        Scratch {
            window: *win,
            padded,
            wide: vec![0f32; out_channels * p.wide],
            offsets,
        }
    }

    /// Copies the image (c, h, w) into the interior of the padded buffer (its padding
    /// stays as it is: zero), having checked that this scratch was made for `win` and
    /// `o` output channels.
    fn load(&mut self, win: &Window, p: &Padded, x: &[f32], o: usize) {
        let (h, w, pad) = (win.h, win.w, win.pad);
        assert_eq!(*win, self.window, "scratch for another window");
        assert_eq!(self.wide.len(), o * p.wide, "scratch for other channels");
        assert_eq!(x.len(), win.image_len(), "image of the wrong size");
        for (ci, plane) in x.chunks_exact(h * w).enumerate() {
            for (iy, src) in plane.chunks_exact(w).enumerate() {
                let at = ci * p.plane + (iy + pad) * p.row + pad;
                self.padded[at..at + w].copy_from_slice(src);
            }
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
    let (c, h, w, k) = (win.channels, win.h, win.w, win.k);
    let o = kernel.out_channels;
    assert!(applies(win), "same_conv on a window it does not apply to");
    assert_eq!(kernel.taps, c * k * k, "kernel and window differ");
    assert_eq!(y.len(), o * h * w, "output of the wrong size");
    scratch.load(win, &p, x, o);
    // The taps go in passes of TAPS_PER_PASS, each adding to the output: a tile's
    // image rows and weights for one pass stay in L1 (all 576 taps of 64 channels did
    // not, and the kernel ran at three quarters of its speed at width 64).
    for k0 in (0..kernel.taps).step_by(TAPS_PER_PASS) {
        let k1 = (k0 + TAPS_PER_PASS).min(kernel.taps);
        let mut packed = kernel.values.as_slice();
        for o0 in (0..o).step_by(NR) {
            let nr = NR.min(o - o0);
            let (panel, rest) = packed.split_at(nr * kernel.taps);
            packed = rest;
            let out = &mut scratch.wide[o0 * p.wide..(o0 + nr) * p.wide];
            for q0 in (0..p.wide).step_by(MR) {
                // SAFETY: AVX2 and FMA are present (`applies`, asserted above); the loads
                // at `offsets[t] + q0 + 0..MR` are within `padded` (asserted in
                // `Scratch::new` for reads up to offset + p.wide, q0 + MR <= p.wide, and
                // `load` asserted that the scratch is this window's); the panel's taps
                // k0..k1 hold (k1 - k0) * nr weights; the loads and stores at
                // `j * p.wide + q0 + 0..MR`, j < nr, are within `out`.
                unsafe {
                    microkernel(
                        nr,
                        scratch.padded.as_ptr().add(q0),
                        &scratch.offsets[k0..k1],
                        &panel[k0 * nr..k1 * nr],
                        out.as_mut_ptr().add(q0),
                        p.wide,
                        k0 > 0,
                    )
                }
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

/// Whether `same_conv_weight_grad` takes `o` output channels: whole groups of 16.
pub fn weight_grad_applies(win: &Window, o: usize) -> bool {
    applies(win) && o.is_multiple_of(GU)
}

/// Adds one image's kernel gradient to `dw_t`, the (c * k * k, o) transpose of the
/// kernel's layout: `dw_t[tap][oi] += sum over positions of x(shifted by tap) * dy[oi]`.
/// `x` is (c, h, w), `dy` (o, h, w); `scratch` made by `Scratch::new(win, o)` and used
/// for nothing else (its output rows' padding columns must stay zero).
///
/// The same layout trick as `same_conv`: with dY laid along padded rows (zeros in the
/// padding columns) and transposed, position-major, the product over output positions
/// is a sum of the padded image at the tap's shift times a row of dY^T, so no column
/// matrix is built and nothing is packed. The microkernel keeps 6 taps x 16 channels
/// in registers for the whole sum.
pub fn same_conv_weight_grad(
    win: &Window,
    x: &[f32],
    dy: &[f32],
    o: usize,
    dw_t: &mut [f32],
    scratch: &mut Scratch,
) {
    let p = padded(win);
    let (c, h, w, k) = (win.channels, win.h, win.w, win.k);
    let taps = c * k * k;
    assert!(
        weight_grad_applies(win, o),
        "same_conv_weight_grad does not apply"
    );
    assert_eq!(dy.len(), o * h * w, "gradient of the wrong size");
    assert_eq!(dw_t.len(), taps * o, "kernel gradient of the wrong size");
    scratch.load(win, &p, x, o);
    // dY^T along padded rows: wide[q * o + oi]; the padding columns stay zero. Written
    // position by position, so that the writes are contiguous and the reads are o
    // sequential streams (channel by channel, each write pass re-fetched the whole
    // buffer from L2: 3 % of a training step).
    for oy in 0..h {
        let row = &mut scratch.wide[oy * p.row * o..(oy * p.row + w) * o];
        for (ox, cell) in row.chunks_exact_mut(o).enumerate() {
            let at = oy * w + ox;
            for (d, plane) in cell.iter_mut().zip(dy.chunks_exact(h * w)) {
                *d = plane[at];
            }
        }
    }
    for o0 in (0..o).step_by(GU) {
        for q0 in (0..p.wide).step_by(POSITIONS_PER_PASS) {
            let len = POSITIONS_PER_PASS.min(p.wide - q0);
            for t0 in (0..taps).step_by(GT) {
                let nt = GT.min(taps - t0);
                // SAFETY: AVX2 and FMA are present (`applies`, asserted above); the reads
                // at `offsets[t] + q0 + 0..len` are within `padded` (asserted in
                // `Scratch::new` for reads up to offset + p.wide, q0 + len <= p.wide, and
                // `load` asserted that the scratch is this window's) and those at
                // `q * o + o0 + 0..GU`, q < p.wide, within `wide` (its length, asserted
                // above, and o0 + GU <= o as o is a multiple of GU); the read-modify-
                // writes at `(t0 + t) * o + o0 + 0..GU`, t < nt, are within `dw_t` (its
                // length, asserted above).
                unsafe {
                    grad_microkernel(
                        nt,
                        scratch.padded.as_ptr().add(q0),
                        &scratch.offsets[t0..t0 + nt],
                        scratch.wide.as_ptr().add(q0 * o + o0),
                        o,
                        len,
                        dw_t.as_mut_ptr().add(t0 * o + o0),
                    )
                }
            }
        }
    }
}

/// Taps per pass of the forward kernel: 16 channels of a 3x3 kernel, about 6 KB of image
/// rows and 3.5 KB of weights per tile.
const TAPS_PER_PASS: usize = 144;

/// Output positions per pass of the gradient kernel: 128 rows of dY^T, 8 KB for 16
/// channels, stay in L1 while every tap goes past them.
const POSITIONS_PER_PASS: usize = 128;

/// Taps and output channels per gradient microkernel call: 6 x 16 sums in twelve
/// registers, six broadcasts of the image and two loads of dY^T per step.
const GT: usize = 6;
const GU: usize = 16;

/// Dispatches to the gradient microkernel for `nt` taps.
///
/// # Safety
/// As for `grad_tile`.
#[cfg(target_arch = "x86_64")]
unsafe fn grad_microkernel(
    nt: usize,
    a: *const f32,
    offsets: &[usize],
    b: *const f32,
    b_stride: usize,
    len: usize,
    out: *mut f32,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match nt {
            6 => grad_tile::<6>(a, offsets, b, b_stride, len, out),
            5 => grad_tile::<5>(a, offsets, b, b_stride, len, out),
            4 => grad_tile::<4>(a, offsets, b, b_stride, len, out),
            3 => grad_tile::<3>(a, offsets, b, b_stride, len, out),
            2 => grad_tile::<2>(a, offsets, b, b_stride, len, out),
            _ => grad_tile::<1>(a, offsets, b, b_stride, len, out),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn grad_microkernel(
    _: usize,
    _: *const f32,
    _: &[usize],
    _: *const f32,
    _: usize,
    _: usize,
    _: *mut f32,
) {
    unreachable!("same_conv applies only on x86_64 with AVX2")
}

/// out[t * b_stride + j] += sum over q < len of a[offsets[t] + q] * b[q * b_stride + j],
/// for t < T and j < 16.
///
/// # Safety
/// The CPU has AVX2 and FMA; `offsets` has T entries; `a + offsets[t] + q` is readable
/// and `b + q * b_stride + j` too, for every t < T, q < len, j < 16; `out + t *
/// b_stride + j` is readable and writable for t < T, j < 16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // a register tile reads clearest indexed
unsafe fn grad_tile<const T: usize>(
    a: *const f32,
    offsets: &[usize],
    b: *const f32,
    b_stride: usize,
    len: usize,
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    debug_assert!(offsets.len() == T);
    // A fixed-size copy, so that the loads below unroll without a length check.
    let mut offs = [0usize; T];
    offs.copy_from_slice(&offsets[..T]);
    let mut lo = [_mm256_setzero_ps(); T];
    let mut hi = [_mm256_setzero_ps(); T];
    for q in 0..len {
        // SAFETY: readable per the contract.
        let (b0, b1) = unsafe {
            let row = b.add(q * b_stride);
            (_mm256_loadu_ps(row), _mm256_loadu_ps(row.add(8)))
        };
        for t in 0..T {
            // SAFETY: readable per the contract.
            let at = unsafe { _mm256_broadcast_ss(&*a.add(offs[t] + q)) };
            lo[t] = _mm256_fmadd_ps(at, b0, lo[t]);
            hi[t] = _mm256_fmadd_ps(at, b1, hi[t]);
        }
    }
    for t in 0..T {
        // SAFETY: readable and writable per the contract.
        unsafe {
            let dst = out.add(t * b_stride);
            _mm256_storeu_ps(dst, _mm256_add_ps(_mm256_loadu_ps(dst), lo[t]));
            _mm256_storeu_ps(
                dst.add(8),
                _mm256_add_ps(_mm256_loadu_ps(dst.add(8)), hi[t]),
            );
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
    add: bool,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match nr {
            6 => tile::<6>(a, offsets, b, out, out_stride, add),
            5 => tile::<5>(a, offsets, b, out, out_stride, add),
            4 => tile::<4>(a, offsets, b, out, out_stride, add),
            3 => tile::<3>(a, offsets, b, out, out_stride, add),
            2 => tile::<2>(a, offsets, b, out, out_stride, add),
            _ => tile::<1>(a, offsets, b, out, out_stride, add),
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn microkernel(
    _: usize,
    _: *const f32,
    _: &[usize],
    _: &[f32],
    _: *mut f32,
    _: usize,
    _: bool,
) {
    unreachable!("same_conv applies only on x86_64 with AVX2")
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
unsafe fn tile<const N: usize>(
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
    for j in 0..N {
        // SAFETY: writable, and readable when adding, per the contract.
        unsafe {
            let dst = out.add(j * out_stride);
            let (mut l, mut h) = (lo[j], hi[j]);
            if add {
                l = _mm256_add_ps(_mm256_loadu_ps(dst), l);
                h = _mm256_add_ps(_mm256_loadu_ps(dst.add(8)), h);
            }
            _mm256_storeu_ps(dst, l);
            _mm256_storeu_ps(dst.add(8), h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::im2col::im2col;

    /// Against im2col + the products by definition, forward and kernel gradient, for the
    /// kernel sizes and channel counts the nets use and for every tail (1 to 6 output
    /// channels forward, 1 to 6 taps for the gradient).
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
            (2, 10, 6, 5),
            (2, 32, 6, 5),
            (1, 16, 5, 5),
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
            if !weight_grad_applies(&win, o) {
                continue;
            }
            // The kernel gradient, added to what `dw_t` held, twice through one scratch.
            let dy: Vec<f32> = (0..o * n).map(|_| next()).collect();
            let mut dw_t = vec![1f32; win.rows() * o];
            let mut scratch = Scratch::new(&win, o);
            same_conv_weight_grad(&win, &other, &dy, o, &mut dw_t, &mut scratch);
            let mut dw_t = vec![1f32; win.rows() * o];
            same_conv_weight_grad(&win, &x, &dy, o, &mut dw_t, &mut scratch);
            for (i, &got) in dw_t.iter().enumerate() {
                let (r, oi) = (i / o, i % o);
                let want: f32 = 1.0
                    + (0..n)
                        .map(|q| cols[r * n + q] * dy[oi * n + q])
                        .sum::<f32>();
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "c {c} o {o} side {side} k {k}: dw_t[{i}] = {got}, want {want}"
                );
            }
        }
    }
}
