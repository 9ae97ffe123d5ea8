//! Training-step time (forward, backward, SGD update) of the MLP family at batch 128 on
//! Fashion-MNIST-shaped input, median of repeated steps after warm-up.
//!
//! Run with one compute thread, as the sweep's workers do:
//! `RAYON_NUM_THREADS=1 cargo bench -p runner --bench train_step` (or `just bench`).

use candle_core::{Device, Tensor};
use candle_nn::{ModuleT, VarMap};
use experiment::{DatasetName, Family, ModelArch, RunConfig, Schedule, TrainConfig};
use models::params;
use runner::sgd::Sgd;
use runner::train::build_model;
use std::time::Instant;

const BATCH: usize = 128;
const INPUTS: usize = 784;
const WARMUP: usize = 5;
const STEPS: usize = 30;

fn config(family: Family, depth: usize, width: usize) -> RunConfig {
    RunConfig {
        experiment: "bench".into(),
        dataset: DatasetName::FashionMnist,
        train_limit: None,
        test_limit: None,
        arch: ModelArch::Mlp,
        family,
        depth,
        width,
        zero_init_residual: true,
        seed: 0,
        train: TrainConfig {
            epochs: 1,
            batch_size: BATCH,
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 1e-4,
            schedule: Schedule::Constant,
            max_loss: None,
        },
    }
}

fn median_step_ms(cfg: &RunConfig) -> candle_core::Result<f64> {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let model = build_model(cfg, INPUTS, &varmap).map_err(candle_core::Error::wrap)?;
    let mut sgd = Sgd::new(params::trainable(&varmap), 0.9, 1e-4);
    let xs = Tensor::randn(0f32, 1.0, (BATCH, INPUTS), &device)?;
    let ys = Tensor::from_vec(
        (0..BATCH as u32).map(|i| i % 10).collect::<Vec<_>>(),
        BATCH,
        &device,
    )?;
    let mut times = Vec::with_capacity(STEPS);
    for i in 0..WARMUP + STEPS {
        let start = Instant::now();
        let logits = model.forward_t(&xs, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &ys)?;
        let grads = loss.backward()?;
        sgd.step(&grads, 0.1)?;
        loss.to_scalar::<f32>()?;
        if i >= WARMUP {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn main() -> candle_core::Result<()> {
    println!(
        "training step, batch {BATCH}, {INPUTS} inputs, {} compute thread(s), median of {STEPS} after {WARMUP} warm-up",
        candle_core::utils::get_num_threads()
    );
    println!(
        "{:<10} {:>6} {:>6} {:>10}",
        "family", "depth", "width", "ms/step"
    );
    for (family, depth, width) in [
        (Family::Plain, 4, 64),
        (Family::Plain, 64, 64),
        (Family::Residual, 64, 64),
    ] {
        let ms = median_step_ms(&config(family, depth, width))?;
        println!(
            "{:<10} {:>6} {:>6} {:>10.2}",
            family.as_str(),
            depth,
            width,
            ms
        );
    }
    Ok(())
}
