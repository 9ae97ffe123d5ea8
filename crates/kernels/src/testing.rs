//! The comparison every test of the kernels and the models goes through (public, so
//! that the models' tests use the same one; nothing outside tests calls it).

use candle_core::{DType, Tensor};

/// A tensor's values as f32, in order.
fn values(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1::<f32>())
        .expect("a float tensor")
}

/// The largest absolute difference between two tensors of one shape. Panics on any
/// NaN or infinity in either: a comparison that a NaN could pass ("within 1e-4") is no
/// comparison, and every other helper here compares through this one.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "tensors of the same shape");
    let (a, b) = (values(a), values(b));
    for (side, v) in [("first", &a), ("second", &b)] {
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            panic!(
                "non-finite value {} at index {i} of the {side} tensor",
                v[i]
            );
        }
    }
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[cfg(test)]
mod tests {
    use super::max_abs_diff;
    use candle_core::{Device, Tensor};

    #[test]
    fn a_non_finite_value_anywhere_fails_the_comparison() {
        let finite = [1.0f32, 2.0, 3.0, 4.0];
        assert_eq!(
            max_abs_diff(
                &Tensor::new(&finite, &Device::Cpu).unwrap(),
                &Tensor::new(&[1.0f32, 2.5, 3.0, 4.0], &Device::Cpu).unwrap()
            ),
            0.5
        );
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in 0..finite.len() {
                for bad_first in [true, false] {
                    let mut odd = finite;
                    odd[at] = bad;
                    let (odd, fine) = (
                        Tensor::new(&odd, &Device::Cpu).unwrap(),
                        Tensor::new(&finite, &Device::Cpu).unwrap(),
                    );
                    let compared =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(
                            || match bad_first {
                                true => max_abs_diff(&odd, &fine),
                                false => max_abs_diff(&fine, &odd),
                            },
                        ));
                    assert!(compared.is_err(), "{bad} at {at} passed");
                }
            }
        }
    }
}
