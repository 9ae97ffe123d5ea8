//! Comparing our kernels with Candle's own operations.

use candle_core::{Tensor, Var};
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, Normal};

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

/// How many values the storage behind `t` holds: more than `t`'s own where `t` is a
/// slice of a larger tensor, which it keeps alive.
pub fn storage_len(t: &Tensor) -> usize {
    let (storage, _) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => cpu.as_slice::<f32>().expect("f32").len(),
        _ => panic!("a CPU tensor"),
    }
}

/// Normal values of `mean` and `std` drawn from `seed`, on the CPU. Tests take their
/// inputs from here rather than from Candle's CPU generator, which cannot be seeded: a
/// failure must reproduce.
pub fn normal(shape: &[usize], mean: f32, std: f32, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let dist = Normal::new(mean, std).expect("a finite, non-negative spread");
    let values: Vec<f32> = (0..shape.iter().product::<usize>())
        .map(|_| dist.sample(&mut rng))
        .collect();
    Tensor::from_vec(values, shape, &candle_core::Device::Cpu).expect("a tensor")
}

/// A trainable variable of `normal` values.
pub fn normal_var(shape: &[usize], mean: f32, std: f32, seed: u64) -> Var {
    Var::from_tensor(&normal(shape, mean, std, seed)).expect("a variable")
}

/// The loss's weights are drawn from a seed no test's inputs use: weights equal to an
/// affine function of the input (the same stream) would make a batch norm's true input
/// gradient exactly zero, and the comparison one of rounding noise against rounding
/// noise.
const LOSS_SEED: u64 = u64::MAX;

/// How close to zero a ReLU's input may come before its output is left out of the loss
/// that compares gradients: far above the rounding (about 1e-6 of values near 1) by
/// which two correct computations of the input differ.
const KINK: f64 = 1e-4;

/// Backpropagates a loss that weighs every output differently through `ours` and
/// `theirs` (two computations of the same function of `vars`) and checks that each
/// var's gradients agree within 1e-4 relative error.
///
/// Where the function ends in a ReLU, `relu_input` is Candle's input to it, and outputs
/// whose input lies within `KINK` of zero get no weight. At zero the ReLU's derivative
/// jumps from 0 to 1, so two computations that differ by one rounding may take opposite
/// sides there and both be right; through a batch norm, that one output's gradient then
/// moves the whole channel's. At [16, 64, 7, 7] 26 of 5,000 draws failed so (one in CI,
/// an input gradient off by 0.44); with those outputs left out, none did.
pub fn assert_grads_match(
    ours: &Tensor,
    theirs: &Tensor,
    relu_input: Option<&Tensor>,
    vars: &[(&Var, &str)],
    case: &str,
) {
    let mut weights = normal(theirs.dims(), 0.0, 1.0, LOSS_SEED);
    if let Some(input) = relu_input {
        let away = input
            .abs()
            .and_then(|a| a.ge(KINK))
            .and_then(|m| m.to_dtype(weights.dtype()))
            .expect("a float tensor");
        weights = (weights * away).expect("the output's shape");
    }
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
