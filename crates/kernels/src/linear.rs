//! The dense layer's product `x W^T` (x: (batch, in), W: (out, in)), forward and
//! backward, on the kernels' one thread pool.
//!
//! Candle's `matmul` hands a large product to rayon's pool, a second set of threads
//! beside Candle's own that the kernels run on (`parallel`): on two cores, the two
//! pools' waiting threads took turns with the computing ones, and an MLP's training
//! step was slower on two threads than on one (Zen 4: 13.0 against 8.1 ms). Here every
//! product is cut into blocks of output rows, sized by the work alone, so the numbers
//! are the same on any thread count. The backward pass computes the input's gradient
//! only where the input has a graph to pass it on to: Candle's computes it for the data
//! as well, which for an MLP's first layer costs as much as its forward product.

use super::matmul::{matmul_to, MatRef};
use super::parallel::for_row_blocks;
use super::{assume_init, contiguous_f32, runs_here, uninit};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// Which product of two row-major matrices an op computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Product {
    /// (x: n x in, W: out x in) -> x W^T, n x out: the layer's output.
    Forward,
    /// (dY: n x out, W: out x in) -> dY W, n x in: the input's gradient.
    InputGrad,
    /// (dY: n x out, x: n x in) -> dY^T x, out x in: the weights' gradient.
    WeightGrad,
}

impl Product {
    /// The two operands as the product's left and right factors.
    fn factors<'a>(self, a: MatRef<'a>, b: MatRef<'a>) -> (MatRef<'a>, MatRef<'a>) {
        match self {
            Product::Forward => (a, b.t()),
            Product::InputGrad => (a, b),
            Product::WeightGrad => (a.t(), b),
        }
    }
}

/// A (rows, cols) matrix's sizes, or an error naming the op.
fn dims2(layout: &Layout, what: &str) -> Result<(usize, usize)> {
    match layout.shape().dims() {
        &[rows, cols] => Ok((rows, cols)),
        d => candle_core::bail!("linear: {what} of shape {d:?} is not a matrix"),
    }
}

impl CustomOp2 for Product {
    fn name(&self) -> &'static str {
        match self {
            Product::Forward => "linear",
            Product::InputGrad => "linear-input-grad",
            Product::WeightGrad => "linear-weight-grad",
        }
    }

    fn cpu_fwd(
        &self,
        a_s: &CpuStorage,
        a_l: &Layout,
        b_s: &CpuStorage,
        b_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (ar, ac) = dims2(a_l, "the left operand")?;
        let (br, bc) = dims2(b_l, "the right operand")?;
        let a = MatRef::row_major(contiguous_f32(a_s, a_l, "linear")?, ar, ac);
        let b = MatRef::row_major(contiguous_f32(b_s, b_l, "linear")?, br, bc);
        let (lhs, rhs) = self.factors(a, b);
        let (m, k, n) = (lhs.rows(), lhs.cols(), rhs.cols());
        if rhs.rows() != k {
            candle_core::bail!(
                "{}: operands ({ar}, {ac}) and ({br}, {bc}) do not fit",
                self.name()
            )
        }
        let mut out = uninit(m * n);
        for_row_blocks(m, &mut out, n, k * n, |rows, part| {
            matmul_to(part, lhs.row_range(rows), rhs)
        });
        // SAFETY: the row blocks cover the m x n output, and `matmul_to` writes every
        // value of its block.
        let out = unsafe { assume_init(out) };
        Ok((CpuStorage::F32(out), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        weight: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        if *self != Product::Forward {
            candle_core::bail!("{}: no gradient of a gradient", self.name())
        }
        let grad = grad.contiguous()?;
        let dx = x
            .track_op()
            .then(|| grad.apply_op2_no_bwd(weight, &Product::InputGrad))
            .transpose()?;
        let dw = weight
            .track_op()
            .then(|| grad.apply_op2_no_bwd(x, &Product::WeightGrad))
            .transpose()?;
        Ok((dx, dw))
    }
}

/// `xs W^T` for `xs` (batch, in) and `weight` (out, in): a dense layer without bias,
/// the same numbers as `xs.matmul(&weight.t())` up to summation order. On a GPU or in
/// another dtype, Candle's own product.
pub fn linear(xs: &Tensor, weight: &Tensor) -> Result<Tensor> {
    if !runs_here(xs) || !runs_here(weight) {
        return xs.matmul(&weight.t()?);
    }
    xs.contiguous()?
        .apply_op2(&weight.contiguous()?, Product::Forward)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_grads_match, normal, normal_var, rel_err};

    #[test]
    fn matches_candles_product_and_its_gradients() {
        // One block, several blocks with a short last one, and a first layer's shape.
        for (seed, (n, i, o)) in (0..).zip([(5, 3, 4), (130, 64, 64), (128, 784, 64)]) {
            let x = normal_var(&[n, i], 0.0, 1.0, 2 * seed);
            let w = normal_var(&[o, i], 0.0, 0.1, 2 * seed + 1);
            let ours = linear(x.as_tensor(), w.as_tensor()).unwrap();
            let theirs = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
            let case = format!("({n}, {i}) x ({o}, {i})^T");
            assert!(rel_err(&ours, &theirs) < 1e-5, "{case}");
            assert_grads_match(
                &ours,
                &theirs,
                None,
                &[(&x, "input"), (&w, "weight")],
                &case,
            );
        }
    }

    #[test]
    fn data_gets_no_gradient_and_a_nan_stays_nan() {
        let x = normal(&[4, 3], 0.0, 1.0, 7);
        let w = normal_var(&[2, 3], 0.0, 1.0, 8);
        let y = linear(&x, w.as_tensor()).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&x).is_none(), "the data got a gradient");
        assert!(grads.get(w.as_tensor()).is_some(), "the weights got none");

        let bad = Tensor::new(&[[f32::NAN, 1.0, 2.0]], x.device()).unwrap();
        let y = linear(&bad, w.as_tensor()).unwrap();
        let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        assert!(y.iter().all(|v| v.is_nan()), "{y:?}");
    }

    #[test]
    fn operands_that_do_not_fit_are_errors() {
        let x = normal(&[4, 3], 0.0, 1.0, 9);
        assert!(linear(&x, &normal(&[2, 5], 0.0, 1.0, 10)).is_err());
        assert!(linear(&x, &normal(&[2, 3, 1], 0.0, 1.0, 11)).is_err());
    }
}
