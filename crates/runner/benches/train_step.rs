//! Training-step time (forward, cross-entropy, backward, SGD momentum update) at batch
//! 128 on Fashion-MNIST-shaped input (1x28x28): the MLP of depth 64 and width 64, and the
//! CIFAR-style plain-20, plain-56 and residual-56 at widths 4, 8, 16, 32 and 64. Median
//! of repeated steps after warm-up, with the achieved GFLOP/s (3 x 2 x the forward
//! multiply-adds per example x batch / time) next to the machine's peak, measured on the
//! spot: a loop of independent FMAs per instruction set the CPU has, on as many threads
//! as the bench uses (the nominal clock in /proc/cpuinfo is not the one the cores run
//! at, and a core's 512-bit FMAs need not have twice the 256-bit ones' throughput).
//!
//! The thread count is fixed when the first tensor is made, so one run measures one:
//! `RAYON_NUM_THREADS=1 cargo bench -p runner --bench train_step -- [--out FILE]
//! [--models a,b] [NAME-FILTER]`. `just bench` runs 1 and 2 threads; `just bench-compare`
//! runs PyTorch (`bench/torch_reference.py`) on the same models and prints the ratios.
//! `--out` appends one JSON line per model, the format `bench/compare.py` reads.

use candle_core::{Device, Tensor};
use candle_nn::{ModuleT, VarMap};
use experiment::{RunConfig, Schedule, TrainConfig};
use models::params;
use runner::sgd::Sgd;
use runner::train::build_model;
use std::io::Write;
use std::time::Instant;
use vocab::{DatasetName, Family, ModelArch, ShortcutOption, CLASSES};

const BATCH: usize = 128;
const SHAPE: [usize; 3] = [1, 28, 28];

/// One benchmarked model: its name (shared with `bench/torch_reference.py`), its
/// configuration and how many steps to time (conv steps take seconds).
struct Model {
    name: String,
    config: RunConfig,
    warmup: usize,
    steps: usize,
}

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
        shortcut: ShortcutOption::for_net(arch, family, None),
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

fn models() -> Vec<Model> {
    let mut all = Vec::new();
    for family in [Family::Plain, Family::Residual] {
        all.push(Model {
            name: format!("mlp-{}-d64-w64", family.as_str()),
            config: config(ModelArch::Mlp, family, 64, 64),
            warmup: 5,
            steps: 30,
        });
    }
    for width in [4, 8, 16, 32, 64] {
        for (family, depth) in [
            (Family::Plain, 20),
            (Family::Plain, 56),
            (Family::Residual, 56),
        ] {
            let (warmup, steps) = if width == 64 { (1, 3) } else { (2, 5) };
            all.push(Model {
                name: format!("cifar-{}-d{depth}-w{width}", family.as_str()),
                config: config(ModelArch::Cifar, family, depth, width),
                warmup,
                steps,
            });
        }
    }
    all
}

/// Median milliseconds per step, and the number of trainable parameters.
fn median_step_ms(model: &Model) -> candle_core::Result<(f64, usize)> {
    let device = Device::Cpu;
    let varmap = VarMap::new();
    let net =
        build_model(&model.config, SHAPE, &varmap, &device).map_err(candle_core::Error::wrap)?;
    let mut sgd = Sgd::new(params::trainable(&varmap), 0.9, 1e-4);
    let [c, h, w] = SHAPE;
    let xs = Tensor::randn(0f32, 1.0, (BATCH, c, h, w), &device)?;
    let ys = Tensor::from_vec(
        (0..BATCH as u32)
            .map(|i| i % CLASSES as u32)
            .collect::<Vec<_>>(),
        BATCH,
        &device,
    )?;
    let mut times = Vec::with_capacity(model.steps);
    for i in 0..model.warmup + model.steps {
        let start = Instant::now();
        let logits = net.forward_t(&xs, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &ys)?;
        let grads = loss.backward()?;
        sgd.step(&grads, 0.1)?;
        loss.to_scalar::<f32>()?;
        if i >= model.warmup {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok((times[times.len() / 2], params::count(&varmap)))
}

/// Floating-point operations of one training step: forward, input gradient and weight
/// gradient each cost one multiply and one add per forward multiply-add.
fn gflop_per_step(cfg: &RunConfig) -> f64 {
    let summary = models::summary(&cfg.net(SHAPE)).expect("the benchmark's models are valid");
    3.0 * 2.0 * summary.multiply_adds() as f64 * BATCH as f64 / 1e9
}

/// The FMA throughput this machine sustains, measured: for each instruction set it has,
/// `threads` threads each run independent chains of fused multiply-adds (more chains
/// than the FMA latency times the pipes, so nothing waits), and the best of a few tries
/// counts. (name, GFLOP/s) per instruction set.
fn measured_peaks(threads: usize) -> Vec<(&'static str, f64)> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut peaks = Vec::new();
        let sets: [FmaLoop; 2] = [
            (
                "AVX2 FMA",
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
                fma::avx2,
                fma::AVX2_FLOP_PER_ITERATION,
            ),
            (
                "AVX-512 FMA",
                is_x86_feature_detected!("avx512f"),
                fma::avx512,
                fma::AVX512_FLOP_PER_ITERATION,
            ),
        ];
        for (name, available, kernel, flop_per_iteration) in sets {
            if !available {
                continue;
            }
            const ITERATIONS: u64 = 20_000_000;
            let best = (0..3)
                .map(|_| {
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for _ in 0..threads {
                            s.spawn(|| std::hint::black_box(kernel(ITERATIONS)));
                        }
                    });
                    start.elapsed().as_secs_f64()
                })
                .fold(f64::INFINITY, f64::min);
            peaks.push((
                name,
                flop_per_iteration * (ITERATIONS * threads as u64) as f64 / best / 1e9,
            ));
        }
        peaks
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = threads;
        Vec::new()
    }
}

/// An instruction set's FMA loop: its name, whether this CPU has it, the loop (which
/// returns its sums, so that they are computed) and its FLOP per iteration.
#[cfg(target_arch = "x86_64")]
type FmaLoop = (&'static str, bool, fn(u64) -> f32, f64);

/// The FMA loops of `measured_peaks`: 12 independent accumulators of 8 or 16 f32.
#[cfg(target_arch = "x86_64")]
mod fma {
    use std::arch::x86_64::*;

    const CHAINS: usize = 12;
    pub const AVX2_FLOP_PER_ITERATION: f64 = (CHAINS * 8 * 2) as f64;
    pub const AVX512_FLOP_PER_ITERATION: f64 = (CHAINS * 16 * 2) as f64;

    pub fn avx2(iterations: u64) -> f32 {
        // SAFETY: called only where the CPU has AVX2 and FMA (measured_peaks checks).
        unsafe { avx2_loop(iterations) }
    }

    pub fn avx512(iterations: u64) -> f32 {
        // SAFETY: called only where the CPU has AVX-512F (measured_peaks checks).
        unsafe { avx512_loop(iterations) }
    }

    #[target_feature(enable = "avx2,fma")]
    fn avx2_loop(iterations: u64) -> f32 {
        let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
        let mut acc = [_mm256_set1_ps(1.0); CHAINS];
        for _ in 0..iterations {
            for x in &mut acc {
                *x = _mm256_fmadd_ps(*x, a, b);
            }
        }
        let mut sum = _mm256_setzero_ps();
        for x in acc {
            sum = _mm256_add_ps(sum, x);
        }
        let mut out = [0f32; 8];
        // SAFETY: `out` holds 8 f32.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), sum) };
        out.iter().sum()
    }

    #[target_feature(enable = "avx512f")]
    fn avx512_loop(iterations: u64) -> f32 {
        let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
        let mut acc = [_mm512_set1_ps(1.0); CHAINS];
        for _ in 0..iterations {
            for x in &mut acc {
                *x = _mm512_fmadd_ps(*x, a, b);
            }
        }
        let mut sum = _mm512_setzero_ps();
        for x in acc {
            sum = _mm512_add_ps(sum, x);
        }
        _mm512_reduce_add_ps(sum)
    }
}

struct Args {
    out: Option<String>,
    /// `--models a,b`: exactly these (the names `bench/torch_reference.py` takes).
    names: Vec<String>,
    /// Other arguments: models whose name contains any of them.
    filters: Vec<String>,
}

impl Args {
    fn wants(&self, name: &str) -> bool {
        (self.names.is_empty() || self.names.iter().any(|n| n == name))
            && (self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str())))
    }
}

fn args() -> Args {
    let (mut out, mut names, mut filters) = (None, Vec::new(), Vec::new());
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = it.next(),
            "--models" => names.extend(it.next().unwrap_or_default().split(',').map(String::from)),
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => filters.push(other.to_string()),
        }
    }
    Args {
        out,
        names,
        filters,
    }
}

fn main() -> candle_core::Result<()> {
    runner::allocator::retain_freed_memory();
    let args = args();
    let threads = candle_core::utils::get_num_threads();
    let known: Vec<String> = models().into_iter().map(|m| m.name).collect();
    if let Some(unknown) = args.names.iter().find(|n| !known.contains(n)) {
        eprintln!(
            "--models: no model named {unknown}; the models are {}",
            known.join(", ")
        );
        std::process::exit(2);
    }
    if !known.iter().any(|n| args.wants(n)) {
        eprintln!(
            "no model matches {:?}; the models are {}",
            args.filters,
            known.join(", ")
        );
        std::process::exit(2);
    }
    println!(
        "training step, batch {BATCH}, input {}x{}x{}, {threads} compute thread(s), median after warm-up",
        SHAPE[0], SHAPE[1], SHAPE[2],
    );
    let peaks = measured_peaks(threads);
    for (name, gflops) in &peaks {
        println!("measured peak, {name} on {threads} thread(s): {gflops:.0} GFLOP/s");
    }
    let peak = peaks.iter().map(|p| p.1).reduce(f64::max);
    if peak.is_none() {
        println!("peak: not measured on this CPU (no AVX2 or AVX-512)");
    }
    println!(
        "{:<24} {:>10} {:>6} {:>10} {:>10} {:>8} {:>7}",
        "model", "params", "steps", "ms/step", "GFLOP", "GFLOP/s", "% peak"
    );
    let mut out = match &args.out {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(candle_core::Error::wrap)?,
        ),
        None => None,
    };
    for model in models() {
        if !args.wants(&model.name) {
            continue;
        }
        let (ms, params) = median_step_ms(&model)?;
        let gflop = gflop_per_step(&model.config);
        let rate = gflop / (ms / 1e3);
        let of_peak = peak.map_or(String::from("?"), |p| format!("{:.0}", 100.0 * rate / p));
        println!(
            "{:<24} {params:>10} {:>6} {ms:>10.2} {gflop:>10.3} {rate:>8.1} {of_peak:>7}",
            model.name, model.steps
        );
        if let Some(file) = out.as_mut() {
            writeln!(
                file,
                "{{\"impl\":\"candle\",\"model\":\"{}\",\"threads\":{threads},\"median_ms\":{ms:.3},\"steps\":{},\"gflop_per_step\":{gflop:.4},\"params\":{params}}}",
                model.name, model.steps
            )
            .map_err(candle_core::Error::wrap)?;
        }
    }
    Ok(())
}
