//! One 3x3 convolution at batch 128 on 16x28x28 (stride 1) and 16x28x28 -> 32x14x14
//! (stride 2): forward + input and weight gradients, Candle's `conv2d` against
//! our `kernels::conv2d`, side by side in one run, median of repeats. One thread:
//! `RAYON_NUM_THREADS=1 cargo bench -p models --bench conv`. `degrade` keeps freed memory
//! mapped (`runner::allocator`); for the same conditions here, set
//! `MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296` (without them, page
//! faults on every fresh output take about half of our convolution's time).

use candle_core::{Device, Result, Tensor, Var};
use kernels::conv2d::conv2d;
use std::time::Instant;

fn median_ms(mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?;
    let mut times = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn main() -> Result<()> {
    let dev = Device::Cpu;
    println!(
        "conv 3x3, batch 128, forward + backward, {} thread(s), median of 7",
        candle_core::utils::get_num_threads()
    );
    println!(
        "{:<28} {:>12} {:>12} {:>8}",
        "shape", "candle ms", "ours ms", "ratio"
    );
    for (c, o, side, stride) in [(16, 16, 28, 1), (16, 32, 28, 2), (32, 32, 14, 1)] {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (128, c, side, side), &dev)?)?;
        let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (o, c, 3, 3), &dev)?)?;
        let step = |im2col: bool| -> Result<()> {
            let y = if im2col {
                conv2d(x.as_tensor(), w.as_tensor(), 1, stride)?
            } else {
                x.as_tensor().conv2d(w.as_tensor(), 1, stride, 1, 1)?
            };
            let grads = y.sqr()?.sum_all()?.backward()?;
            grads.get(x.as_tensor()).map(|g| g.dims().len());
            Ok(())
        };
        let candle = median_ms(|| step(false))?;
        let ours = median_ms(|| step(true))?;
        println!(
            "{:<28} {candle:>12.1} {ours:>12.1} {:>8.2}",
            format!("{c}x{side}x{side} -> {o}, stride {stride}"),
            ours / candle
        );
    }
    Ok(())
}
