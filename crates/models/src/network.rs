//! One type for "a network the tool can train", whichever family of architecture it is.

use crate::cifar_net::{cifar_net, cifar_summary, CifarNet};
use crate::error::ModelError;
use crate::mlp::{mlp, mlp_summary, Mlp};
use crate::probe::Probe;
use crate::summary::ArchSummary;
use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};
use vocab::{ModelArch, NetSpec};

#[derive(Debug, Clone)]
pub enum Network {
    Mlp(Mlp),
    Cifar(CifarNet),
}

/// Builds the network `spec` describes, its parameters named through `vb`: a plain net
/// and its residual twin get the same names and shapes.
pub fn build(spec: &NetSpec, vb: VarBuilder) -> std::result::Result<Network, ModelError> {
    Ok(match spec.arch {
        ModelArch::Mlp => Network::Mlp(mlp(spec, vb)?),
        ModelArch::Cifar => Network::Cifar(cifar_net(spec, vb)?),
    })
}

/// The layer table of the network `spec` describes, without building it.
pub fn summary(spec: &NetSpec) -> std::result::Result<ArchSummary, ModelError> {
    match spec.arch {
        ModelArch::Mlp => mlp_summary(spec),
        ModelArch::Cifar => cifar_summary(spec),
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
    use crate::rng::normal_tensor;
    use crate::seeded_var_builder;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;
    use kernels::testing::max_abs_diff;
    use vocab::{Family, ShortcutOption};

    fn build_net(arch: &NetSpec) -> Network {
        build(arch, seeded_var_builder(&VarMap::new(), 4, &Device::Cpu)).unwrap()
    }

    fn cifar(family: Family, zero_init_residual: bool) -> NetSpec {
        NetSpec {
            arch: ModelArch::Cifar,
            family,
            depth: 14,
            width: 4,
            input: [1, 6, 6],
            classes: 10,
            shortcut: ShortcutOption::for_net(ModelArch::Cifar, family, None),
            zero_init_residual,
        }
    }

    fn mlp(family: Family, zero_init_residual: bool) -> NetSpec {
        NetSpec {
            arch: ModelArch::Mlp,
            shortcut: None,
            family,
            depth: 8,
            width: 8,
            input: [1, 1, 36],
            classes: 10,
            zero_init_residual,
        }
    }

    #[test]
    fn deleting_a_block_whose_branch_outputs_zero_changes_nothing() {
        // Zero-initialised residual blocks: gamma = beta = 0, the branch outputs zeros,
        // so the block is relu(shortcut(x)) = shortcut(x) on post-ReLU x: deleting it
        // (y = shortcut(x)) leaves the output as it was, for every block.
        let xs = normal_tensor(&[5, 1, 6, 6], 1);
        for arch in [cifar(Family::Residual, true), mlp(Family::Residual, true)] {
            let net = build_net(&arch);
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
        let net = build_net(&cifar(Family::Residual, false));
        let whole = net.forward_t(&xs, false).unwrap();
        let lesioned = net
            .forward_probe(&xs, false, &mut Probe::lesion(0))
            .unwrap();
        assert!(max_abs_diff(&whole, &lesioned) > 1e-4);
    }

    /// Evaluation measures and trains nothing, so it keeps no graph back to the early
    /// layers (their activations are freed as the pass goes on): no gradient reaches the
    /// first layer's weight from an evaluation's loss, where one from training does.
    #[test]
    fn evaluation_keeps_no_graph_back_to_the_first_layer() {
        for (arch, first, xs) in [
            (
                cifar(Family::Residual, false),
                "stem.weight",
                &[3, 1, 6, 6][..],
            ),
            (cifar(Family::Plain, false), "stem.weight", &[3, 1, 6, 6]),
            (mlp(Family::Residual, false), "input.weight", &[3, 36]),
        ] {
            let varmap = VarMap::new();
            let net = build(&arch, seeded_var_builder(&varmap, 4, &Device::Cpu)).unwrap();
            let weight = varmap.data().lock().unwrap()[first].as_tensor().clone();
            let xs = normal_tensor(xs, 5);
            for (train, reaches) in [(true, true), (false, false)] {
                let loss = net.forward_t(&xs, train).unwrap().sum_all().unwrap();
                let grads = loss.backward().unwrap();
                assert_eq!(
                    grads.get(&weight).is_some(),
                    reaches,
                    "{first}, train {train}"
                );
            }
        }
    }

    #[test]
    fn plain_blocks_that_change_shape_cannot_be_deleted() {
        let net = build_net(&cifar(Family::Plain, false));
        // depth 14: n = 2; blocks 2 and 4 start stages 2 and 3.
        let deletable: Vec<bool> = (0..net.blocks()).map(|i| net.can_delete(i)).collect();
        assert_eq!(deletable, [true, true, false, true, false, true]);
        let xs = normal_tensor(&[2, 1, 6, 6], 2);
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
        const SEED: u64 = 3;
        use crate::seeded_init::seeded_var_builder_with_dtype;
        // Width 16: every stage has whole groups of 16 channels, so the direct kernels
        // take all three products of every 3x3 stride-1 convolution.
        let wide = |family| NetSpec {
            width: 16,
            ..cifar(family, false)
        };
        for (arch, dims) in [
            (wide(Family::Plain), vec![4, 1, 12, 12]),
            (wide(Family::Residual), vec![4, 1, 12, 12]),
            (mlp(Family::Residual, false), vec![7, 36]),
        ] {
            // Fixed inputs. Through 14 layers of ReLU, about one random draw in a
            // hundred puts a pre-activation within rounding of zero, where f32 and f64
            // take different branches and the early layers' gradients differ by 0.1-20 %:
            // in each such draw seen, Candle's f64 computation itself moved by as much
            // when its input moved by one part in a million, so the jump is the
            // function's, not the kernels' (in 800 draws, ours was within 1e-4 of the
            // scale everywhere else). A change that makes these inputs fail needs that
            // check before the tolerance or the kernels are blamed.
            let xs = normal_tensor(&dims, SEED);
            let weights = normal_tensor(&[dims[0], 10], SEED + 1);
            let run = |dtype: DType| {
                let varmap = VarMap::new();
                let vb = seeded_var_builder_with_dtype(&varmap, 4, dtype, &Device::Cpu);
                let net = build(&arch, vb).unwrap();
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

    /// Started by `results_do_not_depend_on_the_thread_count` with a thread count in its
    /// environment: one training pass of a conv net and an MLP, each large enough for the
    /// kernels to split their work between threads, with the thread count, the logits and
    /// every parameter gradient written as raw bits.
    #[test]
    #[ignore = "a child process of the thread-count test, which starts it"]
    fn training_pass_bits_for_the_thread_count_test() {
        let Some(out) = std::env::var_os("DEGRADE_THREADS_TEST_OUT") else {
            return;
        };
        let wide = |family| NetSpec {
            width: 16,
            ..cifar(family, false)
        };
        let wide_mlp = NetSpec {
            arch: ModelArch::Mlp,
            shortcut: None,
            family: Family::Residual,
            depth: 6,
            width: 256,
            input: [1, 1, 36],
            classes: 10,
            zero_init_residual: false,
        };
        let threads = candle_core::utils::barrier_pool().n_workers() + 1;
        let mut bits: Vec<u8> = (threads as u32).to_le_bytes().to_vec();
        for (arch, dims) in [
            (wide(Family::Plain), vec![32, 1, 12, 12]),
            (wide(Family::Residual), vec![32, 1, 12, 12]),
            (wide_mlp, vec![256, 36]),
        ] {
            let mut rng = crate::rng::SeededRng::new(11);
            let n: usize = dims.iter().product();
            let values: Vec<f32> = (0..n).map(|_| rng.normal() as f32).collect();
            let xs = Tensor::from_vec(values, dims.as_slice(), &Device::Cpu).unwrap();
            let varmap = VarMap::new();
            let net = build(&arch, seeded_var_builder(&varmap, 4, &Device::Cpu)).unwrap();
            let logits = net.forward_t(&xs, true).unwrap();
            let weights: Vec<f32> = (0..dims[0] * 10).map(|_| rng.normal() as f32).collect();
            let weights = Tensor::from_vec(weights, (dims[0], 10), &Device::Cpu).unwrap();
            let grads = (&logits * weights)
                .and_then(|l| l.sum_all())
                .and_then(|l| l.backward())
                .unwrap();
            let data = varmap.data().lock().unwrap();
            let mut names: Vec<&String> = data.keys().collect();
            names.sort();
            let mut tensors = vec![logits];
            tensors.extend(names.iter().filter_map(|n| grads.get(&data[*n]).cloned()));
            for t in tensors {
                for v in t.flatten_all().unwrap().to_vec1::<f32>().unwrap() {
                    bits.extend(v.to_bits().to_le_bytes());
                }
            }
        }
        std::fs::write(out, bits).unwrap();
    }

    /// The README says a run gives the same numbers with any number of threads: the
    /// kernels add partial sums in task order, never in thread order. One, two and three
    /// threads must give the same logits and gradients to the bit, conv and MLP.
    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        let tmp = tempfile::tempdir().unwrap();
        let run = |threads: usize| {
            let out = tmp.path().join(format!("bits-{threads}"));
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "network::tests::training_pass_bits_for_the_thread_count_test",
                    "--exact",
                    "--ignored",
                ])
                .env("CANDLE_NUM_THREADS", threads.to_string())
                .env("RAYON_NUM_THREADS", threads.to_string())
                .env("DEGRADE_THREADS_TEST_OUT", &out)
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success(), "{threads} threads");
            let bits = std::fs::read(&out).unwrap();
            let used = u32::from_le_bytes(bits[..4].try_into().unwrap());
            assert_eq!(used as usize, threads, "the child ran on {used} threads");
            bits[4..].to_vec()
        };
        let one = run(1);
        assert!(one.len() > 100_000, "logits and gradients of three nets");
        for threads in [2, 3] {
            let other = run(threads);
            let first_difference = one.iter().zip(&other).position(|(a, b)| a != b);
            assert!(
                other.len() == one.len() && first_difference.is_none(),
                "{threads} threads differ from one at byte {first_difference:?}"
            );
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
            let net = build(&arch, seeded_var_builder(&varmap, 4, &Device::Cpu)).unwrap();
            let xs = normal_tensor(&dims, 5);
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
        let xs = normal_tensor(&[7, 36], 6);
        let arch = mlp(Family::Plain, false);
        let varmap = VarMap::new();
        let net = build(&arch, seeded_var_builder(&varmap, 4, &Device::Cpu)).unwrap();
        let mut probe = Probe::responses();
        let logits = net.forward_probe(&xs, false, &mut probe).unwrap();
        assert!(max_abs_diff(&logits, &net.forward_t(&xs, false).unwrap()) == 0.0);
        let names: Vec<&str> = probe.responses.iter().map(|(n, _)| n.as_str()).collect();
        let expected: Vec<String> = summary(&arch)
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
