//! The dense layer's product `x W^T` (x: (batch, in), W: (out, in)), forward and
//! backward, on the kernels' one thread pool.
//!
//! Candle's `matmul` hands a large product to rayon's pool, a second set of threads
//! beside Candle's own that the kernels run on (`parallel`): on two cores, the two
//! pools' waiting threads took turns with the computing ones, and an MLP's training
//! step was slower on two threads than on one (Zen 4: 7.6 against 5.8 ms). Here every
//! product is cut into blocks of output rows, sized by the work alone, so the numbers
//! are the same on any thread count. The backward pass computes the input's gradient
//! only where the input has a graph to pass it on to: Candle's computes it for the data
//! as well, which for an MLP's first layer costs as much as its forward product. The
//! gradients are computed without a graph of their own: there are no second-order
//! gradients through these layers (nothing here trains with them).

use super::matmul::{matmul_to, MatRef};
use super::parallel::for_row_blocks;
use super::{assume_init, contiguous_f32, runs_here, uninit};
use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};

/// Which product of two row-major matrices an op computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Linear {
    /// (x: n x in, W: out x in) -> x W^T, n x out: the layer's output.
    Forward,
    /// (dY: n x out, W: out x in) -> dY W, n x in: the input's gradient.
    InputGrad,
    /// (dY: n x out, x: n x in) -> dY^T x, out x in: the weights' gradient.
    WeightGrad,
}

impl Linear {
    /// The two operands as the product's left and right factors.
    fn factors<'a>(self, a: MatRef<'a>, b: MatRef<'a>) -> (MatRef<'a>, MatRef<'a>) {
        match self {
            Linear::Forward => (a, b.t()),
            Linear::InputGrad => (a, b),
            Linear::WeightGrad => (a.t(), b),
        }
    }
}

/// A (rows, cols) matrix's sizes, or an error naming the op.
fn dims2(layout: &Layout, op: &str, what: &str) -> Result<(usize, usize)> {
    match layout.shape().dims() {
        &[rows, cols] => Ok((rows, cols)),
        d => candle_core::bail!("{op}: {what} of shape {d:?} is not a matrix"),
    }
}

impl CustomOp2 for Linear {
    fn name(&self) -> &'static str {
        match self {
            Linear::Forward => "linear",
            Linear::InputGrad => "linear-input-grad",
            Linear::WeightGrad => "linear-weight-grad",
        }
    }

    fn cpu_fwd(
        &self,
        a_s: &CpuStorage,
        a_l: &Layout,
        b_s: &CpuStorage,
        b_l: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let op = self.name();
        let (ar, ac) = dims2(a_l, op, "the left operand")?;
        let (br, bc) = dims2(b_l, op, "the right operand")?;
        let a = MatRef::row_major(contiguous_f32(a_s, a_l, op)?, ar, ac);
        let b = MatRef::row_major(contiguous_f32(b_s, b_l, op)?, br, bc);
        let (lhs, rhs) = self.factors(a, b);
        let (m, k, n) = (lhs.rows(), lhs.cols(), rhs.cols());
        if rhs.rows() != k {
            candle_core::bail!("{op}: operands ({ar}, {ac}) and ({br}, {bc}) do not fit")
        }
        let Some(len) = m.checked_mul(n) else {
            candle_core::bail!("{op}: a {m} x {n} product does not fit in memory")
        };
        let mut out = uninit(len);
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
        if *self != Linear::Forward {
            candle_core::bail!("{}: no gradient of a gradient", self.name())
        }
        let grad = grad.contiguous()?;
        let dx = x
            .track_op()
            .then(|| grad.apply_op2_no_bwd(weight, &Linear::InputGrad))
            .transpose()?;
        let dw = weight
            .track_op()
            .then(|| grad.apply_op2_no_bwd(x, &Linear::WeightGrad))
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
        .apply_op2(&weight.contiguous()?, Linear::Forward)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_grads_match, normal, normal_var, rel_err};
    use candle_core::Var;

    /// Our product of `x` (the var `input`, or a view of it) and `w` against Candle's,
    /// forward and gradients.
    fn matches_candle(input: &Var, x: &Tensor, w: &Var, case: &str) {
        let ours = linear(x, w.as_tensor()).unwrap();
        let theirs = x.matmul(&w.as_tensor().t().unwrap()).unwrap();
        assert!(rel_err(&ours, &theirs) < 1e-5, "{case}");
        let vars = [(input, "input"), (w, "weight")];
        assert_grads_match(&ours, &theirs, None, &vars, case);
    }

    #[test]
    fn matches_candles_product_and_its_gradients() {
        // One block, several blocks with a short last one, a last block of one row, and
        // a first layer's shape.
        let shapes = [(5, 3, 4), (130, 64, 64), (129, 64, 64), (128, 784, 64)];
        for (seed, (n, i, o)) in (0..).zip(shapes) {
            let x = normal_var(&[n, i], 0.0, 1.0, 2 * seed);
            let w = normal_var(&[o, i], 0.0, 0.1, 2 * seed + 1);
            matches_candle(&x, x.as_tensor(), &w, &format!("({n}, {i}) x ({o}, {i})^T"));
        }
    }

    #[test]
    fn edge_sizes_match_candles_product() {
        // A transposed (non-contiguous) input, and products with nothing to sum or no
        // rows at all.
        let xt = normal_var(&[6, 5], 0.0, 1.0, 5);
        let w = normal_var(&[3, 6], 0.0, 1.0, 6);
        matches_candle(&xt, &xt.as_tensor().t().unwrap(), &w, "transposed input");

        for (n, i, o) in [(0, 4, 3), (4, 0, 3), (4, 3, 0)] {
            let x = normal_var(&[n, i], 0.0, 1.0, 7);
            let w = normal_var(&[o, i], 0.0, 1.0, 8);
            let y = linear(x.as_tensor(), w.as_tensor()).unwrap();
            assert_eq!(y.dims(), &[n, o]);
            let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
            assert!(
                y.iter().all(|&v| v == 0.0),
                "({n}, {i}) x ({o}, {i})^T: {y:?}"
            );
            let grads = linear(x.as_tensor(), w.as_tensor())
                .and_then(|y| y.sum_all())
                .and_then(|l| l.backward())
                .unwrap();
            let dw: Vec<f32> = grads
                .get(w.as_tensor())
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert!(
                dw.iter().all(|&v| v == 0.0),
                "({n}, {i}) weight gradient {dw:?}"
            );
        }
    }

    #[test]
    fn data_gets_no_gradient() {
        let x = normal(&[4, 3], 0.0, 1.0, 7);
        let w = normal_var(&[2, 3], 0.0, 1.0, 8);
        let y = linear(&x, w.as_tensor()).unwrap();
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&x).is_none(), "the data got a gradient");
        assert!(grads.get(w.as_tensor()).is_some(), "the weights got none");
    }

    #[test]
    fn a_nan_stays_nan() {
        let w = normal(&[2, 3], 0.0, 1.0, 8);
        let bad = Tensor::new(&[[f32::NAN, 1.0, 2.0]], w.device()).unwrap();
        let y = linear(&bad, &w).unwrap();
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
