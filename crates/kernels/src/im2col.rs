//! The rearrangements that turn a convolution into a matrix product: `im2col` lays out
//! every kernel-sized window of one image as a column, `col2im` is its adjoint (scatters
//! columns back, summing where windows overlap). Rows are ordered (channel, ky, kx) so a
//! kernel tensor (out, in, k, k) is the row-major matrix (out, in * k * k) as it is.

/// A square kernel of side `k` moved by `stride` over a `channels` x `h` x `w` image
/// with `pad` zeros on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Window {
    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }

    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }

    /// Rows of the column matrix: channels * k * k.
    pub fn rows(&self) -> usize {
        self.channels * self.k * self.k
    }

    /// Columns of the column matrix: one per output position.
    pub fn cols(&self) -> usize {
        self.out_h() * self.out_w()
    }

    pub fn image_len(&self) -> usize {
        self.channels * self.h * self.w
    }

    /// Whether the column matrix is the image itself (a 1x1 kernel, stride 1, no pad).
    pub fn is_identity(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }

    /// Whether this is a "same" convolution: stride 1 and an output as large as the
    /// input (k = 2 * pad + 1).
    pub fn is_same(&self) -> bool {
        self.stride == 1 && self.k == 2 * self.pad + 1
    }

    /// The output positions `lo..hi` along one axis whose input coordinate
    /// `o * stride + tap - pad` falls inside `0..side`.
    fn valid(&self, tap: usize, side: usize, out: usize) -> (usize, usize) {
        let first = self.pad.saturating_sub(tap).div_ceil(self.stride);
        let last = (side + self.pad)
            .checked_sub(tap + 1)
            .map(|v| v / self.stride);
        match last {
            Some(last) if first <= last => (first.min(out), (last + 1).min(out)),
            _ => (0, 0),
        }
    }

    /// Calls `f(row, oy, input row offset or None, ox range, input column of ox = 0 + pad)`
    /// once per (row, output row): the one place the window geometry is spelled out.
    fn for_each_row(&self, mut f: impl FnMut(usize, usize, Option<usize>, (usize, usize), usize)) {
        let (ho, wo) = (self.out_h(), self.out_w());
        for c in 0..self.channels {
            for ky in 0..self.k {
                let (y_lo, y_hi) = self.valid(ky, self.h, ho);
                for kx in 0..self.k {
                    let row = (c * self.k + ky) * self.k + kx;
                    let xs = self.valid(kx, self.w, wo);
                    for oy in 0..ho {
                        let src = (y_lo..y_hi).contains(&oy).then(|| {
                            let iy = oy * self.stride + ky - self.pad;
                            (c * self.h + iy) * self.w
                        });
                        // ix = ox * stride + kx - pad, offset by pad to stay unsigned.
                        f(row, oy, src, xs, kx);
                    }
                }
            }
        }
    }
}

/// Writes the column matrix (rows x cols, row-major) of one image into `cols`.
///
/// Values that fall on the zero padding are *not* written: `cols` must come zeroed, or
/// from an earlier call with the same window (where they are already zero). A kernel
/// reuses one buffer for every image of a batch, and the padding's place in it never
/// changes, so zeroing it once instead of per image and per row saves a small fill for
/// every row of the column matrix (measured: a tenth of a conv net's training step went
/// to those memsets).
pub fn im2col(win: &Window, image: &[f32], cols: &mut [f32]) {
    if win.is_same() {
        return im2col_same(win, image, cols);
    }
    let (wo, s, pad) = (win.out_w(), win.stride, win.pad);
    let n = win.cols();
    win.for_each_row(|row, oy, src, (lo, hi), kx| {
        let dst = &mut cols[row * n + oy * wo..row * n + (oy + 1) * wo];
        let Some(src) = src else { return };
        if lo < hi {
            let first = src + lo * s + kx - pad;
            if s == 1 {
                dst[lo..hi].copy_from_slice(&image[first..first + (hi - lo)]);
            } else {
                for (d, i) in dst[lo..hi].iter_mut().zip((first..).step_by(s)) {
                    *d = image[i];
                }
            }
        }
    });
}

/// `im2col` for the "same" convolutions that are most of a CIFAR-style net (stride 1,
/// output as large as the input): each row of the column matrix is the whole channel
/// shifted by (ky - pad) rows and (kx - pad) columns, so it is one contiguous copy,
/// after which the few values that wrapped around a row edge are zeroed. The general
/// path makes one short copy per output row instead, and spent most of its time in
/// the calls.
fn im2col_same(win: &Window, image: &[f32], cols: &mut [f32]) {
    let (h, w, pad) = (win.h as isize, win.w as isize, win.pad as isize);
    let n = win.h * win.w;
    for c in 0..win.channels {
        let src = &image[c * n..(c + 1) * n];
        for ky in 0..win.k {
            for kx in 0..win.k {
                let row = (c * win.k + ky) * win.k + kx;
                let dst = &mut cols[row * n..(row + 1) * n];
                let (dy, dx) = (ky as isize - pad, kx as isize - pad);
                // Output rows whose input row oy + dy exists.
                let (y_lo, y_hi) = ((-dy).max(0), (h - dy).min(h));
                if y_lo >= y_hi || dx.abs() >= w {
                    continue; // all padding
                }
                let (t_lo, t_hi) = (y_lo * w, y_hi * w);
                let shift = dy * w + dx;
                // The flat copy, clamped to the channel at its two ends.
                let (a, b) = (t_lo.max(-shift), t_hi.min(n as isize - shift));
                let (t_lo, t_hi, a, b) = (t_lo as usize, t_hi as usize, a as usize, b as usize);
                let from = (a as isize + shift) as usize;
                dst[a..b].copy_from_slice(&src[from..from + (b - a)]);
                // The flat copy is clamped to the channel: at its ends, positions
                // t_lo..a and b..t_hi are padding and keep their zeros. Columns whose
                // input column ox + dx falls off the row read the neighbouring row's
                // edge in the flat copy: they are zeroed again for every image.
                let (x_lo, x_hi) = if dx > 0 { (w - dx, w) } else { (0, -dx) };
                for oy in (t_lo..t_hi).step_by(win.w) {
                    // Plain stores for the one or two values a 3x3 or 5x5 kernel leaves:
                    // a `fill` (or a loop the compiler turns into one) is a memset call
                    // per row, measured at 7 % of a training step.
                    match &mut dst[oy + x_lo as usize..oy + x_hi as usize] {
                        [a] => *a = 0.0,
                        [a, b] => (*a, *b) = (0.0, 0.0),
                        wider => wider.fill(0.0),
                    }
                }
            }
        }
    }
}

/// Adds the column matrix `cols` back onto one image (`image` must start zeroed for the
/// plain adjoint).
pub fn col2im_add(win: &Window, cols: &[f32], image: &mut [f32]) {
    let (wo, s, pad) = (win.out_w(), win.stride, win.pad);
    let n = win.cols();
    win.for_each_row(|row, oy, src, (lo, hi), kx| {
        let Some(src) = src else { return };
        if lo < hi {
            let from = &cols[row * n + oy * wo + lo..row * n + oy * wo + hi];
            let first = src + lo * s + kx - pad;
            if s == 1 {
                // Contiguous: a loop the compiler vectorises.
                for (d, g) in image[first..first + from.len()].iter_mut().zip(from) {
                    *d += g;
                }
            } else {
                for (g, i) in from.iter().zip((first..).step_by(s)) {
                    image[i] += g;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one tap at a time.
    fn naive_im2col(win: &Window, image: &[f32]) -> Vec<f32> {
        let (ho, wo) = (win.out_h(), win.out_w());
        let mut cols = vec![0.0; win.rows() * win.cols()];
        for c in 0..win.channels {
            for ky in 0..win.k {
                for kx in 0..win.k {
                    let row = (c * win.k + ky) * win.k + kx;
                    for oy in 0..ho {
                        for ox in 0..wo {
                            let iy = (oy * win.stride + ky) as isize - win.pad as isize;
                            let ix = (ox * win.stride + kx) as isize - win.pad as isize;
                            if (0..win.h as isize).contains(&iy)
                                && (0..win.w as isize).contains(&ix)
                            {
                                cols[row * win.cols() + oy * wo + ox] =
                                    image[(c * win.h + iy as usize) * win.w + ix as usize];
                            }
                        }
                    }
                }
            }
        }
        cols
    }

    #[test]
    fn matches_the_definition_and_col2im_is_its_adjoint() {
        for (h, w) in [(7, 7), (8, 8), (5, 9), (1, 1), (2, 3)] {
            for k in [1, 3, 5] {
                for stride in [1, 2] {
                    for pad in [0, 1, 2] {
                        if h + 2 * pad < k || w + 2 * pad < k {
                            continue;
                        }
                        let win = Window {
                            channels: 2,
                            h,
                            w,
                            k,
                            stride,
                            pad,
                        };
                        let image: Vec<f32> =
                            (0..win.image_len()).map(|i| i as f32 + 1.0).collect();
                        // A zeroed buffer, then the same buffer again for another
                        // image: the second result must not keep anything of the first.
                        let mut cols = vec![0.0; win.rows() * win.cols()];
                        let other: Vec<f32> = image.iter().map(|v| -v).collect();
                        im2col(&win, &other, &mut cols);
                        im2col(&win, &image, &mut cols);
                        assert_eq!(cols, naive_im2col(&win, &image), "{win:?}");
                        // <im2col(x), c> == <x, col2im(c)> for any c.
                        let c: Vec<f32> = (0..cols.len()).map(|i| (i % 7) as f32 - 3.0).collect();
                        let mut back = vec![0.0; win.image_len()];
                        col2im_add(&win, &c, &mut back);
                        let lhs: f32 = cols.iter().zip(&c).map(|(a, b)| a * b).sum();
                        let rhs: f32 = image.iter().zip(&back).map(|(a, b)| a * b).sum();
                        assert_eq!(lhs, rhs, "{win:?}");
                    }
                }
            }
        }
    }
}
