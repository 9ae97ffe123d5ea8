//! Per-thread working memory: the zero-padded image, the sums, where each tap reads.

use super::MR;
use crate::im2col::Window;

/// Per-thread working memory for one window: the zero-padded image, the sums (along
/// padded rows for the position tiles; position-major, (h * w, o), for the channel
/// tiles and for dY^T in the kernel gradient), and where each tap reads. The padding's
/// zeros are written once; every image overwrites only the interior.
pub struct Scratch {
    pub(super) window: Window,
    pub(super) padded: Vec<f32>,
    pub(super) wide: Vec<f32>,
    /// Per tap (c, ky, kx), in the kernel's order: the input under output position q
    /// (counted along padded rows: (y, x) is q = y * row + x < wide) is
    /// `padded[offset + q]`.
    pub(super) offsets: Vec<usize>,
    /// Per output position, in order (out_h * out_w of them), where the channel tiles
    /// start reading along the padded rows: (y, x) reads from stride * (y * row + x) on
    /// (made once here: computed per image, its divisions were 1 % of a training step).
    pub(super) starts: Vec<usize>,
}

/// The padded layout's sizes.
pub(super) struct Padded {
    /// Length of a padded row: w + 2 * pad.
    pub(super) row: usize,
    /// One padded channel: (h + 2 * pad) rows.
    pub(super) plane: usize,
    /// Output positions counted along padded rows (h rows), rounded up to MR.
    pub(super) wide: usize,
}

pub(super) fn padded(win: &Window) -> Padded {
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
        let (out_w, s) = (win.out_w(), win.stride);
        let starts = (0..win.cols())
            .map(|q| s * ((q / out_w) * p.row + q % out_w))
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
            starts,
        }
    }

    /// Copies the image (c, h, w) into the interior of the padded buffer (its padding
    /// stays as it is: zero), having checked that this scratch was made for `win` and
    /// `o` output channels.
    pub(super) fn load(&mut self, win: &Window, p: &Padded, x: &[f32], o: usize) {
        let (h, w, pad) = (win.h, win.w, win.pad);
        assert_eq!(*win, self.window, "scratch for another window");
        assert_eq!(self.wide.len(), o * p.wide, "scratch for other channels");
        assert_eq!(x.len(), win.image_len(), "image of the wrong size");
        for (ci, plane) in x.chunks_exact(h * w).enumerate() {
            for (iy, src) in plane.chunks_exact(w).enumerate() {
                let at = ci * p.plane + (iy + pad) * p.row + pad;
                copy_row(&mut self.padded[at..at + w], src);
            }
        }
    }
}

/// `dst.copy_from_slice(src)` in pieces of constant length, which compile to vector
/// moves: a row is 7 to 32 values, and the library call that `copy_from_slice` makes
/// for a length known only at run time cost more than the copy (3 % of a training
/// step went to those calls).
fn copy_row(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "rows of different lengths");
    let (dst8, d) = dst.as_chunks_mut::<8>();
    let (src8, s) = src.as_chunks::<8>();
    for (d8, s8) in dst8.iter_mut().zip(src8) {
        *d8 = *s8;
    }
    let mut at = 0;
    for piece in [4, 2, 1] {
        if d.len() - at >= piece {
            d[at..at + piece].copy_from_slice(&s[at..at + piece]);
            at += piece;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::copy_row;

    #[test]
    fn rows_of_every_length_are_copied_whole() {
        for n in 0..40 {
            let src: Vec<f32> = (0..n).map(|i| i as f32 + 0.5).collect();
            let mut dst = vec![f32::NAN; n];
            copy_row(&mut dst, &src);
            assert_eq!(dst, src, "length {n}");
        }
    }
}
