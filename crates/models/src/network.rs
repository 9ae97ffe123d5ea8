//! One type for "a network the tool can train", whichever family of architecture it is.

use crate::cifar_net::{cifar_net, CifarConfig, CifarNet};
use crate::error::ModelError;
use crate::mlp::{mlp, Mlp, MlpConfig};
use crate::probe::Probe;
use crate::summary::ArchSummary;
use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};

#[derive(Debug, Clone, PartialEq)]
pub enum Architecture {
    Mlp(MlpConfig),
    Cifar(CifarConfig),
}

#[derive(Debug, Clone)]
pub enum Network {
    Mlp(Mlp),
    Cifar(CifarNet),
}

impl Architecture {
    pub fn build(&self, vb: VarBuilder) -> std::result::Result<Network, ModelError> {
        Ok(match self {
            Architecture::Mlp(cfg) => Network::Mlp(mlp(cfg, vb)?),
            Architecture::Cifar(cfg) => Network::Cifar(cifar_net(cfg, vb)?),
        })
    }

    /// The layer table for square `side` x `side` inputs.
    pub fn summary(&self, side: usize) -> std::result::Result<ArchSummary, ModelError> {
        match self {
            Architecture::Mlp(cfg) => cfg.summary(),
            Architecture::Cifar(cfg) => cfg.summary(side),
        }
    }
}

impl Network {
    /// Blocks, in forward order.
    pub fn blocks(&self) -> usize {
        match self {
            Network::Mlp(net) => net.blocks(),
            Network::Cifar(net) => net.blocks(),
        }
    }

    /// Block `i`'s parameter path (`blocks.3`, `stages.1.0`).
    pub fn block_name(&self, i: usize) -> String {
        match self {
            Network::Mlp(net) => net.block_name(i),
            Network::Cifar(net) => net.block_name(i),
        }
    }

    /// Whether block `i` can be deleted (see `Probe`).
    pub fn can_delete(&self, i: usize) -> bool {
        match self {
            Network::Mlp(net) => i < net.blocks(),
            Network::Cifar(net) => net.can_delete(i),
        }
    }

    /// The forward pass, recording responses or deleting a block as `probe` says.
    pub fn forward_probe(&self, xs: &Tensor, train: bool, probe: &mut Probe) -> Result<Tensor> {
        match self {
            Network::Mlp(net) => net.forward_probe(xs, train, probe),
            Network::Cifar(net) => net.forward_probe(xs, train, probe),
        }
    }
}

impl ModuleT for Network {
    /// `xs`: (batch, channels, rows, cols) -> logits (batch, classes).
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        match self {
            Network::Mlp(net) => net.forward_t(xs, train),
            Network::Cifar(net) => net.forward_t(xs, train),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::response_stds;
    use crate::test_util::max_abs_diff;
    use crate::{seeded_var_builder, CifarConfig, Family, ShortcutOption};
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    fn build(arch: &Architecture) -> Network {
        arch.build(seeded_var_builder(&VarMap::new(), 4, &Device::Cpu))
            .unwrap()
    }

    fn cifar(family: Family, zero_init_residual: bool) -> Architecture {
        Architecture::Cifar(CifarConfig {
            family,
            depth: 14,
            width: 4,
            in_channels: 1,
            classes: 10,
            shortcut: ShortcutOption::A,
            zero_init_residual,
        })
    }

    fn mlp(family: Family, zero_init_residual: bool) -> Architecture {
        Architecture::Mlp(MlpConfig {
            family,
            depth: 8,
            width: 8,
            inputs: 36,
            classes: 10,
            zero_init_residual,
        })
    }

    #[test]
    fn deleting_a_block_whose_branch_outputs_zero_changes_nothing() {
        // Zero-initialised residual blocks: gamma = beta = 0, the branch outputs zeros,
        // so the block is relu(shortcut(x)) = shortcut(x) on post-ReLU x: deleting it
        // (y = shortcut(x)) leaves the output as it was, for every block.
        let xs = Tensor::randn(0f32, 1.0, (5, 1, 6, 6), &Device::Cpu).unwrap();
        for arch in [cifar(Family::Residual, true), mlp(Family::Residual, true)] {
            let net = build(&arch);
            let whole = net.forward_t(&xs, false).unwrap();
            for i in 0..net.blocks() {
                assert!(net.can_delete(i));
                let lesioned = net
                    .forward_probe(&xs, false, &mut Probe::lesion(i))
                    .unwrap();
                assert!(max_abs_diff(&whole, &lesioned) < 1e-6, "block {i}");
            }
        }
        // A trained-looking (non-zero) branch does change the output.
        let net = build(&cifar(Family::Residual, false));
        let whole = net.forward_t(&xs, false).unwrap();
        let lesioned = net
            .forward_probe(&xs, false, &mut Probe::lesion(0))
            .unwrap();
        assert!(max_abs_diff(&whole, &lesioned) > 1e-4);
    }

    #[test]
    fn plain_blocks_that_change_shape_cannot_be_deleted() {
        let net = build(&cifar(Family::Plain, false));
        // depth 14: n = 2; blocks 2 and 4 start stages 2 and 3.
        let deletable: Vec<bool> = (0..net.blocks()).map(|i| net.can_delete(i)).collect();
        assert_eq!(deletable, [true, true, false, true, false, true]);
        let xs = Tensor::randn(0f32, 1.0, (2, 1, 6, 6), &Device::Cpu).unwrap();
        let e = net
            .forward_probe(&xs, false, &mut Probe::lesion(2))
            .unwrap_err();
        assert!(e.to_string().contains("stages.1.0"), "{e}");
        assert!(net.forward_probe(&xs, false, &mut Probe::lesion(3)).is_ok());
    }

    /// The whole training pass on our f32 kernels against Candle's own operations, which
    /// the layers use in f64: logits and every parameter gradient, plain and residual,
    /// conv and MLP. Each kernel is tested alone; this checks how they compose.
    #[test]
    fn our_kernels_train_like_candles_operations() {
        use crate::seeded_init::seeded_var_builder_with_dtype;
        // Width 16: every stage has whole groups of 16 channels, so the direct kernels
        // take all three products of every 3x3 stride-1 convolution.
        let wide = |family| match cifar(family, false) {
            Architecture::Cifar(c) => Architecture::Cifar(CifarConfig { width: 16, ..c }),
            other => other,
        };
        for (arch, dims) in [
            (wide(Family::Plain), vec![4, 1, 12, 12]),
            (wide(Family::Residual), vec![4, 1, 12, 12]),
            (mlp(Family::Residual, false), vec![7, 36]),
        ] {
            let xs = Tensor::randn(0f32, 1.0, dims.as_slice(), &Device::Cpu).unwrap();
            let weights = Tensor::randn(0f32, 1.0, (dims[0], 10), &Device::Cpu).unwrap();
            let run = |dtype: DType| {
                let varmap = VarMap::new();
                let vb = seeded_var_builder_with_dtype(&varmap, 4, dtype, &Device::Cpu);
                let net = arch.build(vb).unwrap();
                let logits = net.forward_t(&xs.to_dtype(dtype).unwrap(), true).unwrap();
                let loss = (&logits * weights.to_dtype(dtype).unwrap()).unwrap();
                let grads = loss.sum_all().unwrap().backward().unwrap();
                let data = varmap.data().lock().unwrap();
                let mut by_name: Vec<(String, Tensor)> = data
                    .iter()
                    .filter_map(|(n, v)| grads.get(v).map(|g| (n.clone(), g.clone())))
                    .collect();
                by_name.sort_by(|a, b| a.0.cmp(&b.0));
                (logits, by_name)
            };
            let (ours, our_grads) = run(DType::F32);
            let (theirs, their_grads) = run(DType::F64);
            let case = format!("{arch:?}");
            // Our f32 result against Candle's f64 one: the largest difference, and the
            // largest magnitude of Candle's, to scale the tolerance by.
            let compare = |ours: &Tensor, theirs: &Tensor| {
                let theirs = theirs.to_dtype(DType::F32).unwrap();
                let scale = theirs.abs().and_then(|t| t.max_all()).unwrap();
                (
                    max_abs_diff(ours, &theirs),
                    scale.to_scalar::<f32>().unwrap(),
                )
            };
            let (diff, scale) = compare(&ours, &theirs);
            assert!(diff <= 1e-3 * scale.max(1.0), "{case}: logits");
            assert_eq!(our_grads.len(), their_grads.len(), "{case}");
            for ((name, a), (_, b)) in our_grads.iter().zip(&their_grads) {
                let (diff, scale) = compare(a, b);
                assert!(
                    diff <= 2e-3 * scale.max(1e-3),
                    "{case}: {name}: {diff} of {scale}"
                );
            }
        }
    }

    /// Training without a probe fuses each ReLU into its batch norm; recording keeps
    /// them apart. Both must give the same logits and the same gradients, for every
    /// kind of block.
    #[test]
    fn the_fused_training_pass_matches_the_recording_one() {
        for (arch, dims) in [
            (mlp(Family::Plain, false), vec![7, 36]),
            (mlp(Family::Residual, false), vec![7, 36]),
            (cifar(Family::Plain, false), vec![3, 1, 8, 8]),
            (cifar(Family::Residual, false), vec![3, 1, 8, 8]),
        ] {
            let varmap = VarMap::new();
            let net = arch
                .build(seeded_var_builder(&varmap, 4, &Device::Cpu))
                .unwrap();
            let xs = Tensor::randn(0f32, 1.0, dims.as_slice(), &Device::Cpu).unwrap();
            let fused = net.forward_t(&xs, true).unwrap();
            let recorded = net
                .forward_probe(&xs, true, &mut Probe::responses())
                .unwrap();
            let case = format!("{arch:?}");
            assert!(max_abs_diff(&fused, &recorded) == 0.0, "{case}: logits");
            let (gf, gr) = (
                fused.sum_all().unwrap().backward().unwrap(),
                recorded.sum_all().unwrap().backward().unwrap(),
            );
            for (name, var) in varmap.data().lock().unwrap().iter() {
                if let (Some(a), Some(b)) = (gf.get(var), gr.get(var)) {
                    assert!(max_abs_diff(a, b) == 0.0, "{case}: gradient of {name}");
                } else {
                    assert!(name.contains("running"), "{case}: no gradient of {name}");
                }
            }
        }
    }

    #[test]
    fn responses_are_every_weighted_layer_before_its_relu_and_match_a_direct_computation() {
        let xs = Tensor::randn(0f32, 1.0, (7, 36), &Device::Cpu).unwrap();
        let arch = mlp(Family::Plain, false);
        let varmap = VarMap::new();
        let net = arch
            .build(seeded_var_builder(&varmap, 4, &Device::Cpu))
            .unwrap();
        let mut probe = Probe::responses();
        let logits = net.forward_probe(&xs, false, &mut probe).unwrap();
        assert!(max_abs_diff(&logits, &net.forward_t(&xs, false).unwrap()) == 0.0);
        let names: Vec<&str> = probe.responses.iter().map(|(n, _)| n.as_str()).collect();
        let expected: Vec<String> = arch
            .summary(6)
            .unwrap()
            .layers
            .iter()
            .filter(|l| l.counts_in_depth && l.name != "classifier")
            .map(|l| l.name.clone())
            .collect();
        assert_eq!(names, expected);
        // The first response, directly: BN in eval mode with fresh statistics (mean 0,
        // var 1, gamma 1, beta 0) is x / sqrt(1 + eps), so the response is x W^T / sqrt(1 + eps).
        let w = varmap.data().lock().unwrap()["input.weight"]
            .as_tensor()
            .clone();
        let direct = (xs.matmul(&w.t().unwrap()).unwrap() / (1.0f64 + 1e-5).sqrt()).unwrap();
        assert!(max_abs_diff(&probe.responses[0].1, &direct) < 1e-5);
        // And its standard deviation, by hand.
        let v: Vec<f64> = direct
            .flatten_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1()
            .unwrap();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64).sqrt();
        let stds = response_stds(&probe).unwrap();
        assert!(
            (stds[0].1 - std).abs() < 1e-5 * std,
            "{} vs {std}",
            stds[0].1
        );
    }
}
