//! Comparing our kernels with Candle's own operations.

use candle_core::{Tensor, Var};

/// max |a - b| / max |b|.
pub fn rel_err(a: &Tensor, b: &Tensor) -> f32 {
    let diff = crate::testing::max_abs_diff(a, b);
    let scale = b
        .abs()
        .and_then(|t| t.max_all())
        .and_then(|t| t.to_scalar::<f32>())
        .expect("a float tensor");
    diff / scale.max(1e-12)
}

/// Backpropagates a loss that weighs every output differently through `ours` and
/// `theirs` (two computations of the same function of `vars`) and checks that each
/// var's gradients agree within 1e-4 relative error.
pub fn assert_grads_match(ours: &Tensor, theirs: &Tensor, vars: &[(&Var, &str)], case: &str) {
    let weights = Tensor::randn(0f32, 1.0, theirs.dims(), theirs.device()).expect("weights");
    let backward = |t: &Tensor| {
        (t * &weights)
            .and_then(|l| l.sum_all())
            .and_then(|l| l.backward())
            .expect("backward")
    };
    let (g_ours, g_theirs) = (backward(ours), backward(theirs));
    for (var, what) in vars {
        let a = g_ours.get(var.as_tensor()).expect("our gradient");
        let b = g_theirs.get(var.as_tensor()).expect("Candle's gradient");
        let err = rel_err(a, b);
        assert!(err < 1e-4, "{case}: {what} gradient off by {err}");
    }
}
