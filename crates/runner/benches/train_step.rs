//! Training-step time (forward, backward, SGD update) at batch 128 on Fashion-MNIST-shaped
//! input (1x28x28), median of repeated steps after warm-up: the MLP family, and the
//! CIFAR-style conv nets at the widths the experiments use.
//!
//! Run with one compute thread, as the sweep's workers do:
//! `RAYON_NUM_THREADS=1 cargo bench -p runner --bench train_step` (or `just bench`).
//! `-- mlp` or `-- cifar` runs one family of models only.

use candle_core::{Device, Tensor};
use candle_nn::{ModuleT, VarMap};
use experiment::{DatasetName, Family, ModelArch, RunConfig, Schedule, Shortcut, TrainConfig};
use models::params;
use runner::sgd::Sgd;
use runner::train::build_model;
use std::time::Instant;

const BATCH: usize = 128;
const SHAPE: [usize; 3] = [1, 28, 28];

fn config(arch: ModelArch, family: Family, depth: usize, width: usize) -> RunConfig {
    RunConfig {
        experiment: "bench".into(),
        dataset: DatasetName::FashionMnist,
        train_limit: None,
        test_limit: None,
        validation: None,
        normalize: None,
        augment: None,
        arch,
        family,
        depth,
        width,
        shortcut: (arch == ModelArch::Cifar && family == Family::Residual).then_some(Shortcut::A),
        zero_init_residual: arch == ModelArch::Mlp,
        seed: 0,
        train: TrainConfig {
            epochs: Some(1),
            batch_size: BATCH,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            schedule: Schedule::Constant,
            max_loss: None,
            iterations: None,
            warmup: None,
        },
    }
}

/// Median milliseconds per step, and the number of trainable parameters.
fn median_step_ms(
    cfg: &RunConfig,
    warmup: usize,
    steps: usize,
) -> candle_core::Result<(f64, usize)> {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let model = build_model(cfg, SHAPE, &varmap, &device).map_err(candle_core::Error::wrap)?;
    let mut sgd = Sgd::new(params::trainable(&varmap), 0.9, 1e-4);
    let [c, h, w] = SHAPE;
    let xs = Tensor::randn(0f32, 1.0, (BATCH, c, h, w), &device)?;
    let ys = Tensor::from_vec(
        (0..BATCH as u32).map(|i| i % 10).collect::<Vec<_>>(),
        BATCH,
        &device,
    )?;
    let mut times = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        let start = Instant::now();
        let logits = model.forward_t(&xs, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &ys)?;
        let grads = loss.backward()?;
        sgd.step(&grads, 0.1)?;
        loss.to_scalar::<f32>()?;
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], params::count(&varmap)))
}

fn main() -> candle_core::Result<()> {
    let only = std::env::args()
        .skip(1)
        .find(|a| a == "mlp" || a == "cifar");
    println!(
        "training step, batch {BATCH}, input {}x{}x{}, {} compute thread(s), median after warm-up",
        SHAPE[0],
        SHAPE[1],
        SHAPE[2],
        candle_core::utils::get_num_threads()
    );
    println!(
        "{:<6} {:<10} {:>6} {:>6} {:>9} {:>6} {:>10}",
        "arch", "family", "depth", "width", "params", "steps", "ms/step"
    );
    // MLPs are fast: many steps. Conv steps take seconds on this CPU: few.
    let models = [
        (ModelArch::Mlp, Family::Plain, 4, 64, 5, 30),
        (ModelArch::Mlp, Family::Plain, 64, 64, 5, 30),
        (ModelArch::Mlp, Family::Residual, 64, 64, 5, 30),
        (ModelArch::Cifar, Family::Plain, 20, 8, 1, 5),
        (ModelArch::Cifar, Family::Plain, 56, 8, 1, 5),
        (ModelArch::Cifar, Family::Residual, 56, 8, 1, 5),
        (ModelArch::Cifar, Family::Plain, 20, 16, 1, 3),
    ];
    for (arch, family, depth, width, warmup, steps) in models {
        let name = match arch {
            ModelArch::Mlp => "mlp",
            ModelArch::Cifar => "cifar",
        };
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let (ms, params) = median_step_ms(&config(arch, family, depth, width), warmup, steps)?;
        println!(
            "{name:<6} {:<10} {depth:>6} {width:>6} {params:>9} {steps:>6} {ms:>10.2}",
            family.as_str(),
        );
    }
    Ok(())
}
