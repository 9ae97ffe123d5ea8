//! Gradient flow through depth: the norm of the gradient of each weighted layer's
//! weights, in forward order. Whether these vanish or explode with depth in plain nets,
//! and not in their residual twins, is the measurement the literature uses to explain
//! the degradation problem.

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use candle_nn::VarMap;
use vocab::NetSpec;

/// The weight of every weighted layer of the network `spec` describes, in forward
/// order, with the layer's path.
pub fn layer_weights(spec: &NetSpec, varmap: &VarMap) -> Result<Vec<(String, Var)>> {
    let summary = models::summary(spec).map_err(candle_core::Error::wrap)?;
    let vars = varmap.data().lock().expect("varmap lock poisoned");
    summary
        .layers
        .iter()
        .filter(|l| l.counts_in_depth)
        .map(|l| {
            let name = format!("{}.weight", l.name);
            vars.get(&name)
                .map(|v| (l.name.clone(), v.clone()))
                .ok_or_else(|| candle_core::Error::Msg(format!("no parameter {name}")))
        })
        .collect()
}

/// ||dL/dW|| of each layer in `layers`, read from the device once.
pub fn gradient_norms(grads: &GradStore, layers: &[(String, Var)]) -> Result<Vec<f64>> {
    let squares = layers
        .iter()
        .map(|(name, var)| {
            let g = grads
                .get(var.as_tensor())
                .ok_or_else(|| candle_core::Error::Msg(format!("layer {name} has no gradient")))?;
            g.sqr()?.sum_all()?.to_dtype(candle_core::DType::F64)
        })
        .collect::<Result<Vec<Tensor>>>()?;
    Ok(Tensor::stack(&squares, 0)?
        .to_vec1::<f64>()?
        .into_iter()
        .map(f64::sqrt)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::ModuleT;
    use models::seeded_var_builder_with_dtype;
    use vocab::{Family, ModelArch};

    #[test]
    fn per_layer_gradient_norms_match_finite_differences() {
        let device = Device::Cpu;
        let arch = NetSpec {
            arch: ModelArch::Mlp,
            shortcut: None,
            family: Family::Residual,
            depth: 6,
            width: 3,
            input: [1, 2, 2],
            classes: 5,
            zero_init_residual: false,
        };
        let varmap = VarMap::new();
        let net = models::build(
            &arch,
            seeded_var_builder_with_dtype(&varmap, 3, DType::F64, &device),
        )
        .unwrap();
        let xs = Tensor::randn(0f64, 1.0, (8, 4), &device).unwrap();
        let ys = Tensor::new(&[0u32, 1, 2, 3, 4, 0, 1, 2], &device).unwrap();
        // Training mode, as in training: the loss is a smooth function of the weights.
        let loss = |net: &models::Network| -> f64 {
            let logits = net.forward_t(&xs, true).unwrap();
            candle_nn::loss::cross_entropy(&logits, &ys)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        };
        let layers = layer_weights(&arch, &varmap).unwrap();
        assert_eq!(layers.len(), 6);
        let logits = net.forward_t(&xs, true).unwrap();
        let grads = candle_nn::loss::cross_entropy(&logits, &ys)
            .unwrap()
            .backward()
            .unwrap();
        let norms = gradient_norms(&grads, &layers).unwrap();

        let h = 1e-5;
        for ((name, var), analytic) in layers.iter().zip(&norms) {
            let w: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
            let shape = var.as_tensor().shape().clone();
            let mut sum = 0.0;
            for j in 0..w.len() {
                let at = |delta: f64| {
                    let mut v = w.clone();
                    v[j] += delta;
                    var.set(&Tensor::from_vec(v, shape.clone(), &device).unwrap())
                        .unwrap();
                    loss(&net)
                };
                let d = (at(h) - at(-h)) / (2.0 * h);
                sum += d * d;
            }
            var.set(&Tensor::from_vec(w, shape, &device).unwrap())
                .unwrap();
            let numeric = sum.sqrt();
            assert!(
                (numeric - analytic).abs() <= 1e-3 * analytic.max(1e-12),
                "{name}: finite differences {numeric}, backprop {analytic}"
            );
        }
    }
}
