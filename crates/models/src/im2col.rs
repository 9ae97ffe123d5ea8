//! Convolution as im2col + matrix product (groundwork for issue 5, "Training as fast as
//! PyTorch"). Candle's CPU convolution takes its input gradient through a direct
//! `conv_transpose2d` loop; here every product is a gemm: forward W x cols, weight
//! gradient dY x cols^T, input gradient col2im(W^T x dY). Only the rearrangements
//! (im2col and its adjoint col2im) are our own code, as Candle custom ops.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

/// Square kernel `k`, `stride`, zero `pad` on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    k: usize,
    stride: usize,
    pad: usize,
}

impl Window {
    fn out(&self, side: usize) -> usize {
        (side + 2 * self.pad - self.k) / self.stride + 1
    }

    /// Calls `f(column row, output position, input index)` for every in-bounds tap of an
    /// image of `c` channels, `h` x `w`.
    fn for_each_tap(&self, c: usize, h: usize, w: usize, mut f: impl FnMut(usize, usize, usize)) {
        let (ho, wo) = (self.out(h), self.out(w));
        for ci in 0..c {
            for ky in 0..self.k {
                for kx in 0..self.k {
                    let row = (ci * self.k + ky) * self.k + kx;
                    for oy in 0..ho {
                        let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for ox in 0..wo {
                            let ix = (ox * self.stride + kx) as isize - self.pad as isize;
                            if ix >= 0 && ix < w as isize {
                                f(row, oy * wo + ox, (ci * h + iy as usize) * w + ix as usize);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: only f32 is supported")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: the input must be contiguous"),
    }
}

/// (b, c, h, w) -> (b, c * k * k, ho * wo).
struct Im2Col(Window);

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(storage, layout, "im2col")?;
        let (b, c, h, w) = layout.shape().dims4()?;
        let (rows, cols) = (c * self.0.k * self.0.k, self.0.out(h) * self.0.out(w));
        let mut out = vec![0f32; b * rows * cols];
        for (image, dst) in x
            .chunks_exact(c * h * w)
            .zip(out.chunks_exact_mut(rows * cols))
        {
            self.0
                .for_each_tap(c, h, w, |row, pos, src| dst[row * cols + pos] = image[src]);
        }
        Ok((CpuStorage::F32(out), Shape::from((b, rows, cols))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let (_, _, h, w) = arg.dims4()?;
        let grad = grad_res.contiguous()?.apply_op1_no_bwd(&Col2Im {
            window: self.0,
            h,
            w,
        })?;
        Ok(Some(grad))
    }
}

/// The adjoint of `Im2Col`: (b, c * k * k, ho * wo) -> (b, c, h, w), summing overlaps.
struct Col2Im {
    window: Window,
    h: usize,
    w: usize,
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = contiguous_f32(storage, layout, "col2im")?;
        let (b, rows, cols) = layout.shape().dims3()?;
        let k2 = self.window.k * self.window.k;
        let c = rows / k2;
        let (h, w) = (self.h, self.w);
        let mut out = vec![0f32; b * c * h * w];
        for (src, image) in g
            .chunks_exact(rows * cols)
            .zip(out.chunks_exact_mut(c * h * w))
        {
            self.window
                .for_each_tap(c, h, w, |row, pos, dst| image[dst] += src[row * cols + pos]);
        }
        Ok((CpuStorage::F32(out), Shape::from((b, c, h, w))))
    }
}

/// `conv2d` of `xs` (b, c, h, w) with `weight` (o, c, k, k), no bias, as im2col + gemm;
/// the same numbers as `Tensor::conv2d` up to summation order.
pub fn conv2d_im2col(
    xs: &Tensor,
    weight: &Tensor,
    padding: usize,
    stride: usize,
) -> Result<Tensor> {
    let (b, c, h, w) = xs.dims4()?;
    let (o, c2, k, k2) = weight.dims4()?;
    if c != c2 || k != k2 {
        candle_core::bail!(
            "conv2d_im2col: input {:?} and kernel {:?} do not fit",
            xs.dims(),
            weight.dims()
        )
    }
    let window = Window {
        k,
        stride,
        pad: padding,
    };
    let cols = xs.contiguous()?.apply_op1(Im2Col(window))?;
    let kernel = weight.reshape((o, c * k * k))?;
    kernel
        .broadcast_matmul(&cols)?
        .reshape((b, o, window.out(h), window.out(w)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
        let diff = crate::test_util::max_abs_diff(a, b);
        let scale = b
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        diff / scale.max(1e-12)
    }

    #[test]
    fn matches_candles_convolution_and_its_gradients() {
        let dev = Device::Cpu;
        for &(c, o) in &[(1, 4), (3, 8), (16, 16), (64, 16)] {
            for &k in &[1, 3] {
                for &stride in &[1, 2] {
                    // Square images: Candle's own conv2d backward assumes them (on a
                    // 7x6 input its input gradient comes out 7x5).
                    for &(pad, side) in &[(0, 7), (1, 7), (0, 8), (1, 8)] {
                        let x = Var::from_tensor(
                            &Tensor::randn(0f32, 1.0, (2, c, side, side), &dev).unwrap(),
                        )
                        .unwrap();
                        let w = Var::from_tensor(
                            &Tensor::randn(0f32, 1.0, (o, c, k, k), &dev).unwrap(),
                        )
                        .unwrap();
                        let ours =
                            conv2d_im2col(x.as_tensor(), w.as_tensor(), pad, stride).unwrap();
                        let theirs = x
                            .as_tensor()
                            .conv2d(w.as_tensor(), pad, stride, 1, 1)
                            .unwrap();
                        let case = format!("c{c} o{o} k{k} s{stride} p{pad} side {side}");
                        assert_eq!(ours.dims(), theirs.dims(), "{case}");
                        assert!(rel_err(&ours, &theirs) < 1e-4, "{case}: forward");
                        // Gradients of a loss that weighs every output differently.
                        let weights = Tensor::randn(0f32, 1.0, theirs.dims(), &dev).unwrap();
                        let g_ours = (&ours * &weights)
                            .unwrap()
                            .sum_all()
                            .unwrap()
                            .backward()
                            .unwrap();
                        let g_theirs = (&theirs * &weights)
                            .unwrap()
                            .sum_all()
                            .unwrap()
                            .backward()
                            .unwrap();
                        for (var, what) in [(&x, "input"), (&w, "weight")] {
                            let a = g_ours.get(var.as_tensor()).unwrap();
                            let b = g_theirs.get(var.as_tensor()).unwrap();
                            assert!(rel_err(a, b) < 1e-4, "{case}: {what} gradient");
                        }
                    }
                }
            }
        }
    }
}
