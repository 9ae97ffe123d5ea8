//! The CIFAR-10 networks of He et al. 2016 (section 4.2): a 3x3 conv with `width`
//! filters, three stages of n basic blocks on `width`, 2 `width` and 4 `width` filters
//! (the first conv of stages 2 and 3 has stride 2), global average pooling and a linear
//! classifier. Depth counts weighted layers: 1 + 6n + 1 = 6n + 2 (20, 32, 44, 56, 110 for
//! n = 3, 5, 7, 9, 18). The paper's width is 16; narrower twins run faster on a CPU.

use crate::basic_block::{basic_block, BasicBlock, BlockShape};
use crate::classifier::{classifier, classifier_summary, Classifier};
use crate::conv_layer::{conv_layer, ConvLayer, ConvShape};
use crate::error::ModelError;
use crate::probe::{LayerEnd, Probe};
use crate::shortcut::projection_shape;
use crate::summary::{ArchSummary, LayerSummary};
use candle_core::Module;
use candle_core::{Result, Tensor};
use candle_nn::{ModuleT, VarBuilder};
use vocab::{NetSpec, ShortcutOption, CIFAR_STAGES};

/// n, the blocks per stage, or why `spec` cannot be built.
fn blocks_per_stage(spec: &NetSpec) -> std::result::Result<usize, ModelError> {
    spec.units().map_err(ModelError::Architecture)
}

/// Every block's shape, stage by stage: (stage, index in stage, shape).
fn block_shapes(
    spec: &NetSpec,
) -> std::result::Result<Vec<(usize, usize, BlockShape)>, ModelError> {
    let n = blocks_per_stage(spec)?;
    let mut out = Vec::with_capacity(CIFAR_STAGES * n);
    let mut channels = spec.width;
    for stage in 0..CIFAR_STAGES {
        let out_channels = spec.width << stage;
        for i in 0..n {
            let stride = if stage > 0 && i == 0 { 2 } else { 1 };
            out.push((
                stage,
                i,
                BlockShape {
                    in_channels: channels,
                    out_channels,
                    stride,
                },
            ));
            channels = out_channels;
        }
    }
    Ok(out)
}

fn stem_shape(spec: &NetSpec) -> ConvShape {
    ConvShape {
        in_channels: spec.input[0],
        out_channels: spec.width,
        kernel: 3,
        stride: 1,
    }
}

fn final_channels(spec: &NetSpec) -> usize {
    spec.width << (CIFAR_STAGES - 1)
}

/// The layer table, for the spec's input images (square: `input[1]` rows).
pub fn cifar_summary(spec: &NetSpec) -> std::result::Result<ArchSummary, ModelError> {
    let side = spec.input[1];
    let mut layers = Vec::new();
    let conv = |name: String, shape: ConvShape, side: usize| shape.summary_row(name, side);
    let mut side_now = stem_shape(spec).output_side(side);
    layers.push(conv("stem".into(), stem_shape(spec), side_now));
    for (stage, i, shape) in block_shapes(spec)? {
        let path = format!("stages.{stage}.{i}");
        let side_in = side_now;
        side_now = shape.first().output_side(side_in);
        layers.push(conv(format!("{path}.first"), shape.first(), side_now));
        layers.push(conv(format!("{path}.second"), shape.second(), side_now));
        if spec.residual() && shape.changes_shape() {
            let name = format!("{path}.shortcut");
            layers.push(match spec.shortcut.unwrap_or(ShortcutOption::A) {
                ShortcutOption::A => LayerSummary {
                    name,
                    kind: format!(
                        "shortcut A: subsample /{}, {} zero channels",
                        shape.stride,
                        shape.out_channels - shape.in_channels
                    ),
                    output: vec![shape.out_channels, side_now, side_now],
                    params: 0,
                    multiply_adds: 0,
                    counts_in_depth: false,
                },
                ShortcutOption::B => conv(
                    name,
                    projection_shape(shape.in_channels, shape.out_channels, shape.stride),
                    side_now,
                ),
            });
        }
    }
    layers.push(LayerSummary {
        name: "pool".into(),
        kind: "global average pool".into(),
        output: vec![final_channels(spec)],
        params: 0,
        multiply_adds: 0,
        counts_in_depth: false,
    });
    layers.push(classifier_summary(final_channels(spec), spec.classes));
    let family = match spec.shortcut {
        Some(option) if spec.residual() => {
            format!("residual (shortcut option {})", option.letter())
        }
        _ => spec.family.to_string(),
    };
    Ok(ArchSummary {
        title: format!(
            "CIFAR-style {family} net, depth {} (n = {}), widths {}/{}/{}, input {}x{side}x{side}",
            spec.depth,
            blocks_per_stage(spec)?,
            spec.width,
            spec.width * 2,
            spec.width * 4,
            spec.input[0]
        ),
        layers,
    })
}

#[derive(Debug, Clone)]
pub struct CifarNet {
    stem: ConvLayer,
    blocks: Vec<BasicBlock>,
    /// Each block's path (`stages.1.0`), for recorded responses.
    block_names: Vec<String>,
    classifier: Classifier,
}

/// Builds the net; parameter paths are `stem`, `stages.{s}.{i}.{first,second,shortcut}`
/// and `classifier`, the same for a plain net and its residual twin.
pub fn cifar_net(spec: &NetSpec, vb: VarBuilder) -> std::result::Result<CifarNet, ModelError> {
    let blocks_shapes = block_shapes(spec)?;
    let stem = conv_layer(stem_shape(spec), 1.0, vb.pp("stem"))?;
    let second_gamma = if spec.residual() && spec.zero_init_residual {
        0.0
    } else {
        1.0
    };
    let option = spec
        .residual()
        .then(|| spec.shortcut.unwrap_or(ShortcutOption::A));
    let block_names = blocks_shapes
        .iter()
        .map(|(stage, i, _)| format!("stages.{stage}.{i}"))
        .collect();
    let blocks = blocks_shapes
        .into_iter()
        .map(|(stage, i, shape)| {
            basic_block(shape, option, second_gamma, vb.pp("stages").pp(stage).pp(i))
        })
        .collect::<Result<Vec<_>>>()?;
    let classifier = classifier(final_channels(spec), spec.classes, vb.pp("classifier"))?;
    Ok(CifarNet {
        stem,
        blocks,
        block_names,
        classifier,
    })
}

impl CifarNet {
    /// Blocks, in forward order.
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Block `i`'s parameter path.
    pub fn block_name(&self, i: usize) -> String {
        self.block_names.get(i).cloned().unwrap_or_default()
    }

    /// Whether block `i` can be deleted: any residual block (its shortcut remains), a
    /// plain block only where it keeps the shape.
    pub fn can_delete(&self, i: usize) -> bool {
        self.blocks.get(i).is_some_and(BasicBlock::can_be_deleted)
    }

    /// The forward pass, recording responses or deleting a block as `probe` says.
    pub fn forward_probe(&self, xs: &Tensor, train: bool, probe: &mut Probe) -> Result<Tensor> {
        let stem = probe.watch(|| "stem".into());
        let mut h = stem.layer_then(&self.stem, xs, train, LayerEnd::Relu)?;
        for (i, (block, name)) in self.blocks.iter().zip(&self.block_names).enumerate() {
            h = if probe.lesion == Some(i) {
                match block.deleted(&h, train) {
                    Some(h) => h?,
                    None => candle_core::bail!(
                        "block {name} of a plain net changes the shape: it cannot be deleted"
                    ),
                }
            } else {
                block.forward_probe(&h, train, name, probe)?
            };
        }
        self.classifier.forward(&h.mean((2, 3))?)
    }
}

impl ModuleT for CifarNet {
    /// `xs`: (batch, channels, rows, cols) -> logits (batch, classes).
    fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Tensor> {
        self.forward_probe(xs, train, &mut Probe::none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{params, rng::normal_tensor, seeded_var_builder};
    use candle_core::Device;
    use candle_nn::VarMap;
    use vocab::{Family, ModelArch};

    fn config(family: Family, depth: usize, shortcut: ShortcutOption) -> NetSpec {
        NetSpec {
            arch: ModelArch::Cifar,
            family,
            depth,
            width: 16,
            input: [3, 32, 32],
            classes: 10,
            shortcut: ShortcutOption::for_net(ModelArch::Cifar, family, Some(shortcut)),
            zero_init_residual: false,
        }
    }

    fn build(cfg: &NetSpec) -> (CifarNet, VarMap) {
        let varmap = VarMap::new();
        let net = cifar_net(cfg, seeded_var_builder(&varmap, 0, &Device::Cpu)).unwrap();
        (net, varmap)
    }

    /// The paper's parameter counts, by hand: stem 3*16*9 + BN 32 = 464; a stage-1 block
    /// 2 * (16*16*9 + 32) = 4672; the first stage-2 block (16*32*9 + 64) + (32*32*9 + 64)
    /// = 13952, the others 2 * (32*32*9 + 64) = 18560; the first stage-3 block
    /// (32*64*9 + 128) + (64*64*9 + 128) = 55552, the others 2 * (64*64*9 + 128) = 73984;
    /// classifier 64*10 + 10 = 650. Total 97216 n - 21926. Option B adds the projections
    /// 16*32 + 64 = 576 and 32*64 + 128 = 2176: 2752.
    const PAPER: [(usize, usize); 5] = [
        (20, 269_722),
        (32, 464_154),
        (44, 658_586),
        (56, 853_018),
        (110, 1_727_962),
    ];

    #[test]
    fn option_a_nets_have_the_papers_parameter_counts_and_so_do_their_plain_twins() {
        for (depth, expected) in PAPER {
            for family in [Family::Plain, Family::Residual] {
                let cfg = config(family, depth, ShortcutOption::A);
                let (_, varmap) = build(&cfg);
                assert_eq!(params::count(&varmap), expected, "{family:?}-{depth}");
                assert_eq!(cifar_summary(&cfg).unwrap().params(), expected);
                assert_eq!(cifar_summary(&cfg).unwrap().weighted_layers(), depth);
            }
        }
    }

    #[test]
    fn option_b_adds_two_projections() {
        for (depth, paper) in PAPER {
            let cfg = config(Family::Residual, depth, ShortcutOption::B);
            let (_, varmap) = build(&cfg);
            assert_eq!(params::count(&varmap), paper + 2752, "residual-{depth} B");
            assert_eq!(cifar_summary(&cfg).unwrap().params(), paper + 2752);
        }
    }

    #[test]
    fn plain_twin_has_the_same_parameter_names_and_shapes_as_option_a() {
        let shapes = |varmap: &VarMap| {
            let mut v: Vec<(String, Vec<usize>)> = varmap
                .data()
                .lock()
                .unwrap()
                .iter()
                .map(|(n, v)| (n.clone(), v.dims().to_vec()))
                .collect();
            v.sort();
            v
        };
        let (_, plain) = build(&config(Family::Plain, 20, ShortcutOption::A));
        let (_, residual) = build(&config(Family::Residual, 20, ShortcutOption::A));
        assert_eq!(shapes(&plain), shapes(&residual));
    }

    #[test]
    fn output_shapes_for_both_input_sizes_and_channel_counts() {
        for (channels, side) in [(3, 32), (1, 28)] {
            for option in [ShortcutOption::A, ShortcutOption::B] {
                let cfg = NetSpec {
                    input: [channels, side, side],
                    width: 4,
                    ..config(Family::Residual, 8, option)
                };
                let (net, varmap) = build(&cfg);
                let xs = normal_tensor(&[2, channels, side, side], 1);
                for train in [true, false] {
                    assert_eq!(net.forward_t(&xs, train).unwrap().dims(), &[2, 10]);
                }
                let summary = cifar_summary(&cfg).unwrap();
                assert_eq!(summary.params(), params::count(&varmap));
                // 28 -> 14 -> 7 and 32 -> 16 -> 8 after the two stride-2 stages.
                let last_conv = &summary.layers[summary.layers.len() - 3];
                assert_eq!(last_conv.output, vec![16, side / 4, side / 4]);
            }
        }
    }

    #[test]
    fn impossible_depths_are_errors() {
        for depth in [0, 2, 7, 19, 21, 57] {
            let cfg = config(Family::Plain, depth, ShortcutOption::A);
            let vb = seeded_var_builder(&VarMap::new(), 0, &Device::Cpu);
            let e = cifar_net(&cfg, vb).unwrap_err().to_string();
            assert!(e.contains("6n + 2"), "{e}");
        }
    }

    #[test]
    fn a_width_whose_last_stage_would_wrap_is_an_error() {
        let mut cfg = config(Family::Plain, 20, ShortcutOption::A);
        cfg.width = usize::MAX / 2;
        let e = blocks_per_stage(&cfg).unwrap_err().to_string();
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn zero_init_residual_nets_start_as_their_shallowest_twin() {
        // With every block's second gamma at 0, a block outputs relu(shortcut(x)). On
        // post-ReLU input the identity blocks are exact identities, so at initialisation
        // a deeper net computes what its first blocks compute.
        let cfg = |depth| NetSpec {
            zero_init_residual: true,
            width: 4,
            input: [1, 12, 12],
            ..config(Family::Residual, depth, ShortcutOption::A)
        };
        let xs = normal_tensor(&[3, 1, 12, 12], 2);
        let (a, _) = build(&cfg(8));
        let (b, _) = build(&cfg(20));
        let diff = kernels::testing::max_abs_diff(
            &a.forward_t(&xs, false).unwrap(),
            &b.forward_t(&xs, false).unwrap(),
        );
        assert!(diff < 1e-5, "{diff}");
    }
}
