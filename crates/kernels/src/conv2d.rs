//! 2-D convolution (no bias, square kernel) as im2col + gemm, forward and backward.
//!
//! Candle's CPU convolution takes its input gradient through `conv_transpose2d`, a direct
//! loop with no matrix product, which was about 80 % of a conv net's training step. Here
//! all three products are one gemm per image: forward `W x cols`, weight gradient
//! `dY x cols^T`, input gradient `col2im(W^T x dY)` (for a stride-1 "same" convolution,
//! `W' x im2col(dY)` with the flipped kernel W', see `ConvBackward`). The backward pass computes both
//! gradients in one sweep over the batch (the image's columns are rebuilt once, not
//! stored from the forward pass: they would be k*k times the activations' memory).
//! Images are split between the compute threads; each gemm runs on one thread. Where
//! the CPU has AVX2 and FMA, "same" convolutions (all the 3x3 ones of stride 1) skip
//! the column matrix altogether, and so do the forward product and kernel gradient of
//! strided ones with whole tiles of 16 output channels: see `same_conv`.

use super::im2col::{col2im_add, im2col, Window};
use super::matmul::{matmul, matmul_to, MatRef};
use super::same_conv::{self, same_conv, same_conv_weight_grad, Image, PackedKernel};
use super::{assume_init, contiguous_f32, for_image_chunks, runs_here, uninit, zeros};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};

/// Kernel side, stride and zero padding; the image size comes with the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Conv {
    stride: usize,
    pad: usize,
}

impl Conv {
    /// The input's (batch, window) and the kernel's output channels, checked against
    /// each other.
    fn geometry(&self, x: &Layout, w: &Layout) -> Result<(usize, Window, usize)> {
        let (b, c, h, wd) = x.shape().dims4()?;
        let (o, c2, k, k2) = w.shape().dims4()?;
        if c != c2 || k != k2 || h + 2 * self.pad < k || wd + 2 * self.pad < k || self.stride == 0 {
            candle_core::bail!(
                "conv2d: input {:?} and kernel {:?} do not fit (stride {}, padding {})",
                x.shape().dims(),
                w.shape().dims(),
                self.stride,
                self.pad
            )
        }
        let win = Window {
            channels: c,
            h,
            w: wd,
            k,
            stride: self.stride,
            pad: self.pad,
        };
        Ok((b, win, o))
    }
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "conv2d-im2col"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, win, o) = self.geometry(xl, wl)?;
        let x = contiguous_f32(xs, xl, "conv2d")?;
        let w = contiguous_f32(ws, wl, "conv2d")?;
        let (rows, n) = (win.rows(), win.cols());
        let kernel = MatRef::row_major(w, o, rows);
        let mut out = uninit(b * o * n);
        let image_len = win.image_len();
        if same_conv::forward_applies(&win, o) {
            let packed = PackedKernel::new(w, o, rows);
            let scratch = || same_conv::Scratch::new(&win, o);
            for_image_chunks(b, &mut out, o * n, scratch, |scratch, images, ys| {
                for (index, y) in images.zip(ys.chunks_exact_mut(o * n)) {
                    let image = Image { batch: x, index };
                    same_conv(&win, image, &packed, y, scratch);
                }
            });
        } else {
            let scratch = || column_buffer(&win);
            for_image_chunks(b, &mut out, o * n, scratch, |buffer, images, ys| {
                for (i, y) in images.zip(ys.chunks_exact_mut(o * n)) {
                    let cols = columns(&win, &x[i * image_len..(i + 1) * image_len], buffer);
                    matmul_to(y, kernel, MatRef::row_major(cols, rows, n));
                }
            });
        }
        // SAFETY: the ranges cover every image, and each image's product writes all of
        // its o x n outputs.
        let out = unsafe { assume_init(out) };
        Ok((
            CpuStorage::F32(out),
            Shape::from((b, o, win.out_h(), win.out_w())),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let both = x.apply_op3_no_bwd(w, &grad.contiguous()?, &ConvBackward(*self))?;
        let dx = both.narrow(0, 0, x.elem_count())?.reshape(x.shape())?;
        let dw = both
            .narrow(0, x.elem_count(), w.elem_count())?
            .reshape(w.shape())?;
        Ok((Some(dx), Some(super::apart(&dw)?)))
    }
}

/// (x, w, dY) -> the input gradient and the kernel gradient, flattened one after the
/// other into one tensor (a custom op has one output; the caller splits it with views).
struct ConvBackward(Conv);

impl CustomOp3 for ConvBackward {
    fn name(&self) -> &'static str {
        "conv2d-im2col-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, win, o) = self.0.geometry(xl, wl)?;
        let x = contiguous_f32(xs, xl, "conv2d backward")?;
        let w = contiguous_f32(ws, wl, "conv2d backward")?;
        let dy = contiguous_f32(gs, gl, "conv2d backward")?;
        let (rows, n) = (win.rows(), win.cols());
        if dy.len() != b * o * n {
            candle_core::bail!(
                "conv2d backward: gradient of {} values, expected {}",
                dy.len(),
                b * o * n
            )
        }
        let kernel_t = MatRef::row_major(w, o, rows).t();
        let image_len = win.image_len();
        // A "same" convolution's input gradient is itself a "same" convolution: of dY
        // with the kernel flipped in space and transposed in channels. Computing it as
        // im2col(dY) + gemm replaces col2im's short scattered additions (a tenth of a
        // training step) by the contiguous copies of `im2col`.
        let same = win.is_same() && !win.is_identity();
        let dy_win = Window { channels: o, ..win };
        let flipped = if same {
            flip_transpose(w, o, win.channels, win.k)
        } else {
            Vec::new()
        };
        // Without a column matrix where the CPU allows (see `same_conv`).
        let direct_dx = (same && same_conv::applies(&win))
            .then(|| PackedKernel::new(&flipped, win.channels, dy_win.rows()));
        let direct_dw = same_conv::weight_grad_applies(&win, o);
        let flipped = MatRef::row_major(&flipped, win.channels, dy_win.rows());
        let mut out = zeros(x.len() + w.len());
        let (dx, dw) = out.split_at_mut(x.len());
        // Each task sums the kernel gradient of its own images; the parts add up below.
        // They are summed transposed, (rows, o) = cols x dY^T: the gemm then reads the
        // column matrix as it lies (pixels contiguous) and packs only dY, which is rows/o
        // times smaller; in (o, rows) order it repacked the whole column matrix of every
        // image (8 % of a training step).
        let scratch = || BackwardScratch::new(&win, o, direct_dx.is_some(), direct_dw);
        let parts = for_image_chunks(b, dx, image_len, scratch, |scratch, images, dxs| {
            let mut dw_t_part = vec![0f32; rows * o];
            for (i, dx_img) in images.zip(dxs.chunks_exact_mut(image_len)) {
                let x_img = &x[i * image_len..(i + 1) * image_len];
                let dy_img = &dy[i * o * n..(i + 1) * o * n];
                let g = MatRef::row_major(dy_img, o, n);
                // Each direct kernel brings the next image of what it reads into L2: the
                // kernel gradient x, the input gradient dY.
                if let Some(for_dw) = &mut scratch.for_dw {
                    let image = Image { batch: x, index: i };
                    same_conv_weight_grad(&win, image, dy_img, o, &mut dw_t_part, for_dw);
                } else {
                    let cols = columns(&win, x_img, &mut scratch.columns);
                    let cols = MatRef::row_major(cols, rows, n);
                    matmul(&mut dw_t_part, cols, g.t(), true);
                }
                let dcols = &mut scratch.dcols;
                if let (Some(packed), Some(for_dx)) = (&direct_dx, &mut scratch.for_dx) {
                    let image = Image {
                        batch: dy,
                        index: i,
                    };
                    same_conv(&dy_win, image, packed, dx_img, for_dx);
                } else if win.is_identity() {
                    matmul(dx_img, kernel_t, g, false);
                } else if same {
                    im2col(&dy_win, dy_img, dcols);
                    let dcols = MatRef::row_major(dcols, dy_win.rows(), n);
                    matmul(dx_img, flipped, dcols, false);
                } else {
                    matmul(dcols, kernel_t, g, false);
                    col2im_add(&win, dcols, dx_img);
                }
            }
            dw_t_part
        });
        let mut parts = parts.into_iter();
        let mut dw_t = parts.next().unwrap_or_default();
        for part in parts {
            for (a, p) in dw_t.iter_mut().zip(part) {
                *a += p;
            }
        }
        for (r, row) in dw_t.chunks_exact(o).enumerate() {
            for (oi, &v) in row.iter().enumerate() {
                dw[oi * rows + r] = v;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(x.len() + w.len())))
    }
}

/// One thread's working memory in the backward pass: the direct kernels' buffers
/// where they apply (input gradient, kernel gradient), column matrices otherwise.
struct BackwardScratch {
    columns: Vec<f32>,
    dcols: Vec<f32>,
    for_dx: Option<same_conv::Scratch>,
    for_dw: Option<same_conv::Scratch>,
}

impl BackwardScratch {
    fn new(win: &Window, o: usize, direct_dx: bool, direct_dw: bool) -> Self {
        let dy_win = Window {
            channels: o,
            ..*win
        };
        BackwardScratch {
            columns: if direct_dw {
                Vec::new()
            } else {
                column_buffer(win)
            },
            dcols: if direct_dx {
                Vec::new()
            } else {
                vec![0f32; win.rows().max(dy_win.rows()) * win.cols()]
            },
            for_dx: direct_dx.then(|| same_conv::Scratch::new(&dy_win, win.channels)),
            for_dw: direct_dw.then(|| same_conv::Scratch::new(win, o)),
        }
    }
}

/// A zeroed column-matrix buffer for `win`, reused for every image of a thread's range
/// (`im2col` relies on its padding zeros staying put); empty where the image is its own
/// column matrix.
fn column_buffer(win: &Window) -> Vec<f32> {
    vec![
        0f32;
        if win.is_identity() {
            0
        } else {
            win.rows() * win.cols()
        }
    ]
}

/// One image's column matrix: the image itself for a 1x1, stride-1 window, otherwise
/// built in `buffer` (from `column_buffer` for the same window).
fn columns<'a>(win: &Window, image: &'a [f32], buffer: &'a mut [f32]) -> &'a [f32] {
    if win.is_identity() {
        image
    } else {
        im2col(win, image, buffer);
        buffer
    }
}

/// The kernel (o, c, k, k) as (c, o, k, k) with each k x k tap mirrored: the kernel
/// whose "same" convolution of dY is the input gradient.
fn flip_transpose(w: &[f32], o: usize, c: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    for oi in 0..o {
        for ci in 0..c {
            for t in 0..k * k {
                out[(ci * o + oi) * k * k + (k * k - 1 - t)] = w[(oi * c + ci) * k * k + t];
            }
        }
    }
    out
}

/// `conv2d` of `xs` (b, c, h, w) with `kernel` (o, c, k, k), no bias, zero `padding` on
/// each side: the same numbers as `Tensor::conv2d` up to summation order. Our kernels
/// run on the CPU in f32; anything else (a GPU, f64) goes to Candle's own convolution.
pub fn conv2d(xs: &Tensor, kernel: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    if !runs_here(xs) || !runs_here(kernel) {
        return xs.conv2d(kernel, padding, stride, 1, 1);
    }
    xs.contiguous()?.apply_op2(
        &kernel.contiguous()?,
        Conv {
            stride,
            pad: padding,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_grads_match, normal_var, rel_err, storage_len};
    use candle_core::{DType, Device};

    /// Every geometry the nets use and then some: stride 1 and 2, padding 0 and 1, kernels 1x1 and
    /// 3x3, input channels 1, 3, 16 and 64; odd and even sides. Within 1e-4 of Candle's
    /// own `conv2d`, forward and both gradients.
    #[test]
    fn matches_candles_convolution_and_its_gradients() {
        let mut seed = 0;
        for &(c, o) in &[(1, 4), (3, 8), (16, 16), (64, 16)] {
            for &k in &[1, 3] {
                for &stride in &[1, 2] {
                    // Square images: Candle's own conv2d backward assumes them (on a
                    // 7x6 input its input gradient comes out 7x5).
                    for &(pad, side) in &[(0, 7), (1, 7), (0, 8), (1, 8)] {
                        seed += 2;
                        let x = normal_var(&[3, c, side, side], 0.0, 1.0, seed);
                        let w = normal_var(&[o, c, k, k], 0.0, 1.0, seed + 1);
                        let case = format!("c{c} o{o} k{k} s{stride} p{pad} side {side}");
                        let ours = conv2d(x.as_tensor(), w.as_tensor(), pad, stride).unwrap();
                        let theirs = x
                            .as_tensor()
                            .conv2d(w.as_tensor(), pad, stride, 1, 1)
                            .unwrap();
                        assert_eq!(ours.dims(), theirs.dims(), "{case}");
                        assert!(rel_err(&ours, &theirs) < 1e-4, "{case}: forward");
                        let vars = [(&x, "input"), (&w, "kernel")];
                        assert_grads_match(&ours, &theirs, None, &vars, &case);
                    }
                }
            }
        }
    }

    /// Batches above the one-thread limit are split between the compute threads (on a
    /// machine with more than one core): the same numbers as Candle there too.
    #[test]
    fn batches_split_between_threads_match_candle() {
        for (seed, (stride, pad, k)) in (0..).zip([(1, 1, 3), (2, 1, 3), (2, 0, 1)]) {
            let x = normal_var(&[13, 16, 16, 16], 0.0, 1.0, 2 * seed);
            let w = normal_var(&[24, 16, k, k], 0.0, 1.0, 2 * seed + 1);
            let case = format!("batch 13, k{k} s{stride} p{pad}");
            let ours = conv2d(x.as_tensor(), w.as_tensor(), pad, stride).unwrap();
            let theirs = x
                .as_tensor()
                .conv2d(w.as_tensor(), pad, stride, 1, 1)
                .unwrap();
            assert!(rel_err(&ours, &theirs) < 1e-4, "{case}: forward");
            assert_grads_match(
                &ours,
                &theirs,
                None,
                &[(&x, "input"), (&w, "kernel")],
                &case,
            );
        }
    }

    /// The kernel's gradient is copied out of the backward op's output, so it does not
    /// keep the input's gradient (activation-sized) alive until the optimiser step.
    #[test]
    fn the_kernel_gradient_holds_only_itself() {
        let x = normal_var(&[2, 16, 8, 8], 0.0, 1.0, 7);
        let w = normal_var(&[16, 16, 3, 3], 0.0, 1.0, 8);
        let y = conv2d(x.as_tensor(), w.as_tensor(), 1, 1).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        let (dx, dw) = (grads.get(&x).unwrap(), grads.get(&w).unwrap());
        assert_eq!(storage_len(dw), w.elem_count());
        assert!(storage_len(dx) >= x.elem_count());
    }

    #[test]
    fn a_kernel_that_does_not_fit_the_input_is_an_error_not_a_panic() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((1, 3, 5, 5), DType::F32, &dev).unwrap();
        let w = Tensor::zeros((4, 2, 3, 3), DType::F32, &dev).unwrap();
        let err = conv2d(&x, &w, 1, 1).unwrap_err().to_string();
        assert!(err.contains("do not fit"), "{err}");
        let big = Tensor::zeros((4, 3, 9, 9), DType::F32, &dev).unwrap();
        assert!(conv2d(&x, &big, 1, 1).is_err());
    }
}
