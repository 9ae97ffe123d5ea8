//! A safe, bounds-checked front to the `gemm` crate's matrix product (the one Candle's
//! own `matmul` uses), on strided views of `f32` slices. Always single-threaded: the
//! kernels parallelise over the images of a batch (or a product's blocks of rows)
//! instead, which keeps every thread busy on the small per-image products of a
//! CIFAR-style net.

use std::mem::MaybeUninit;

/// A read-only matrix view: element (i, j) is `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// `rows` x `cols`, stored row after row.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, without copying.
    pub fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Its number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Its number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Rows `rows` of the view, without copying.
    ///
    /// # Panics
    /// When the range goes past the last row (a bug in the calling kernel).
    pub fn row_range(self, rows: std::ops::Range<usize>) -> Self {
        assert!(
            rows.start <= rows.end && rows.end <= self.rows,
            "matmul: rows {rows:?} of a view of {}",
            self.rows
        );
        // An empty range may start past the data (the last block of an empty product).
        MatRef {
            data: &self.data[(rows.start * self.row_stride).min(self.data.len())..],
            rows: rows.len(),
            ..self
        }
    }

    /// One past the largest index the view reads.
    fn extent(&self) -> usize {
        if self.rows == 0 || self.cols == 0 {
            0
        } else {
            (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1
        }
    }
}

/// `dst = a * b`, or `dst += a * b` when `accumulate`; `dst` is `a.rows` x `b.cols`,
/// row-major.
///
/// # Panics
/// When the shapes do not fit or a slice is shorter than its view: both are bugs in
/// the calling kernel, never a consequence of user input.
pub fn matmul(dst: &mut [f32], a: MatRef, b: MatRef, accumulate: bool) {
    assert!(
        dst.len() >= a.rows * b.cols,
        "matmul: destination too short"
    );
    // SAFETY: `dst` is initialised and exclusively borrowed, and long enough.
    unsafe { product(dst.as_mut_ptr(), a, b, accumulate) }
}

/// `dst = a * b` into memory that need not be initialised: every element of the
/// `a.rows` x `b.cols` product is written, none is read.
pub fn matmul_to(dst: &mut [MaybeUninit<f32>], a: MatRef, b: MatRef) {
    assert!(
        dst.len() >= a.rows * b.cols,
        "matmul: destination too short"
    );
    // SAFETY: exclusively borrowed and long enough; with `accumulate` false the
    // product never reads `dst` (gemm's `read_dst`), so uninitialised memory is fine.
    unsafe { product(dst.as_mut_ptr().cast::<f32>(), a, b, false) }
}

/// # Safety
/// `dst` must be valid for writes (and, when `accumulate`, reads) of `a.rows * b.cols`
/// row-major values, and alias neither input.
unsafe fn product(dst: *mut f32, a: MatRef, b: MatRef, accumulate: bool) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(k, b.rows, "matmul: inner dimensions differ");
    assert!(a.data.len() >= a.extent(), "matmul: lhs view out of bounds");
    assert!(b.data.len() >= b.extent(), "matmul: rhs view out of bounds");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            // SAFETY: the caller's promise on `dst`.
            unsafe { std::ptr::write_bytes(dst, 0, m * n) };
        }
        return;
    }
    // SAFETY: every index the product reads is inside the input slices (checked above
    // from the shapes and strides), the caller vouches for `dst`, and strides fit in
    // `isize` because the slices exist.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn products_and_transposed_views_match_the_definition() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let want = naive(&a, &b, m, k, n);
        let mut c = vec![0.0; m * n];
        matmul(
            &mut c,
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b, k, n),
            false,
        );
        for (x, y) in c.iter().zip(&want) {
            assert!((x - y).abs() < 1e-5);
        }
        // Accumulating adds a second product; a transposed view of a transposed
        // matrix is the matrix.
        let at: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        matmul(
            &mut c,
            MatRef::row_major(&at, k, m).t(),
            MatRef::row_major(&b, k, n),
            true,
        );
        for (x, y) in c.iter().zip(&want) {
            assert!((x - 2.0 * y).abs() < 1e-5);
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_longer_than_its_slice_is_refused() {
        let a = [0f32; 5];
        let mut c = [0f32; 4];
        matmul(
            &mut c,
            MatRef::row_major(&a, 2, 3),
            MatRef::row_major(&[0.0; 6], 3, 2),
            false,
        );
    }
}
