//! The MLP family: an input layer, `blocks` two-layer blocks, and a linear classifier.
//! Depth counts weighted layers as in the paper: depth = 1 + 2 * blocks + 1.
//!
//! A plain block is `relu(L2(relu(L1(x))))`; a residual block is
//! `relu(L2(relu(L1(x))) + x)`, the shortcut added before the second ReLU. Both use
//! the same parameter names and shapes, so a plain net and its twin are the same size.

use crate::classifier::{classifier, classifier_summary, Classifier};
use crate::dense_layer::{dense_layer, dense_summary_row, DenseLayer};
use crate::error::ModelError;
use crate::probe::{LayerEnd, Probe};
use crate::summary::ArchSummary;
use candle_core::Module;
use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};
use vocab::NetSpec;

/// The blocks, or why `spec` cannot be built.
fn blocks(spec: &NetSpec) -> std::result::Result<usize, ModelError> {
    spec.units().map_err(ModelError::Architecture)
}

/// The MLP's input width: the flattened image.
fn inputs(spec: &NetSpec) -> usize {
    spec.input.iter().product()
}

/// The layer table (the MLP sees the flattened image, whatever its size).
pub fn mlp_summary(spec: &NetSpec) -> std::result::Result<ArchSummary, ModelError> {
    let blocks = blocks(spec)?;
    let dense = |name: String, inputs: usize| dense_summary_row(name, inputs, spec.width);
    let mut layers = vec![dense("input".into(), inputs(spec))];
    for i in 0..blocks {
        layers.push(dense(format!("blocks.{i}.first"), spec.width));
        layers.push(dense(format!("blocks.{i}.second"), spec.width));
    }
    layers.push(classifier_summary(spec.width, spec.classes));
    let family = spec.family;
    Ok(ArchSummary {
        title: format!(
            "{family} MLP, depth {} ({blocks} blocks of 2), width {}, {} inputs",
            spec.depth,
            spec.width,
            inputs(spec)
        ),
        layers,
    })
}

#[derive(Debug, Clone)]
struct Block {
    first: DenseLayer,
    second: DenseLayer,
    residual: bool,
}

impl Block {
    fn forward_probe(
        &self,
        xs: &Tensor,
        train: bool,
        name: &str,
        probe: &mut Probe,
    ) -> Result<Tensor> {
        let first = probe.watch(|| format!("{name}.first"));
        let h = first.layer_then(&self.first, xs, train, LayerEnd::Relu)?;
        let end = match self.residual {
            true => LayerEnd::AddRelu(xs),
            false => LayerEnd::Relu,
        };
        let second = probe.watch(|| format!("{name}.second"));
        second.layer_then(&self.second, &h, train, end)
    }
}

#[derive(Debug, Clone)]
pub struct Mlp {
    input: DenseLayer,
    blocks: Vec<Block>,
    /// Each block's path (`blocks.3`), for recorded responses.
    block_names: Vec<String>,
    classifier: Classifier,
}

pub fn mlp(cfg: &NetSpec, vb: VarBuilder) -> std::result::Result<Mlp, ModelError> {
    let n_blocks = blocks(cfg)?;
    let residual = cfg.residual();
    let last_gamma = if residual && cfg.zero_init_residual {
        0.0
    } else {
        1.0
    };
    let input = dense_layer(inputs(cfg), cfg.width, 1.0, vb.pp("input"))?;
    let blocks = (0..n_blocks)
        .map(|i| {
            let vb = vb.pp("blocks").pp(i);
            Ok(Block {
                first: dense_layer(cfg.width, cfg.width, 1.0, vb.pp("first"))?,
                second: dense_layer(cfg.width, cfg.width, last_gamma, vb.pp("second"))?,
                residual,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let classifier = classifier(cfg.width, cfg.classes, vb.pp("classifier"))?;
    Ok(Mlp {
        input,
        block_names: (0..blocks.len()).map(|i| format!("blocks.{i}")).collect(),
        blocks,
        classifier,
    })
}

impl Mlp {
    /// Block `i`'s parameter path.
    pub fn block_name(&self, i: usize) -> String {
        self.block_names.get(i).cloned().unwrap_or_default()
    }

    /// Blocks, in forward order (each can be deleted: an MLP block keeps its shape).
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// The forward pass, recording responses or deleting a block as `probe` says.
    pub fn forward_probe(&self, xs: &Tensor, train: bool, probe: &mut Probe) -> Result<Tensor> {
        let xs = xs.flatten_from(1)?;
        let input = probe.watch(|| "input".into());
        let mut h = input.layer_then(&self.input, &xs, train, LayerEnd::Relu)?;
        for (i, (block, name)) in self.blocks.iter().zip(&self.block_names).enumerate() {
            if probe.lesion != Some(i) {
                h = block.forward_probe(&h, train, name, probe)?;
            }
        }
        self.classifier.forward(&h)
    }
}

impl ModuleT for Mlp {
    /// `xs`: (batch, inputs) or (batch, channels, rows, cols), flattened here -> logits
    /// (batch, classes).
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_probe(xs, train, &mut Probe::none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{params, rng::normal_tensor, seeded_var_builder};
    use candle_core::{DType, Device};
    use candle_nn::VarMap;
    use vocab::{Family, ModelArch};

    fn build(family: Family, depth: usize, zero: bool, seed: u64) -> (Mlp, VarMap) {
        let varmap = VarMap::new();
        let cfg = NetSpec {
            arch: ModelArch::Mlp,
            shortcut: None,
            family,
            depth,
            width: 16,
            input: [1, 4, 5],
            classes: 10,
            zero_init_residual: zero,
        };
        let net = mlp(&cfg, seeded_var_builder(&varmap, seed, &Device::Cpu)).unwrap();
        (net, varmap)
    }

    fn shapes(varmap: &VarMap) -> Vec<(String, Vec<usize>)> {
        let mut v: Vec<_> = varmap
            .data()
            .lock()
            .unwrap()
            .iter()
            .map(|(n, v)| (n.clone(), v.dims().to_vec()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn plain_and_residual_twins_have_identical_parameters() {
        for depth in [4, 10, 64] {
            let (_, plain) = build(Family::Plain, depth, true, 0);
            let (_, residual) = build(Family::Residual, depth, true, 0);
            assert_eq!(shapes(&plain), shapes(&residual));
            // 20*16 input + per block 2*(16*16) + classifier 16*10+10, + BN 2*16 per layer.
            let layers = depth - 1;
            let blocks = (depth - 2) / 2;
            let expected = 20 * 16 + blocks * 2 * 16 * 16 + 16 * 10 + 10 + layers * 2 * 16;
            assert_eq!(params::count(&plain), expected);
            assert_eq!(params::count(&residual), expected);
            let cfg = NetSpec {
                arch: ModelArch::Mlp,
                shortcut: None,
                family: Family::Plain,
                depth,
                width: 16,
                input: [1, 4, 5],
                classes: 10,
                zero_init_residual: true,
            };
            let summary = mlp_summary(&cfg).unwrap();
            assert_eq!(summary.params(), expected);
            assert_eq!(summary.weighted_layers(), depth);
        }
    }

    #[test]
    fn output_shape_is_batch_by_classes_in_train_and_eval() {
        let (net, _) = build(Family::Residual, 6, true, 1);
        let xs = normal_tensor(&[5, 20], 1);
        assert_eq!(net.forward_t(&xs, true).unwrap().dims(), &[5, 10]);
        assert_eq!(net.forward_t(&xs, false).unwrap().dims(), &[5, 10]);
    }

    #[test]
    fn zero_init_makes_residual_blocks_identities() {
        // With the second gamma at zero and beta at zero, each block maps h to relu(h) = h
        // (h is already post-ReLU), so depth does not change the output at init.
        let xs = normal_tensor(&[8, 20], 2);
        let (shallow, _) = build(Family::Residual, 4, true, 3);
        let (deep, _) = build(Family::Residual, 12, true, 3);
        let a = shallow.forward_t(&xs, false).unwrap();
        let b = deep.forward_t(&xs, false).unwrap();
        let diff = kernels::testing::max_abs_diff(&a, &b);
        assert!(diff < 1e-6, "{diff}");
        // The plain net ignores the option: its second gamma stays 1.
        let (_, plain) = build(Family::Plain, 4, true, 3);
        let gamma = plain.data().lock().unwrap()["blocks.0.second.bn.weight"]
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap();
        assert!(gamma.iter().all(|&g| g == 1.0));
    }

    #[test]
    fn same_seed_same_weights() {
        let (_, a) = build(Family::Plain, 4, false, 9);
        let (_, b) = build(Family::Plain, 4, false, 9);
        let (_, c) = build(Family::Plain, 4, false, 10);
        let w = |m: &VarMap| {
            m.data().lock().unwrap()["input.weight"]
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        };
        assert_eq!(w(&a), w(&b));
        assert_ne!(w(&a), w(&c));
        // He init: std sqrt(2 / fan_in) over all 31 * 2 block layers of a depth-64 net.
        let (_, deep) = build(Family::Plain, 64, false, 9);
        let values: Vec<f32> = deep
            .data()
            .lock()
            .unwrap()
            .iter()
            .filter(|(n, _)| {
                n.starts_with("blocks.") && !n.contains(".bn.") && n.ends_with(".weight")
            })
            .flat_map(|(_, v)| {
                v.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
            .collect();
        assert_eq!(values.len(), 31 * 2 * 16 * 16);
        let rms = (values.iter().map(|x| x * x).sum::<f32>() / values.len() as f32).sqrt();
        assert!(
            (rms - (2.0f32 / 16.0).sqrt()).abs() < 0.01,
            "He init std {rms}"
        );
    }

    #[test]
    fn impossible_depths_are_errors() {
        let varmap = VarMap::new();
        for depth in [0, 2, 3, 7] {
            let cfg = NetSpec {
                arch: ModelArch::Mlp,
                shortcut: None,
                family: Family::Plain,
                depth,
                width: 4,
                input: [1, 2, 2],
                classes: 2,
                zero_init_residual: false,
            };
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
            assert!(matches!(mlp(&cfg, vb), Err(ModelError::Architecture(_))));
        }
    }
}
