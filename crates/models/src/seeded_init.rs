//! A `VarBuilder` whose new parameters are drawn from our seeded generator. Layers ask
//! for parameters as usual (`vb.get_with_hints(shape, "weight", Init::Randn{..})`); this
//! backend draws each one from a stream named after the parameter's path, so the weights
//! depend only on (seed, name, shape), never on construction order or thread timing.

use crate::rng::SeededRng;
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::{var_builder::SimpleBackend, Init, VarBuilder, VarMap};

struct SeededInit {
    varmap: VarMap,
    seed: u64,
}

/// A builder that creates missing parameters in `varmap` from `seed` (existing ones,
/// e.g. loaded from a checkpoint, are returned as they are).
pub fn seeded_var_builder(varmap: &VarMap, seed: u64, device: &Device) -> VarBuilder<'static> {
    seeded_var_builder_with_dtype(varmap, seed, DType::F32, device)
}

/// The same, with parameters of `dtype` (training uses f32; gradient checks use f64).
pub fn seeded_var_builder_with_dtype(
    varmap: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    let backend = SeededInit {
        varmap: varmap.clone(),
        seed,
    };
    VarBuilder::from_backend(Box::new(backend), dtype, device.clone())
}

impl SimpleBackend for SeededInit {
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let mut vars = self.varmap.data().lock().expect("varmap lock poisoned");
        if let Some(var) = vars.get(name) {
            if var.shape() != &shape {
                candle_core::bail!("shape mismatch on {name}: {shape:?} <> {:?}", var.shape())
            }
            return Ok(var.as_tensor().clone());
        }
        let mut rng = SeededRng::for_stream(self.seed, name);
        let n = shape.elem_count();
        let values: Vec<f32> = match init {
            Init::Const(c) => vec![c as f32; n],
            Init::Randn { mean, stdev } => (0..n)
                .map(|_| (mean + stdev * rng.normal()) as f32)
                .collect(),
            Init::Uniform { lo, up } => (0..n)
                .map(|_| (lo + (up - lo) * rng.uniform()) as f32)
                .collect(),
            Init::Kaiming { .. } => {
                candle_core::bail!(
                    "{name}: ask for Init::Randn with an explicit stdev instead of Kaiming"
                )
            }
        };
        let var = Var::from_tensor(&Tensor::from_vec(values, shape, dev)?.to_dtype(dtype)?)?;
        let tensor = var.as_tensor().clone();
        vars.insert(name.to_string(), var);
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("{name}: parameters must be requested with a shape")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .expect("varmap lock poisoned")
            .contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(seed: u64, names: &[&str]) -> Vec<Vec<f32>> {
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, seed, &Device::Cpu);
        names
            .iter()
            .map(|n| {
                vb.get_with_hints(
                    8,
                    n,
                    Init::Randn {
                        mean: 0.0,
                        stdev: 1.0,
                    },
                )
                .unwrap()
                .to_vec1()
                .unwrap()
            })
            .collect()
    }

    #[test]
    fn values_depend_on_seed_and_name_not_order() {
        let ab = draw(1, &["a", "b"]);
        let ba = draw(1, &["b", "a"]);
        assert_eq!(ab[0], ba[1]);
        assert_eq!(ab[1], ba[0]);
        assert_ne!(ab[0], ab[1]);
        assert_ne!(draw(2, &["a"])[0], ab[0]);
    }
}
