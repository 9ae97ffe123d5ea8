//! A "same" convolution (stride 1, k = 2 * pad + 1) without a column matrix, for CPUs
//! with AVX2 and FMA: most of a CIFAR-style net's convolutions, forward, their input
//! gradients (the same convolution of dY with the flipped kernel) and their kernel
//! gradients (`same_conv_weight_grad`).
//!
//! `im2col` writes every input value k*k times into a column matrix that the gemm then
//! reads back: 15 % of a training step was those copies. Here the image is copied once
//! into a zero-padded buffer whose rows are `w + 2 * pad` long. In that layout the input
//! under kernel tap (c, ky, kx) for output position (y, x) is at a constant shift from
//! the position's own start `y * row + x`: `c * plane + ky * row + kx`. The column
//! matrix's entries are read straight from the buffer.
//!
//! A strided convolution with k = 2 * pad + 1 (the nets' 3x3 stride-2 downsampling) is
//! the same product with other starts, `stride * (y * row + x)`: its forward product and
//! kernel gradient run here too, on the channel tiles (`forward_applies`); its input
//! gradient, not a convolution of dY, stays `col2im` of a gemm (`conv2d`).
//!
//! Two microkernels, both 12 AVX2 registers of sums (the shape of the `gemm` crate's
//! own kernel):
//! - channel tiles (o a multiple of 16): 16 output channels by 6 positions, each
//!   position with its own start, so only the image's h * w positions are computed;
//! - position tiles (other o): 16 consecutive positions along the padded rows by up to
//!   6 channels, one start for all; the positions on the padding columns are computed
//!   and dropped, and the count rounds up to 16.
//!
//! On CPUs with AVX-512 each has a twin on 512-bit registers (`Isa::Avx512`): 16
//! channels are one register, so the channel tiles and the kernel gradient's tiles take
//! 12 positions or taps (12 of the 32 registers hold sums), and a position tile is one
//! register per channel. Every output is the same chain of fused multiply-adds in the
//! same order on either instruction set, so the two give the same bits (tested; the
//! row tiles below leave out some products with zeros, which changes no bit but the
//! sign of an exact zero).
//!
//! For 3x3 stride-1 windows, the nets' most common, AVX-512 has row tiles instead
//! (`row_tiles`, `row_tile_512`, `row_grad_tile_512`): the three taps of a kernel row read
//! one image row at consecutive shifts, so each image value is broadcast once for the
//! three sums it feeds, where the tiles above broadcast once per fused multiply-add. On
//! cores with two 512-bit FMA units those broadcasts, not the arithmetic, were the limit.
//! Each sum takes its products in the same order as in the tiles above, less those with
//! the padding's zeros on the image's border, which the row tiles leave out (`Border`:
//! the forward tile skips the padding rows and columns there, the kernel gradient's the
//! padding columns). A zero times a finite value changes no sum but for the sign of an
//! exact zero, so with finite weights and gradients the bits are the other tiles'.

mod ahead;
mod forward_tiles;
mod gradient_tiles;
mod packing;
mod scratch;
mod stores;

use super::im2col::Window;
use super::transpose::transpose;
use crate::store::Store;
use ahead::Ahead;
pub use ahead::Image;
use forward_tiles::Border;
#[cfg(target_arch = "x86_64")]
use forward_tiles::{channel_tile, channel_tile_512, row_tile_512, tile, tile_512};
use gradient_tiles::Walk;
#[cfg(target_arch = "x86_64")]
use gradient_tiles::{grad_tile, grad_tile_512, row_grad_tile_512};
pub use packing::PackedKernel;
use packing::{channel_tiles_apply, CHANNEL_TILE};
pub use scratch::Scratch;
use scratch::{padded, Padded};

/// `tile::<N>(args)` for N = `n`, one of `sizes`, as one match over the const-generic
/// sizes of a register tile (1 to 6 for the AVX2 tiles, 1 to 12 for the AVX-512 ones);
/// unreachable off x86_64, where `applies` is false (so there the loops around a call
/// never loop, and their functions allow `clippy::never_loop` off x86_64).
macro_rules! for_size {
    ($n:expr, [$($size:literal),+], $tile:ident $args:tt) => {{
        #[cfg(target_arch = "x86_64")]
        match $n {
            $($size => $tile::<$size> $args,)+
            n => unreachable!("a register tile of {n}"),
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = ($n, $args);
            unreachable!("same_conv applies only on x86_64 with AVX2")
        }
    }};
}

/// `tile::<A, B>(args)` for A = `a`, one of `a_sizes`, and B = `b`, one of `b_sizes`:
/// the two sides of a register tile, as one match over the const-generic shapes;
/// unreachable off x86_64, where `applies` is false.
macro_rules! for_shape {
    ($a:expr, [$($x:literal),+], $b:expr, $b_sizes:tt, $tile:ident $args:tt) => {{
        #[cfg(target_arch = "x86_64")]
        match $a {
            $($x => for_shape!(@side $x, $b, $b_sizes, $tile $args),)+
            a => unreachable!("a register tile of {a} on one side"),
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = ($a, $b, $args);
            unreachable!("same_conv applies only on x86_64 with AVX2")
        }
    }};
    (@side $x:literal, $b:expr, [$($y:literal),+], $tile:ident $args:tt) => {
        match $b {
            $($y => $tile::<$x, $y> $args,)+
            b => unreachable!("a register tile of {b} on the other side"),
        }
    };
}

/// Output positions per microkernel call: two AVX2 registers of eight f32.
const MR: usize = 16;
/// Output channels per microkernel call, at most.
const NR: usize = 6;

/// Whether `win` is a "same" convolution this kernel computes, on this CPU: forward,
/// input gradient and (for whole groups of 16 output channels) kernel gradient.
pub fn applies(win: &Window) -> bool {
    win.is_same() && !win.is_identity() && has_avx2_fma()
}

/// Whether `win` is a strided convolution whose forward product and kernel gradient
/// this kernel computes with `o` output channels, on this CPU: a stride above 1, k =
/// 2 * pad + 1 (the nets' 3x3 downsampling convolutions and 1x1 projections), and whole
/// channel tiles. Each output position reads the padded image from its own start, so
/// the stride only moves the starts. (The input gradient is not a convolution of dY
/// here: it stays `col2im` of a product.)
fn strided_applies(win: &Window, o: usize) -> bool {
    win.stride > 1 && win.k == 2 * win.pad + 1 && channel_tiles_apply(o) && has_avx2_fma()
}

/// Whether `same_conv` takes `win` with `o` output channels.
pub fn forward_applies(win: &Window, o: usize) -> bool {
    applies(win) || strided_applies(win, o)
}

/// The instruction set of the microkernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    Avx2,
    Avx512,
}

impl Isa {
    /// What this CPU runs: AVX-512 where it has it, unless `DEGRADE_KERNELS=avx2` asks
    /// for the AVX2 path (to measure it on such a machine; the numbers are the same).
    /// Read once.
    pub fn here() -> Isa {
        static HERE: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *HERE.get_or_init(|| {
            let forced_avx2 = std::env::var("DEGRADE_KERNELS").is_ok_and(|v| v == "avx2");
            if has_avx512() && !forced_avx2 {
                Isa::Avx512
            } else {
                Isa::Avx2
            }
        })
    }

    /// Every instruction set this CPU can run the kernels on (for tests).
    #[cfg(test)]
    fn available() -> Vec<Isa> {
        let mut all = Vec::new();
        if has_avx2_fma() {
            all.push(Isa::Avx2);
        }
        if has_avx512() {
            all.push(Isa::Avx512);
        }
        all
    }

    /// Whether the row tiles (`row_tile_512`, `row_grad_tile_512`) compute `win`: on
    /// AVX-512, a 3x3 stride-1 "same" window, whose three taps of a kernel row read one
    /// image row at consecutive shifts. (On AVX2, 16 registers leave no room for them.)
    fn row_tiles_apply(self, win: &Window) -> bool {
        self == Isa::Avx512 && win.is_same() && win.k == 3
    }

    /// Positions per channel tile and taps per kernel-gradient tile, at most.
    fn tile_len(self) -> usize {
        match self {
            Isa::Avx2 => NR,
            Isa::Avx512 => 12,
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    has_avx2_fma() && std::is_x86_feature_detected!("avx512f")
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn has_avx2_fma() -> bool {
    false
}

/// The padded layout of `win`, once it is checked that the CPU runs `isa`.
fn padded_for(isa: Isa, win: &Window) -> Padded {
    assert!(
        isa != Isa::Avx512 || has_avx512(),
        "AVX-512 kernels on a CPU without it"
    );
    padded(win)
}

/// `y = conv(x)` for one image: `x` is (c, h, w), `y` is (o, out_h, out_w), the kernel
/// packed from (o, c, k, k), `scratch` made for this window and kernel. `win` and o
/// must be ones that `forward_applies` to. The next image of `x`'s batch is brought into
/// L2 meanwhile (`Image`).
pub fn same_conv<E: Store>(
    win: &Window,
    x: Image<'_>,
    kernel: &PackedKernel,
    y: &mut [E],
    scratch: &mut Scratch,
) {
    same_conv_on(Isa::here(), win, x, kernel, y, scratch)
}

/// `same_conv` on the given instruction set, which the CPU must have.
fn same_conv_on<E: Store>(
    isa: Isa,
    win: &Window,
    x: Image<'_>,
    kernel: &PackedKernel,
    y: &mut [E],
    scratch: &mut Scratch,
) {
    let p = padded_for(isa, win);
    let (c, k) = (win.channels, win.k);
    let o = kernel.out_channels;
    assert!(
        forward_applies(win, o),
        "same_conv on a window it does not apply to"
    );
    assert_eq!(kernel.taps, c * k * k, "kernel and window differ");
    assert_eq!(y.len(), o * win.cols(), "output of the wrong size");
    scratch.load(win, &p, x.values(win.image_len()), o);
    let next = x.next(win.image_len());
    // Strided windows take channel tiles only (`strided_applies`): the position tiles
    // read consecutive positions along the padded rows.
    if channel_tiles_apply(o) && isa.row_tiles_apply(win) {
        row_tiles(win, &p, kernel, y, scratch, next);
    } else if channel_tiles_apply(o) {
        channel_tiles(isa, win, kernel, y, scratch, next);
    } else {
        position_tiles(isa, win, &p, kernel, y, scratch, next);
    }
}

/// The forward product in tiles of 16 output channels by up to 6 output positions:
/// each position reads the padded image from its own start, so only the h * w positions
/// of the image are computed. (Along padded rows, `position_tiles` also computes the
/// padding columns' positions and rounds up to 16: a 7x7 image took 64 positions for
/// its 49, a 14x14 one 224 for 196.) The sums go to `scratch.wide` position-major,
/// (out_h * out_w, o), and are transposed into `y` at the end. With a stride, only the
/// starts differ (`Scratch::new`). `next` is brought into L2 meanwhile.
#[cfg_attr(not(target_arch = "x86_64"), allow(clippy::never_loop))]
fn channel_tiles<E: Store>(
    isa: Isa,
    win: &Window,
    kernel: &PackedKernel,
    y: &mut [E],
    scratch: &mut Scratch,
    next: &[f32],
) {
    let (hw, o) = (win.cols(), kernel.out_channels);
    let tiles = || balanced_tiles(hw, isa.tile_len());
    let mut ahead = Ahead::new(next, passes_and_panels(kernel).count() * tiles().count());
    for (k0, k1, o0, weights) in passes_and_panels(kernel) {
        for (q0, nq) in tiles() {
            ahead.step();
            let (a, starts, offsets) = (
                scratch.padded.as_ptr(),
                &scratch.starts[q0..q0 + nq],
                &scratch.offsets[k0..k1],
            );
            // SAFETY: AVX2 and FMA are present (`forward_applies`, asserted by the
            // caller), and AVX-512 for its tile (asserted by `same_conv_on`); the
            // reads at `starts[q] + offsets[t]` are within `padded` (starts,
            // stride * (y * row + x) with y < out_h and x < out_w, put the window's
            // last row and column at most at the padded image's, as out_h and out_w
            // are counted so; `load` asserted that the scratch is this window's);
            // `weights` holds 16 values per tap; the writes at `(q0 + j) * o + o0 +
            // 0..16`, j < nq, are within `wide` (`load` asserted its o * p.wide
            // values, hw <= h * w <= p.wide, o0 + 16 <= o).
            unsafe {
                let out = scratch.wide.as_mut_ptr().add(q0 * o + o0);
                match isa {
                    Isa::Avx2 => for_size!(
                        nq,
                        [1, 2, 3, 4, 5, 6],
                        channel_tile(a, starts, offsets, weights, out, o, k0 > 0)
                    ),
                    Isa::Avx512 => for_size!(
                        nq,
                        [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
                        channel_tile_512(a, starts, offsets, weights, out, o, k0 > 0)
                    ),
                }
            }
        }
    }
    transpose(&scratch.wide[..hw * o], hw, o, y);
}

/// The forward product of a 3x3 stride-1 window on AVX-512 (`Isa::row_tiles_apply`),
/// in tiles of 16 output channels by a few output rows by a run of positions along
/// each (`row_tile_plan`), each image value broadcast once for the three taps of a
/// kernel row (`row_tile_512`). Passes over the taps, the sums' layout and the
/// transpose as in `channel_tiles`, and the same bits (less the padding's zero products
/// on the border, see the module's doc). `next` is brought into L2 meanwhile.
#[cfg_attr(not(target_arch = "x86_64"), allow(clippy::never_loop))]
fn row_tiles<E: Store>(
    win: &Window,
    p: &Padded,
    kernel: &PackedKernel,
    y: &mut [E],
    scratch: &mut Scratch,
    next: &[f32],
) {
    let (w, o) = (win.w, kernel.out_channels);
    // Whole channels per pass: its groups of three taps are kernel rows 0, 1 and 2 in
    // turn, as `row_tile_512` needs to tell the rows on the padding.
    const { assert!(TAPS_PER_PASS.is_multiple_of(9)) };
    let tiles = || row_tile_plan(win.h, w);
    let mut ahead = Ahead::new(next, passes_and_panels(kernel).count() * tiles().count());
    for (k0, k1, o0, weights) in passes_and_panels(kernel) {
        for (y0, rows, x0, cols) in tiles() {
            ahead.step();
            let border = Border {
                top: y0 == 0,
                bottom: y0 + rows == win.h,
                left: x0 == 0,
                right: x0 + cols == w,
            };
            // SAFETY: AVX-512 is present (`row_tiles_apply`, asserted by
            // `same_conv_on` through `padded_for`); `offsets[k0..k1]` is whole
            // channels (taps = c * 9 and the pass length are multiples of 9), each
            // kernel row three consecutive offsets c * plane + ky * row + kx; the reads at
            // (y0 + r) * row + x0 + offset + i, r < rows, i < cols + 2, are image
            // rows y0 + r + ky < h + 2 and columns x0 + i <= w + 1 < row of channel
            // c, within `padded` (`load` asserted that the scratch is this window's);
            // `weights` holds 16 values per tap; the writes at ((y0 + r) * w + x0 +
            // q) * o + o0 + 0..16, q < cols, are within `wide` (its o * p.wide
            // values, h * w <= p.wide, o0 + 16 <= o); the values `border` skips are
            // the padding's, which `load` leaves zero.
            unsafe {
                let a = scratch.padded.as_ptr().add(y0 * p.row + x0);
                let out = scratch.wide.as_mut_ptr().add((y0 * w + x0) * o + o0);
                let offsets = &scratch.offsets[k0..k1];
                // The shapes `row_tile_plan` makes: N up to ROW_TILE_COLS, R up to
                // ROW_TILE_ROWS (and R * N up to ROW_TILE_SUMS).
                for_shape!(
                    rows,
                    [1, 2, 3, 4],
                    cols,
                    [1, 2, 3, 4, 5, 6, 7, 8],
                    row_tile_512(a, p.row, offsets, weights, out, o, w * o, k0 > 0, border)
                );
            }
        }
    }
    transpose(&scratch.wide[..win.h * w * o], win.h * w, o, y);
}

/// The row tiles of an h x w image, (y0, rows, x0, cols): each row cut into balanced
/// runs of at most ROW_TILE_COLS positions, the rows taken in balanced groups of as many
/// as the longest run leaves registers for (ROW_TILE_SUMS), and at most ROW_TILE_ROWS.
/// A 28x28 image is 10 tiles of 3 or 2 rows by 4 runs of 7, a 7x7 one 3, 2 and 2 rows
/// by 7.
fn row_tile_plan(h: usize, w: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    let longest = w.div_ceil(w.div_ceil(ROW_TILE_COLS).max(1));
    let max_rows = (ROW_TILE_SUMS / longest.max(1)).min(ROW_TILE_ROWS);
    balanced_tiles(h, max_rows).flat_map(move |(y0, rows)| {
        balanced_tiles(w, ROW_TILE_COLS).map(move |(x0, cols)| (y0, rows, x0, cols))
    })
}

/// Positions along one row per row tile, at most: a row of 28 or 32 cuts into runs of 7
/// or 8. (Longer runs, 14 in one, left the compiler's loops rolled, the sums on the
/// stack.)
const ROW_TILE_COLS: usize = 8;
/// Rows per row tile, at most.
const ROW_TILE_ROWS: usize = 4;
/// Sums per row tile, at most: rows times positions, in registers with the group's three
/// weights and the broadcasts. (At 28, a tile of 4 rows by 7 kept one sum on the stack,
/// stored and loaded again for every kernel row.)
const ROW_TILE_SUMS: usize = 24;

/// The channel tiles' work (`channel_tiles`, `row_tiles`) in passes over the taps, as in
/// `position_tiles`, and within a pass in panels of 16 output channels: (k0, k1, o0,
/// the panel's weights for taps k0..k1).
fn passes_and_panels(
    kernel: &PackedKernel,
) -> impl Iterator<Item = (usize, usize, usize, &[f32])> + '_ {
    let taps = kernel.taps;
    (0..taps).step_by(TAPS_PER_PASS).flat_map(move |k0| {
        let k1 = (k0 + TAPS_PER_PASS).min(taps);
        kernel
            .values
            .chunks_exact(CHANNEL_TILE * taps)
            .zip((0..kernel.out_channels).step_by(CHANNEL_TILE))
            .map(move |(panel, o0)| (k0, k1, o0, &panel[k0 * CHANNEL_TILE..k1 * CHANNEL_TILE]))
    })
}

/// `n` items cut into the fewest tiles of at most `max`, of sizes that differ by at most
/// one: (start, size) pairs. A 7x7 image's 49 positions are 4 tiles of 6 and 5 of 5, not
/// 8 of 6 and one of 1 (a tile of one position does a third of the work per load).
fn balanced_tiles(n: usize, max: usize) -> impl Iterator<Item = (usize, usize)> {
    let tiles = n.div_ceil(max);
    let base = n.checked_div(tiles).unwrap_or(0);
    let longer = n.checked_rem(tiles).unwrap_or(0);
    (0..tiles).map(move |i| (i * base + i.min(longer), base + usize::from(i < longer)))
}

/// The forward product in tiles of 16 positions along the padded rows by up to 6
/// output channels: for channel counts that are not whole channel tiles. `next` is
/// brought into L2 meanwhile.
#[cfg_attr(not(target_arch = "x86_64"), allow(clippy::never_loop))]
fn position_tiles<E: Store>(
    isa: Isa,
    win: &Window,
    p: &Padded,
    kernel: &PackedKernel,
    y: &mut [E],
    scratch: &mut Scratch,
    next: &[f32],
) {
    let (h, w, o) = (win.h, win.w, kernel.out_channels);
    // Blocks of MR positions, up to POSITION_BLOCKS of them per AVX-512 call (its 32
    // registers hold the sums of several blocks: with one, a panel of two channels had
    // two chains of sums and waited on their latency).
    let max_blocks = match isa {
        Isa::Avx2 => 1,
        Isa::Avx512 => POSITION_BLOCKS,
    };
    let blocks = || balanced_tiles(p.wide / MR, max_blocks);
    let passes = || (0..kernel.taps).step_by(TAPS_PER_PASS);
    let calls = passes().count() * (0..o).step_by(NR).count() * blocks().count();
    let mut ahead = Ahead::new(next, calls);
    // The taps go in passes of TAPS_PER_PASS, each adding to the output: a tile's
    // image rows and weights for one pass stay in L1 (all 576 taps of 64 channels did
    // not, and the kernel ran at three quarters of its speed at width 64).
    for k0 in passes() {
        let k1 = (k0 + TAPS_PER_PASS).min(kernel.taps);
        let mut packed = kernel.values.as_slice();
        for o0 in (0..o).step_by(NR) {
            let nr = NR.min(o - o0);
            let (panel, rest) = packed.split_at(nr * kernel.taps);
            packed = rest;
            let out = &mut scratch.wide[o0 * p.wide..(o0 + nr) * p.wide];
            for (b0, blocks) in blocks() {
                ahead.step();
                let q0 = b0 * MR;
                // SAFETY: AVX2 and FMA are present (`applies`, asserted by the caller),
                // and AVX-512 for its tile (asserted by `same_conv_on`); the loads at
                // `offsets[t] + q0 + 0..blocks * MR` are within `padded` (asserted in
                // `Scratch::new` for reads up to offset + p.wide, q0 + blocks * MR <=
                // p.wide, a multiple of MR, and `load` asserted that the scratch is this
                // window's); the panel's taps k0..k1 hold (k1 - k0) * nr weights; the
                // loads and stores at `j * p.wide + q0 + 0..blocks * MR`, j < nr, are
                // within `out`.
                unsafe {
                    let (a, offsets, b, out) = (
                        scratch.padded.as_ptr().add(q0),
                        &scratch.offsets[k0..k1],
                        &panel[k0 * nr..k1 * nr],
                        out.as_mut_ptr().add(q0),
                    );
                    match isa {
                        Isa::Avx2 => for_size!(
                            nr,
                            [1, 2, 3, 4, 5, 6],
                            tile(a, offsets, b, out, p.wide, k0 > 0)
                        ),
                        Isa::Avx512 => for_shape!(
                            blocks,
                            [1, 2, 3, 4],
                            nr,
                            [1, 2, 3, 4, 5, 6],
                            tile_512(a, offsets, b, out, p.wide, k0 > 0)
                        ),
                    }
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

/// Whether `same_conv_weight_grad` takes `win` with `o` output channels: whole groups
/// of 16, for a "same" or a strided window (`forward_applies`).
pub fn weight_grad_applies(win: &Window, o: usize) -> bool {
    forward_applies(win, o) && o.is_multiple_of(GU)
}

/// Adds one image's kernel gradient to `dw_t`, the (c * k * k, o) transpose of the
/// kernel's layout: `dw_t[tap][oi] += sum over positions of x(shifted by tap) * dy[oi]`.
/// `x` is (c, h, w), `dy` (o, out_h, out_w); `scratch` made by `Scratch::new(win, o)`.
/// The next image of `x`'s batch is brought into L2 meanwhile (`Image`).
///
/// The same layout trick as `same_conv`: with dY transposed, position-major, the
/// product over output positions is a sum of the padded image at the tap's shift times
/// a row of dY^T, so no column matrix is built and nothing is packed. The microkernel
/// keeps 6 taps x 16 channels in registers for the whole sum, and walks the image's
/// rows itself, so that only the h * w positions are summed (along the padded rows it
/// also summed the padding columns' zeros: 64 positions for a 7x7 image's 49).
pub fn same_conv_weight_grad(
    win: &Window,
    x: Image<'_>,
    dy: &[f32],
    o: usize,
    dw_t: &mut [f32],
    scratch: &mut Scratch,
) {
    same_conv_weight_grad_on(Isa::here(), win, x, dy, o, dw_t, scratch)
}

/// `same_conv_weight_grad` on the given instruction set, which the CPU must have.
#[cfg_attr(not(target_arch = "x86_64"), allow(clippy::never_loop))]
fn same_conv_weight_grad_on(
    isa: Isa,
    win: &Window,
    x: Image<'_>,
    dy: &[f32],
    o: usize,
    dw_t: &mut [f32],
    scratch: &mut Scratch,
) {
    let p = padded_for(isa, win);
    let (c, k, s) = (win.channels, win.k, win.stride);
    // The output's rows and columns: dY's positions.
    let (h, w) = (win.out_h(), win.out_w());
    let taps = c * k * k;
    assert!(
        weight_grad_applies(win, o),
        "same_conv_weight_grad does not apply"
    );
    assert_eq!(dy.len(), o * h * w, "gradient of the wrong size");
    assert_eq!(dw_t.len(), taps * o, "kernel gradient of the wrong size");
    scratch.load(win, &p, x.values(win.image_len()), o);
    // dY^T: wide[q * o + oi] for the h * w output positions.
    let hw = h * w;
    transpose(dy, o, hw, &mut scratch.wide[..hw * o]);
    // Whole output rows per pass, about POSITIONS_PER_PASS positions.
    let rows_per_pass = (POSITIONS_PER_PASS / w).max(1);
    // The taps in tiles: whole kernel rows of three for the row tiles (taps = c * 9),
    // which sweep each padded row from column 1 to column w (the padding's columns 0
    // and w + 1 left out), and need w >= 2.
    let row_tiles = isa.row_tiles_apply(win) && w >= 2;
    let (tap_unit, max_units) = if row_tiles {
        (3, GRAD_GROUPS)
    } else {
        (1, isa.tile_len())
    };
    let tiles = || balanced_tiles(taps / tap_unit, max_units);
    let calls =
        (0..o).step_by(GU).count() * (0..h).step_by(rows_per_pass).count() * tiles().count();
    let mut ahead = Ahead::new(x.next(win.image_len()), calls);
    for o0 in (0..o).step_by(GU) {
        for y0 in (0..h).step_by(rows_per_pass) {
            let rows = rows_per_pass.min(h - y0);
            for (u0, units) in tiles() {
                ahead.step();
                let (t0, nt) = (u0 * tap_unit, units * tap_unit);
                // SAFETY: AVX2 and FMA are present (`weight_grad_applies`, asserted
                // above); the reads at `offsets[t] + s * (y * p.row + x)`, y < out_h,
                // x < out_w, are within `padded` (as the forward's, `channel_tiles`;
                // `load` asserted that the scratch is this window's) and those
                // at `(y * w + x) * o + o0 + 0..GU` within the h * w * o values of `wide`
                // written above (o0 + GU <= o as o is a multiple of GU); the
                // read-modify-writes at `(t0 + t) * o + o0 + 0..GU`, t < nt, are within
                // `dw_t` (its length, asserted above). For the row tiles, AVX-512 is
                // present (`row_tiles_apply`), each group is three consecutive offsets of
                // one kernel row (t0 and nt are multiples of 3), the stride is 1 and w
                // at least 2, and a group's reads at columns p < w + 2 of an image row
                // stay within its padded row (the window's last column is w + 1); the
                // columns 0 and w + 1 that the row tile takes as zero are the padding,
                // which `load` leaves zero.
                unsafe {
                    let (a, offsets, b, out) = (
                        scratch.padded.as_ptr().add(y0 * s * p.row),
                        &scratch.offsets[t0..t0 + nt],
                        scratch.wide.as_ptr().add(y0 * w * o + o0),
                        dw_t.as_mut_ptr().add(t0 * o + o0),
                    );
                    let walk = Walk {
                        rows,
                        w,
                        row_step: s * p.row,
                        step: s,
                    };
                    match isa {
                        Isa::Avx2 => {
                            for_size!(
                                nt,
                                [1, 2, 3, 4, 5, 6],
                                grad_tile(a, offsets, b, o, walk, out)
                            )
                        }
                        Isa::Avx512 if row_tiles => {
                            for_size!(
                                units,
                                [1, 2, 3, 4, 5, 6],
                                row_grad_tile_512(a, offsets, b, o, walk, out)
                            )
                        }
                        Isa::Avx512 => {
                            for_size!(
                                nt,
                                [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
                                grad_tile_512(a, offsets, b, o, walk, out)
                            )
                        }
                    }
                }
            }
        }
    }
}

/// Blocks of MR positions per AVX-512 position tile, at most: up to 24 sums (6
/// channels by 4 blocks), the blocks' image values and a broadcast in 32 registers.
const POSITION_BLOCKS: usize = 4;

/// Taps per pass of the forward kernel: 16 channels of a 3x3 kernel, about 6 KB of image
/// rows and 3.5 KB of weights per tile.
const TAPS_PER_PASS: usize = 144;

/// Output positions per pass of the gradient kernel, about: 128 rows of dY^T, 8 KB for
/// 16 channels, stay in L1 while every tap goes past them.
const POSITIONS_PER_PASS: usize = 128;

/// Kernel rows (groups of three taps) per row tile of the kernel gradient, at most:
/// 18 registers of sums, three of dY^T and a broadcast.
const GRAD_GROUPS: usize = 6;

/// Output channels per gradient microkernel call: 16, with `Isa::tile_len` taps (6 x
/// 16 sums in twelve AVX2 registers, six broadcasts of the image and two loads of dY^T
/// per step; 12 x 16 in twelve AVX-512 registers, twelve broadcasts and one load).
const GU: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::im2col::im2col;

    #[test]
    fn balanced_tiles_cover_everything_once_in_near_equal_sizes() {
        for n in 0..100 {
            let tiles: Vec<_> = balanced_tiles(n, 6).collect();
            assert_eq!(tiles.len(), n.div_ceil(6), "n {n}");
            let mut next = 0;
            for &(start, size) in &tiles {
                assert_eq!(start, next, "n {n}: {tiles:?}");
                assert!((1..=6).contains(&size), "n {n}: {tiles:?}");
                next += size;
            }
            assert_eq!(next, n, "n {n}: {tiles:?}");
            let sizes = tiles.iter().map(|t| t.1);
            let spread = sizes.clone().max().unwrap_or(0) - sizes.min().unwrap_or(0);
            assert!(spread <= 1, "n {n}: {tiles:?}");
        }
        assert_eq!(balanced_tiles(49, 6).filter(|t| t.1 == 6).count(), 4);
    }

    /// Against im2col + the products by definition, forward and kernel gradient, on
    /// every instruction set this CPU has, for the kernel sizes and channel counts the
    /// nets use and for every tail (1 to 6 output channels forward, 1 to 6 taps for the
    /// AVX2 gradient, 1 to 12 positions and taps for the AVX-512 tiles); the instruction
    /// sets give the same bits.
    #[test]
    fn matches_the_column_matrix_product() {
        if skipped_without_avx2() {
            return;
        }
        let mut values = Values(1);
        // (c, o, h, w, k, stride): position tiles where o is not a multiple of 16,
        // channel tiles where it is, with tiles of every size from 1 to 6 positions;
        // strided windows (channel tiles only) with odd and even sides, 3x3 and 1x1.
        for &(c, o, h, w, k, stride) in &[
            (1, 16, 28, 29, 3, 1),
            (3, 7, 9, 10, 3, 1),
            (16, 16, 14, 15, 3, 1),
            (16, 13, 7, 8, 5, 1),
            (64, 64, 7, 8, 3, 1),
            (2, 1, 1, 2, 3, 1),
            (2, 10, 6, 7, 5, 1),
            (2, 32, 6, 7, 5, 1),
            (1, 16, 5, 6, 5, 1),
            (2, 16, 1, 1, 3, 1),
            (2, 16, 1, 2, 3, 1),
            (2, 32, 1, 3, 3, 1),
            (2, 16, 2, 3, 3, 1),
            (3, 16, 3, 3, 3, 1),
            (2, 32, 2, 5, 3, 1),
            (2, 16, 5, 7, 5, 1),
            (17, 48, 7, 7, 3, 1),
            (4, 16, 2, 2, 5, 1),
            (5, 16, 1, 5, 5, 1),
            (7, 16, 1, 7, 5, 1),
            (8, 16, 2, 4, 5, 1),
            (10, 16, 3, 4, 5, 1),
            (11, 16, 1, 11, 5, 1),
            (16, 32, 28, 28, 3, 2),
            (32, 64, 14, 14, 3, 2),
            (16, 16, 7, 7, 3, 2),
            (3, 16, 9, 10, 3, 3),
            (16, 32, 8, 7, 1, 2),
            (2, 16, 1, 1, 3, 2),
            (5, 48, 11, 5, 5, 2),
        ] {
            check_against_columns(c, o, h, w, k, stride, &mut values);
        }
    }

    /// The AVX-512 row tiles of 3x3 stride-1 windows (`row_tile_plan`, `GRAD_GROUPS`)
    /// on every image side from 1 to 17 by 1 to 9, so that every tile shape runs, with
    /// 1 to 17 input channels (3 to 6 kernel-gradient groups per tile, as many as c * 3
    /// groups split into, and passes of whole kernel rows), as
    /// `matches_the_column_matrix_product` checks.
    #[test]
    fn row_tiles_match_the_column_matrix_product_on_every_shape() {
        if skipped_without_avx2() {
            return;
        }
        let mut values = Values(2);
        for h in 1..=9 {
            for w in 1..=17 {
                let c = 1 + (h * 17 + w) % 17;
                check_against_columns(c, 16, h, w, 3, 1, &mut values);
            }
        }
        // Passes over the taps (TAPS_PER_PASS) that split the channels, with two
        // panels of 16 output channels.
        check_against_columns(20, 32, 6, 9, 3, 1, &mut values);
        let shapes: Vec<_> = (1..=9)
            .flat_map(|h| (1..=17).flat_map(move |w| row_tile_plan(h, w)))
            .map(|(_, rows, _, cols)| (rows, cols))
            .collect();
        for (rows, cols) in [(3, 7), (3, 8), (4, 6), (4, 1), (1, 8)] {
            assert!(shapes.contains(&(rows, cols)), "no tile of {rows} x {cols}");
        }
    }

    /// The position tiles (output channels not a multiple of 16) with panels of every
    /// width from 1 to 6 channels and AVX-512 calls of 1 to 4 blocks of positions, as
    /// `matches_the_column_matrix_product` checks.
    #[test]
    fn position_tiles_match_the_column_matrix_product_on_every_shape() {
        if skipped_without_avx2() {
            return;
        }
        let mut values = Values(3);
        for o in 1..16 {
            // Padded positions h * (w + 2), rounded up to 16: 1 to 9 blocks.
            for (h, w) in [
                (1, 1),
                (2, 9),
                (4, 10),
                (7, 7),
                (5, 11),
                (6, 14),
                (4, 26),
                (8, 14),
                (9, 14),
            ] {
                check_against_columns(1 + (o + h) % 3, o, h, w, 3, 1, &mut values);
            }
        }
    }

    #[test]
    fn row_tile_plans_cover_the_image_once_within_the_registers() {
        for h in 0..40 {
            for w in 0..40 {
                let mut covered = vec![0u8; h * w];
                for (y0, rows, x0, cols) in row_tile_plan(h, w) {
                    assert!(rows <= ROW_TILE_ROWS && cols <= ROW_TILE_COLS, "{h}x{w}");
                    assert!(rows * cols <= ROW_TILE_SUMS, "{h}x{w}: {rows} x {cols}");
                    for y in y0..y0 + rows {
                        for x in x0..x0 + cols {
                            covered[y * w + x] += 1;
                        }
                    }
                }
                assert!(covered.iter().all(|&n| n == 1), "{h}x{w}");
            }
        }
        assert_eq!(
            row_tile_plan(28, 28).collect::<Vec<_>>()[..5],
            [
                (0, 3, 0, 7),
                (0, 3, 7, 7),
                (0, 3, 14, 7),
                (0, 3, 21, 7),
                (3, 3, 0, 7)
            ]
        );
        assert_eq!(
            row_tile_plan(7, 7).collect::<Vec<_>>(),
            [(0, 3, 0, 7), (3, 2, 0, 7), (5, 2, 0, 7)]
        );
    }

    /// The row tiles never read the padding they leave out: for each of the 16
    /// combinations of `Border`'s sides, a forward tile with NaN on exactly the sides it
    /// names (zeros on the others) gives the bits that a tile naming none gives with zeros
    /// all round, which it multiplies; the kernel gradient with NaN in the padding's
    /// columns gives the bits it gives with zeros. Tiles of one row and of one column
    /// (both sides at once), two channels (the kernel rows' cycle across a channel).
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn row_tiles_skip_the_padding_on_the_border() {
        if !has_avx512() {
            eprintln!("skipped: this CPU has no AVX-512, so the row tiles never run");
            return;
        }
        let mut values = Values(4);
        check_border_skips::<1, 1>(&mut values);
        check_border_skips::<1, 8>(&mut values);
        check_border_skips::<2, 2>(&mut values);
        check_border_skips::<3, 7>(&mut values);
        check_border_skips::<4, 6>(&mut values);
    }

    /// `row_tiles_skip_the_padding_on_the_border` for tiles of R rows by N positions.
    #[cfg(target_arch = "x86_64")]
    fn check_border_skips<const R: usize, const N: usize>(values: &mut Values) {
        let c = 2;
        let (row, plane) = (N + 2, (R + 2) * (N + 2));
        let image = values.take(c * plane);
        // The image, padded with `pad(y, x)` on rows 0 and R + 1 and columns 0 and N + 1.
        let padded = |pad: &dyn Fn(usize, usize) -> f32| -> Vec<f32> {
            let value = |(i, &v): (usize, &f32)| {
                let (y, x) = ((i % plane) / row, i % row);
                let padding = y == 0 || y == R + 1 || x == 0 || x == N + 1;
                if padding {
                    pad(y, x)
                } else {
                    v
                }
            };
            image.iter().enumerate().map(value).collect()
        };
        let bits = |v: &[f32]| v.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        let offsets: Vec<usize> = (0..c)
            .flat_map(|ci| (0..3).flat_map(move |ky| (0..3).map(move |kx| (ci, ky, kx))))
            .map(|(ci, ky, kx)| ci * plane + ky * row + kx)
            .collect();
        let weights = values.take(offsets.len() * CHANNEL_TILE);
        let forward = |a: &[f32], border: Border| {
            let mut out = vec![0f32; R * N * CHANNEL_TILE];
            // SAFETY: AVX-512 is present; `offsets` is two whole channels of the
            // (R + 2) x (N + 2) padded planes in `a`, read at rows r + ky <= R + 1 and
            // columns i <= N + 1; `weights` holds 16 values per tap; `out` holds R * N
            // positions of 16 channels.
            unsafe {
                row_tile_512::<R, N>(
                    a.as_ptr(),
                    row,
                    &offsets,
                    &weights,
                    out.as_mut_ptr(),
                    CHANNEL_TILE,
                    N * CHANNEL_TILE,
                    false,
                    border,
                )
            };
            bits(&out)
        };
        let zeros = padded(&|_, _| 0.0);
        let none = Border {
            top: false,
            bottom: false,
            left: false,
            right: false,
        };
        let want = forward(&zeros, none);
        for sides in 0..16u8 {
            let border = Border {
                top: sides & 1 != 0,
                bottom: sides & 2 != 0,
                left: sides & 4 != 0,
                right: sides & 8 != 0,
            };
            let named = |y: usize, x: usize| {
                (border.top && y == 0)
                    || (border.bottom && y == R + 1)
                    || (border.left && x == 0)
                    || (border.right && x == N + 1)
            };
            let nans = padded(&|y, x| if named(y, x) { f32::NAN } else { 0.0 });
            assert_eq!(forward(&nans, border), want, "{R} x {N}, {border:?}");
        }
        if N < 2 {
            return; // the kernel gradient's row tile needs rows of two or more
        }
        let dy = values.take(R * N * CHANNEL_TILE);
        let weight_grad = |a: &[f32]| {
            let mut out = vec![0f32; offsets.len() * CHANNEL_TILE];
            let walk = Walk {
                rows: R,
                w: N,
                row_step: row,
                step: 1,
            };
            // SAFETY: AVX-512 is present; six groups of three consecutive offsets, read
            // at rows y + ky <= R + 1 and columns p <= N + 1 of `a`'s planes; dY^T holds
            // R * N positions of 16 channels; `out` 18 taps of 16.
            unsafe {
                row_grad_tile_512::<6>(
                    a.as_ptr(),
                    &offsets,
                    dy.as_ptr(),
                    CHANNEL_TILE,
                    walk,
                    out.as_mut_ptr(),
                )
            };
            bits(&out)
        };
        // Its sweep reads the padding rows above and below (their products are not
        // skipped), not the columns on either side.
        let nan_columns = padded(&|_, x| if x == 0 || x == N + 1 { f32::NAN } else { 0.0 });
        assert_eq!(weight_grad(&nan_columns), weight_grad(&zeros), "{R} x {N}");
    }

    /// Whether this CPU lacks AVX2 and FMA, said on stderr: then the direct kernels never
    /// run (the callers use im2col + gemm), and there is nothing to compare.
    fn skipped_without_avx2() -> bool {
        if has_avx2_fma() {
            return false;
        }
        eprintln!("skipped: this CPU has no AVX2 and FMA, so the direct kernel never runs");
        true
    }

    /// A seeded stream of values in [-0.5, 0.5).
    struct Values(u32);

    impl Values {
        fn next(&mut self) -> f32 {
            self.0 = self.0.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (self.0 >> 8) as f32 / (1 << 24) as f32 - 0.5
        }

        fn take(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.next()).collect()
        }
    }

    /// `same_conv` and `same_conv_weight_grad` (where it applies) of one window against
    /// im2col and the products by definition, within 1e-4, on every instruction set this
    /// CPU has, each through a scratch that saw another image first; the instruction
    /// sets give the same bits.
    fn check_against_columns(
        c: usize,
        o: usize,
        h: usize,
        w: usize,
        k: usize,
        stride: usize,
        values: &mut Values,
    ) {
        let win = Window {
            channels: c,
            h,
            w,
            k,
            stride,
            pad: k / 2,
        };
        let x = values.take(win.image_len());
        let w = values.take(o * win.rows());
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
        let other = values.take(win.image_len());
        let dy = values.take(o * n);
        // A batch of the two: `other` (with `x` next), then `x` (the last image).
        let batch = [other.as_slice(), x.as_slice()].concat();
        let (other, x) = (
            Image {
                batch: &batch,
                index: 0,
            },
            Image {
                batch: &batch,
                index: 1,
            },
        );
        let mut results: Vec<(Isa, Vec<u32>)> = Vec::new();
        for isa in Isa::available() {
            let case = format!("{isa:?}: c {c} o {o} {h}x{w} k {k} s {stride}", w = win.w);
            let mut scratch = Scratch::new(&win, o);
            // Another image first, through the same scratch: it must leave no trace.
            let mut y = vec![f32::NAN; o * n];
            same_conv_on(isa, &win, other, &kernel, &mut y, &mut scratch);
            same_conv_on(isa, &win, x, &kernel, &mut y, &mut scratch);
            for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                    "{case}: y[{i}] = {a}, want {b}"
                );
            }
            let mut bits: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
            if weight_grad_applies(&win, o) {
                // The kernel gradient, added to what `dw_t` held, twice through one
                // scratch.
                let mut dw_t = vec![1f32; win.rows() * o];
                let mut scratch = Scratch::new(&win, o);
                same_conv_weight_grad_on(isa, &win, other, &dy, o, &mut dw_t, &mut scratch);
                let mut dw_t = vec![1f32; win.rows() * o];
                same_conv_weight_grad_on(isa, &win, x, &dy, o, &mut dw_t, &mut scratch);
                for (i, &got) in dw_t.iter().enumerate() {
                    let (r, oi) = (i / o, i % o);
                    let want: f32 = 1.0
                        + (0..n)
                            .map(|q| cols[r * n + q] * dy[oi * n + q])
                            .sum::<f32>();
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{case}: dw_t[{i}] = {got}, want {want}"
                    );
                }
                bits.extend(dw_t.iter().map(|v| v.to_bits()));
            }
            results.push((isa, bits));
        }
        for pair in results.windows(2) {
            assert!(
                pair[0].1 == pair[1].1,
                "{:?} and {:?} differ: c {c} o {o} {h}x{} k {k} s {stride}",
                pair[0].0,
                pair[1].0,
                win.w
            );
        }
    }

    /// The tests above cover every instruction set this CPU has; on one with AVX-512
    /// both paths ran (a machine without it says so).
    #[test]
    fn every_instruction_set_this_cpu_has_is_tested() {
        let available = Isa::available();
        if !available.contains(&Isa::Avx512) {
            eprintln!("skipped: this CPU has no AVX-512; only the AVX2 kernels were tested");
        }
        assert_eq!(
            Isa::here() == Isa::Avx512,
            has_avx512() && std::env::var("DEGRADE_KERNELS").as_deref() != Ok("avx2")
        );
    }
}
