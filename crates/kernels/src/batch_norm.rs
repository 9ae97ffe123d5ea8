//! Batch normalisation in training mode as one op forward and one op backward.
//!
//! Candle's `BatchNorm` builds the normalisation out of about ten broadcast operations
//! (each a pass over the activations and a new allocation) and its backward out of
//! twice that; here the forward is two passes (statistics, then scale and shift) and the
//! backward two (two sums per channel, then the input gradient), with the per-channel
//! gamma/beta gradients falling out of the first. The statistics are the ones Candle
//! computes: mean, then the biased variance around it; the running statistics are
//! updated by the layer (`crate::batch_norm`) from what the forward pass measured.

use super::{assume_init, at_least, contiguous_f32, for_image_chunks, map_image_chunks, uninit};
use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

/// What one training-mode forward pass measured, per channel: kept for its backward pass
/// and for the running statistics.
#[derive(Debug, Clone, Default)]
pub struct BatchStats {
    pub mean: Vec<f32>,
    /// Biased (divided by the element count), as used to normalise.
    pub var: Vec<f32>,
    /// Elements per channel: batch * spatial positions.
    pub count: usize,
    inv_std: Vec<f32>,
    gamma: Vec<f32>,
    /// The shift the pass applied (its scale was gamma * inv_std).
    beta: Vec<f32>,
}

impl BatchStats {
    /// Channel `ch`'s constants for the backward pass; the scale computed as `normalize`
    /// computed it, with the same bits.
    fn channel(&self, ch: usize) -> Channel {
        Channel {
            mean: self.mean[ch],
            inv_std: self.inv_std[ch],
            scale: self.gamma[ch] * self.inv_std[ch],
            shift: self.beta[ch],
        }
    }
}

/// One channel's constants in the backward pass: the forward pass's mean and 1 / std,
/// and the scale and shift it applied (for the ReLU's mask, `through_relu`).
#[derive(Debug, Clone, Copy)]
struct Channel {
    mean: f32,
    inv_std: f32,
    scale: f32,
    shift: f32,
}

/// Batch norm's affine output for one value, before any residual and ReLU. The forward
/// pass computes it, and the backward pass again for the ReLU's mask, with the same bits.
#[inline(always)]
fn normalized(v: f32, mean: f32, scale: f32, shift: f32) -> f32 {
    (v - mean) * scale + shift
}

impl Channel {
    /// `normalized` with this channel's constants.
    #[inline(always)]
    fn normalized(self, v: f32) -> f32 {
        normalized(v, self.mean, self.scale, self.shift)
    }
}

/// Where a forward op leaves what it measured, for its backward pass and its caller.
#[derive(Debug, Clone, Default)]
struct SharedStats(Arc<Mutex<BatchStats>>);

impl SharedStats {
    fn set(&self, stats: BatchStats) -> Result<()> {
        *self.lock()? = stats;
        Ok(())
    }

    fn get(&self) -> Result<BatchStats> {
        Ok(self.lock()?.clone())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, BatchStats>> {
        self.0
            .lock()
            .map_err(|_| candle_core::Error::Msg("batch norm: statistics lock poisoned".into()))
    }
}

/// (batch, channels, spatial...) viewed as (batch, channels, positions).
fn dims(layout: &Layout) -> Result<(usize, usize, usize)> {
    let d = layout.shape().dims();
    if d.len() < 2 {
        candle_core::bail!("batch norm: input of shape {d:?} has no channel dimension")
    }
    Ok((d[0], d[1], d[2..].iter().product()))
}

/// A residual must match the input value for value.
fn same_length(x: &[f32], residual: Option<&[f32]>) -> Result<()> {
    match residual {
        Some(r) if r.len() != x.len() => candle_core::bail!(
            "batch norm: {} values and a residual of {}",
            x.len(),
            r.len()
        ),
        _ => Ok(()),
    }
}

/// A residual must have the input's shape.
fn same_shape(xs: &Tensor, residual: &Tensor) -> Result<()> {
    if residual.shape() != xs.shape() {
        candle_core::bail!(
            "batch norm: input {:?} and residual {:?} differ",
            xs.dims(),
            residual.dims()
        )
    }
    Ok(())
}

/// Per-channel sums of the K values of `f(channel)(x, y, z)` over the images `images`
/// of (images, c, s) tensors `x`, `y` and `z` (pass `x` again where fewer are
/// needed): K * c sums, all channels' first sums, then all channels' second. One read
/// of the tensors gives all K (the backward pass's two sums read x, y and dY once).
/// `f(channel)` is made once per channel slice, so that what it captures per channel (a
/// mean, a scale) is read once, not per value: indexing a per-channel table inside the
/// loop kept it scalar. Each channel of one image is summed in eight f32 lanes (a loop
/// that vectorises), those sums in f64 so that large batches lose nothing. With one
/// value per channel (an MLP's (batch, features)), the loop runs along the rows
/// instead, vectorising across channels.
fn channel_sums<const K: usize, G>(
    (c, s): (usize, usize),
    images: std::ops::Range<usize>,
    [x, y, z]: [&[f32]; 3],
    f: impl Fn(usize) -> G,
) -> Vec<f64>
where
    G: Fn(f32, f32, f32) -> [f32; K],
{
    if s == 1 {
        let mut acc = vec![[0f32; K]; c];
        for b in images {
            let row = b * c..(b + 1) * c;
            let (xr, yr, zr) = (&x[row.clone()], &y[row.clone()], &z[row]);
            for (ch, (((a, &u), &v), &w)) in acc.iter_mut().zip(xr).zip(yr).zip(zr).enumerate() {
                for (a, r) in a.iter_mut().zip(f(ch)(u, v, w)) {
                    *a += r;
                }
            }
        }
        let acc: Vec<[f64; K]> = acc.iter().map(|a| a.map(f64::from)).collect();
        return by_sum(&acc);
    }
    run_sums((c, s), images, [x, y, z], |ch, run| lane_sums(run, f(ch)))
}

/// Per-channel sums over the images of (images, c, s) tensors: `sums(channel, run)`
/// gives the K sums of one image's channel (`run`, its s values in each of x, y and z),
/// and they are added up in f64 in image order; all channels' first sums, then all
/// channels' second.
fn run_sums<const K: usize>(
    (c, s): (usize, usize),
    images: std::ops::Range<usize>,
    [x, y, z]: [&[f32]; 3],
    sums: impl Fn(usize, [&[f32]; 3]) -> [f64; K],
) -> Vec<f64> {
    let mut total = vec![[0f64; K]; c];
    for b in images {
        for (ch, sum) in total.iter_mut().enumerate() {
            let r = (b * c + ch) * s..(b * c + ch + 1) * s;
            let run = [&x[r.clone()], &y[r.clone()], &z[r]];
            for (sum, part) in sum.iter_mut().zip(sums(ch, run)) {
                *sum += part;
            }
        }
    }
    by_sum(&total)
}

/// K sums per channel, laid out all channels' first sums, then all second.
fn by_sum<const K: usize>(sums: &[[f64; K]]) -> Vec<f64> {
    (0..K)
        .flat_map(|k| sums.iter().map(move |v| v[k]))
        .collect()
}

/// Writes `f(consts[channel], x, y, z)` for each value of the given `images` of (batch,
/// c, s) tensors `x`, `y` and `z` (pass `x` again where fewer are needed) into `out`,
/// which holds those images only; `consts` holds each channel's constants. Within a
/// channel the loop runs along its positions with the constants read once; with one
/// value per channel (an MLP's (batch, features)) that loop would be one value long, so
/// it runs along the row instead, across the channels, and vectorises there (the
/// one-value loops took about a third of an MLP's training step).
fn channel_map<K: Copy>(
    (c, s): (usize, usize),
    images: std::ops::Range<usize>,
    out: &mut [MaybeUninit<f32>],
    [x, y, z]: [&[f32]; 3],
    consts: &[K],
    f: impl Fn(K, f32, f32, f32) -> f32,
) {
    // A short table would leave values unwritten: the callers build one per channel.
    assert_eq!(consts.len(), c, "batch norm: a constant per channel");
    let per_image = c * s;
    if per_image == 0 {
        return;
    }
    let first = images.start * per_image;
    for bi in images {
        let at = bi * per_image;
        let o = &mut out[at - first..][..per_image];
        let image = at..at + per_image;
        let (xs, ys, zs) = (&x[image.clone()], &y[image.clone()], &z[image]);
        if s == 1 {
            let values = o.iter_mut().zip(xs).zip(ys).zip(zs);
            for ((((o, &u), &v), &w), &kc) in values.zip(consts) {
                o.write(f(kc, u, v, w));
            }
            continue;
        }
        let runs = o
            .chunks_exact_mut(s)
            .zip(xs.chunks_exact(s))
            .zip(ys.chunks_exact(s))
            .zip(zs.chunks_exact(s));
        for ((((o, xs), ys), zs), &kc) in runs.zip(consts) {
            for (((o, &u), &v), &w) in o.iter_mut().zip(xs).zip(ys).zip(zs) {
                o.write(f(kc, u, v, w));
            }
        }
    }
}

/// The sums of the K values of `f(x, y, z)` over three slices of one length, each in
/// eight f32 lanes.
fn lane_sums<const K: usize>(
    [xs, ys, zs]: [&[f32]; 3],
    f: impl Fn(f32, f32, f32) -> [f32; K],
) -> [f64; K] {
    let mut acc = [[0f32; 8]; K];
    let ((cx, _), (cy, _), (cz, _)) = (
        xs.as_chunks::<8>(),
        ys.as_chunks::<8>(),
        zs.as_chunks::<8>(),
    );
    for ((a8, b8), c8) in cx.iter().zip(cy).zip(cz) {
        for lane in 0..8 {
            let r = f(a8[lane], b8[lane], c8[lane]);
            for (acc, r) in acc.iter_mut().zip(r) {
                acc[lane] += r;
            }
        }
    }
    lanes_and_tail(acc, [xs, ys, zs], f)
}

/// The K sums of `lane_sums` from its eight lanes' sums over the whole chunks of eight:
/// each lane's sums added in lane order, then the values past the last whole chunk,
/// summed in order.
fn lanes_and_tail<const K: usize>(
    acc: [[f32; 8]; K],
    [xs, ys, zs]: [&[f32]; 3],
    f: impl Fn(f32, f32, f32) -> [f32; K],
) -> [f64; K] {
    let (tx, ty, tz) = (
        xs.as_chunks::<8>().1,
        ys.as_chunks::<8>().1,
        zs.as_chunks::<8>().1,
    );
    std::array::from_fn(|k| {
        let tail: f32 = tx
            .iter()
            .zip(ty)
            .zip(tz)
            .map(|((&u, &v), &w)| f(u, v, w)[k])
            .sum();
        (acc[k].iter().sum::<f32>() + tail) as f64
    })
}

/// Batch norm's two backward sums per channel, sum(g) and sum(g * xhat) with xhat =
/// (x - mean) * inv_std and g = `through_relu(y, dY)`: `channel_sums` of
/// `gradient_terms`, with the same bits. The compiler left that function's eight lanes
/// scalar, each sum a chain through the stack (12 % of a conv net's training step on an
/// Intel Xeon); here they are SSE registers, two per sum, and they read x and dY only,
/// the ReLU's mask recomputed from x (`Channel::normalized`): a stream fewer over
/// memory. With one value per channel (an MLP's, all in cache) reading y costs less
/// than recomputing, and `channel_sums` does. Without SSE (off x86_64) it is
/// `channel_sums` itself.
fn gradient_sums<const RELU: bool>(
    (c, s): (usize, usize),
    images: std::ops::Range<usize>,
    [x, y, dy]: [&[f32]; 3],
    stats: &BatchStats,
) -> Vec<f64> {
    let terms = |ch: usize| {
        let channel = stats.channel(ch);
        move |v, u, g| gradient_terms::<RELU>(v, u, g, channel)
    };
    #[cfg(not(target_arch = "x86_64"))]
    return channel_sums((c, s), images, [x, y, dy], terms);
    #[cfg(target_arch = "x86_64")]
    {
        if s == 1 {
            return channel_sums((c, s), images, [x, y, dy], terms);
        }
        run_sums((c, s), images, [x, dy, dy], |ch, run @ [xs, gs, _]| {
            let channel = stats.channel(ch);
            // SAFETY: SSE is part of every x86_64 CPU.
            let acc = unsafe { gradient_lanes::<RELU>([xs, gs], channel) };
            let tail = move |v, g, _| gradient_terms::<RELU>(v, channel.normalized(v), g, channel);
            lanes_and_tail(acc, run, tail)
        })
    }
}

/// One value's two backward terms: g = `through_relu(out, dY)` and g * (x - mean) *
/// inv_std, where `out` is the output y or the normalised x (`Channel::normalized`),
/// positive at the same places.
#[inline(always)]
fn gradient_terms<const RELU: bool>(v: f32, out: f32, g: f32, ch: Channel) -> [f32; 2] {
    let g = through_relu::<RELU>(out, g);
    [g, g * (v - ch.mean) * ch.inv_std]
}

/// The gradient before the ReLU from the output and its gradient dY: dY where the
/// output is positive, else 0 (a NaN gives 0); with no ReLU (`RELU` false), dY itself.
/// The output may be y = max(normalized(x), 0) or normalized(x) recomputed from x
/// (`Channel::normalized`): one is positive exactly where the other is.
#[inline(always)]
fn through_relu<const RELU: bool>(out: f32, dy: f32) -> f32 {
    if !RELU || out > 0.0 {
        dy
    } else {
        0.0
    }
}

/// `lane_sums`' eight lanes of `gradient_terms` over the whole chunks of eight, in SSE
/// registers: lanes 0-3 and 4-7 of each sum, every lane the same chain of additions.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse")]
fn gradient_lanes<const RELU: bool>([xs, gs]: [&[f32]; 2], ch: Channel) -> [[f32; 8]; 2] {
    use std::arch::x86_64::*;
    let ((cx, _), (cg, _)) = (xs.as_chunks::<8>(), gs.as_chunks::<8>());
    let [mean, inv, scale, shift] =
        [ch.mean, ch.inv_std, ch.scale, ch.shift].map(|v| _mm_set1_ps(v));
    let zero = _mm_setzero_ps();
    let mut sum_g = [zero; 2];
    let mut sum_gx = [zero; 2];
    for (a8, g8) in cx.iter().zip(cg) {
        for half in 0..2 {
            // SAFETY: each chunk holds 8 values, so 4 * half + 0..4 are within it.
            let (v, g) = unsafe {
                (
                    _mm_loadu_ps(a8.as_ptr().add(4 * half)),
                    _mm_loadu_ps(g8.as_ptr().add(4 * half)),
                )
            };
            let centred = _mm_sub_ps(v, mean);
            // `normalized(x) > 0.0` as a mask (false for NaN), kept or zeroed as
            // `through_relu`: a product, then a sum, as `normalized` (not fused).
            let g = if RELU {
                let out = _mm_add_ps(_mm_mul_ps(centred, scale), shift);
                _mm_and_ps(_mm_cmpgt_ps(out, zero), g)
            } else {
                g
            };
            let gx = _mm_mul_ps(_mm_mul_ps(g, centred), inv);
            sum_g[half] = _mm_add_ps(sum_g[half], g);
            sum_gx[half] = _mm_add_ps(sum_gx[half], gx);
        }
    }
    let mut acc = [[0f32; 8]; 2];
    for (lanes, sums) in acc.iter_mut().zip([sum_g, sum_gx]) {
        for (half, v) in sums.into_iter().enumerate() {
            // SAFETY: 4 * half + 0..4 are within the eight lanes.
            unsafe { _mm_storeu_ps(lanes.as_mut_ptr().add(4 * half), v) };
        }
    }
    acc
}

/// Adds up the per-thread partial sums.
fn total(parts: Vec<Vec<f64>>, c: usize) -> Vec<f64> {
    parts.into_iter().fold(vec![0f64; c], |mut acc, part| {
        acc.iter_mut().zip(part).for_each(|(a, p)| *a += p);
        acc
    })
}

/// Training-mode batch normalisation of `x` ((batch, channels, positions) = `dims`):
/// per channel, (x - mean) / sqrt(var + eps) * gamma + beta, plus `residual` where
/// given, then max(., 0) if `relu`; and what the pass measured.
fn normalize(
    x: &[f32],
    dims: (usize, usize, usize),
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    relu: bool,
    residual: Option<&[f32]>,
) -> Result<(Vec<f32>, BatchStats)> {
    let (b, c, s) = dims;
    if gamma.len() != c || beta.len() != c {
        candle_core::bail!("batch norm: {c} channels but {} scales", gamma.len())
    }
    same_length(x, residual)?;
    let count = b * s;
    if count == 0 {
        candle_core::bail!("batch norm: empty batch")
    }
    let n = count as f64;
    // Pass 1: the mean; then the variance around it (two passes, as Candle does:
    // the one-pass formula loses digits when the mean is large).
    let sums = map_image_chunks(b, x.len(), |images| {
        channel_sums((c, s), images, [x, x, x], |_| |v, _, _| [v])
    });
    let mean: Vec<f64> = total(sums, c).iter().map(|v| v / n).collect();
    let mean32: Vec<f32> = mean.iter().map(|&v| v as f32).collect();
    let sq = map_image_chunks(b, x.len(), |images| {
        channel_sums((c, s), images, [x, x, x], |ch| {
            let m = mean32[ch];
            move |v, _, _| [(v - m) * (v - m)]
        })
    });
    let var: Vec<f64> = total(sq, c).iter().map(|v| v / n).collect();
    let inv_std: Vec<f32> = var
        .iter()
        .map(|v| (1.0 / (v + eps).sqrt()) as f32)
        .collect();
    // Pass 2: y = (x - mean) * scale + beta per channel (then max(y, 0)).
    let scale: Vec<f32> = (0..c).map(|ch| gamma[ch] * inv_std[ch]).collect();
    let y = scale_shift(x, dims, &mean32, &scale, beta, relu, residual);
    let stats = BatchStats {
        mean: mean32,
        var: var.iter().map(|&v| v as f32).collect(),
        count,
        inv_std,
        gamma: gamma.to_vec(),
        beta: beta.to_vec(),
    };
    Ok((y, stats))
}

/// Per channel, (x - mean) * scale + beta, plus `residual` where given, then
/// max(., 0) if `relu`: the second pass of training-mode batch norm and the whole of
/// evaluation-mode batch norm. Not x * scale + (beta - mean * scale): when the mean is
/// large against the spread, that cancels digits in every output (a deep plain MLP's
/// pre-BN values are such), and the noise moved its training away from Candle's.
fn scale_shift(
    x: &[f32],
    (b, c, s): (usize, usize, usize),
    mean: &[f32],
    scale: &[f32],
    beta: &[f32],
    relu: bool,
    residual: Option<&[f32]>,
) -> Vec<f32> {
    let per_image = c * s;
    let floor = if relu { 0.0 } else { f32::NEG_INFINITY };
    let consts: Vec<[f32; 3]> = (0..c).map(|ch| [mean[ch], scale[ch], beta[ch]]).collect();
    let mut y = uninit(x.len());
    for_image_chunks(
        b,
        &mut y,
        per_image,
        || (),
        |_, images, ys| match residual {
            Some(r) => channel_map(
                (c, s),
                images,
                ys,
                [x, r, x],
                &consts,
                |[m, sc, sh], v, r, _| at_least(normalized(v, m, sc, sh) + r, floor),
            ),
            None => channel_map(
                (c, s),
                images,
                ys,
                [x, x, x],
                &consts,
                |[m, sc, sh], v, _, _| at_least(normalized(v, m, sc, sh), floor),
            ),
        },
    );
    // SAFETY: the ranges cover every image, and every value of an image is written
    // (the callers checked that x, the residual and the per-channel tables fit dims).
    unsafe { assume_init(y) }
}

/// Training-mode BN of (x, gamma, beta), followed by a ReLU where `relu` is set;
/// `stats` receives what the pass measured.
///
/// The ReLU is part of the op, not an op of its own, because every Candle op's
/// gradient costs a zeroed buffer and an addition when the backward pass collects it,
/// besides the ReLU's own pass each way (5 % of a conv net's training step in all).
struct BatchNormTrain {
    eps: f64,
    relu: bool,
    stats: SharedStats,
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(xs, xl, "batch norm")?;
        let gamma = contiguous_f32(gs, gl, "batch norm")?;
        let beta = contiguous_f32(bs, bl, "batch norm")?;
        let (y, stats) = normalize(x, dims(xl)?, gamma, beta, self.eps, self.relu, None)?;
        self.stats.set(stats)?;
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stats = self.stats.get()?;
        let backward = BatchNormBackward {
            stats,
            relu: self.relu,
        };
        let all = x.apply_op3_no_bwd(res, &grad.contiguous()?, &backward)?;
        let (n, c) = (x.elem_count(), gamma.elem_count());
        let dx = all.narrow(0, 0, n)?.reshape(x.shape())?;
        let dgamma = super::apart(&all.narrow(0, n, c)?)?;
        let dbeta = super::apart(&all.narrow(0, n + c, c)?)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// Training-mode BN of (x, [gamma, beta]) plus a residual r, then a ReLU: the end of a
/// residual block, `relu(bn(x) + r)`, in one op (an addition and a ReLU of their own
/// were each a pass over the activations and a gradient for Candle to zero and add).
/// gamma and beta come as one tensor because a custom op has at most three inputs.
struct BatchNormAddRelu {
    eps: f64,
    stats: SharedStats,
}

impl CustomOp3 for BatchNormAddRelu {
    fn name(&self) -> &'static str {
        "batch-norm-add-relu-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(xs, xl, "batch norm")?;
        let params = contiguous_f32(ps, pl, "batch norm")?;
        let r = contiguous_f32(rs, rl, "batch norm")?;
        let (gamma, beta) = params.split_at(params.len() / 2);
        let (y, stats) = normalize(x, dims(xl)?, gamma, beta, self.eps, true, Some(r))?;
        self.stats.set(stats)?;
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        r: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let stats = self.stats.get()?;
        // Through the ReLU: the residual's gradient, and the normalisation's.
        let g = super::relu::masked(res, grad)?;
        let backward = BatchNormBackward { stats, relu: false };
        let all = x.apply_op3_no_bwd(res, &g, &backward)?;
        let (n, c2) = (x.elem_count(), params.elem_count());
        let dx = all.narrow(0, 0, n)?.reshape(x.shape())?;
        // [dgamma, dbeta], in the order of `params`.
        let dparams = super::apart(&all.narrow(0, n, c2)?)?;
        Ok((Some(dx), Some(dparams), Some(g.reshape(r.shape())?)))
    }
}

/// (x, y, dY) -> [dx, dgamma, dbeta] flattened into one tensor; where `relu` is set,
/// the ReLU's mask comes from y, the forward pass's output, or from x and the forward
/// pass's constants (`through_relu`).
struct BatchNormBackward {
    stats: BatchStats,
    relu: bool,
}

impl CustomOp3 for BatchNormBackward {
    fn name(&self) -> &'static str {
        "batch-norm-train-backward"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, c, s) = dims(xl)?;
        let x = contiguous_f32(xs, xl, "batch norm backward")?;
        let y = contiguous_f32(ys, yl, "batch norm backward")?;
        let dy = contiguous_f32(gs, gl, "batch norm backward")?;
        let st = &self.stats;
        let tables = [&st.mean, &st.inv_std, &st.gamma, &st.beta];
        if dy.len() != x.len() || y.len() != x.len() || tables.iter().any(|t| t.len() != c) {
            candle_core::bail!("batch norm backward: shapes differ from the forward pass")
        }
        // Through the ReLU first: its gradient is dY where the output was positive, as
        // in `super::relu`. Applied as the two passes read dY, not as a pass of its own
        // (that pass and its buffer were 2 % of a plain net's training step).
        let mut out = uninit(x.len() + 2 * c);
        let (dx, params) = out.split_at_mut(x.len());
        let (sum_dy, sum_dy_xhat) = if self.relu {
            input_gradient::<true>(st, (b, c, s), [x, y, dy], dx)
        } else {
            input_gradient::<false>(st, (b, c, s), [x, dy, dy], dx)
        };
        for ch in 0..c {
            params[ch].write(sum_dy_xhat[ch] as f32);
            params[c + ch].write(sum_dy[ch] as f32);
        }
        // SAFETY: the image ranges cover dx, every value written; both parameter
        // gradients are written for every channel just above.
        let out = unsafe { assume_init(out) };
        Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * c)))
    }
}

/// Batch norm's input gradient from x, the output y and its gradient dY (each
/// (b, c, s)), written into `dx`, with g = `through_relu(y, dY)` the gradient before the
/// ReLU: dx = gamma * inv_std * (g - mean(g) - xhat * mean(g * xhat)). Returns sum(g)
/// and sum(g * xhat) per channel, the parameters' gradients. With more than one value
/// per channel the mask is recomputed from x (`gradient_sums`), and y is not read.
fn input_gradient<const RELU: bool>(
    st: &BatchStats,
    (b, c, s): (usize, usize, usize),
    [x, y, dy]: [&[f32]; 3],
    dx: &mut [MaybeUninit<f32>],
) -> (Vec<f64>, Vec<f64>) {
    // Pass 1: sum(g) and sum(g * xhat) per channel, in one read.
    let parts = map_image_chunks(b, x.len(), |images| {
        gradient_sums::<RELU>((c, s), images, [x, y, dy], st)
    });
    let mut sums = total(parts, 2 * c);
    let sum_dy_xhat = sums.split_off(c);
    let sum_dy = sums;
    // Pass 2: dx per value (`dx_value`), the ReLU's mask from y or recomputed from x as
    // in pass 1.
    let consts = dx_constants(st, &sum_dy, &sum_dy_xhat);
    for_image_chunks(
        b,
        dx,
        c * s,
        || (),
        |_, images, dxs| {
            if s == 1 {
                channel_map((c, s), images, dxs, [x, y, dy], &consts, dx_value::<RELU>)
            } else {
                let from_x =
                    |d: DxConstants, v, g, _| dx_value::<RELU>(d, v, d.ch.normalized(v), g);
                channel_map((c, s), images, dxs, [x, dy, dy], &consts, from_x)
            }
        },
    );
    (sum_dy, sum_dy_xhat)
}

/// One channel's constants in pass 2 of the backward pass: dx = gamma * inv_std * (g -
/// mean(g) - xhat * mean(g * xhat)) written as a * g + k * (x - mean) + off (x - mean
/// first, as in the forward pass: folding the mean into `off` cancels digits), and the
/// forward pass's constants.
#[derive(Debug, Clone, Copy)]
struct DxConstants {
    a: f32,
    k: f32,
    off: f32,
    ch: Channel,
}

/// Each channel's `DxConstants`, from pass 1's sums.
fn dx_constants(st: &BatchStats, sum_dy: &[f64], sum_dy_xhat: &[f64]) -> Vec<DxConstants> {
    let n = st.count as f64;
    (0..st.mean.len())
        .map(|ch| {
            let a = st.gamma[ch] as f64 * st.inv_std[ch] as f64;
            let k = -a * st.inv_std[ch] as f64 * sum_dy_xhat[ch] / n;
            let off = -a * sum_dy[ch] / n;
            DxConstants {
                a: a as f32,
                k: k as f32,
                off: off as f32,
                ch: st.channel(ch),
            }
        })
        .collect()
}

/// One value of the input gradient: a * g + k * (x - mean) + off with g =
/// `through_relu(out, dY)`, `out` the output y or the normalised x.
#[inline(always)]
fn dx_value<const RELU: bool>(d: DxConstants, v: f32, out: f32, g: f32) -> f32 {
    d.a * through_relu::<RELU>(out, g) + d.k * (v - d.ch.mean) + d.off
}

/// Evaluation-mode BN of (x, [gamma, beta, running mean, running var]), plus a
/// residual where given, then a ReLU where `relu` is set: one pass, and no backward.
struct BatchNormEval {
    eps: f64,
    relu: bool,
}

impl BatchNormEval {
    fn run(
        &self,
        x: &[f32],
        xl: &Layout,
        params: &[f32],
        residual: Option<&[f32]>,
    ) -> Result<(CpuStorage, Shape)> {
        let dims = dims(xl)?;
        let c = dims.1;
        if params.len() != 4 * c {
            candle_core::bail!(
                "batch norm: {c} channels but {} parameters (4 per channel)",
                params.len()
            )
        }
        same_length(x, residual)?;
        let (gamma, rest) = params.split_at(c);
        let (beta, rest) = rest.split_at(c);
        let (mean, var) = rest.split_at(c);
        // The scale as Candle's evaluation computes it: 1 / sqrt(var + eps), times gamma.
        let scale: Vec<f32> = gamma
            .iter()
            .zip(var)
            .map(|(&g, &v)| g * (1.0 / (f64::from(v) + self.eps).sqrt()) as f32)
            .collect();
        let y = scale_shift(x, dims, mean, &scale, beta, self.relu, residual);
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }
}

impl CustomOp2 for BatchNormEval {
    fn name(&self) -> &'static str {
        "batch-norm-eval"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(xs, xl, "batch norm")?;
        self.run(x, xl, contiguous_f32(ps, pl, "batch norm")?, None)
    }
}

impl CustomOp3 for BatchNormEval {
    fn name(&self) -> &'static str {
        "batch-norm-add-relu-eval"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
        rs: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(xs, xl, "batch norm")?;
        let r = contiguous_f32(rs, rl, "batch norm")?;
        self.run(x, xl, contiguous_f32(ps, pl, "batch norm")?, Some(r))
    }
}

/// What follows an evaluation-mode batch norm in the same pass.
#[derive(Debug, Clone, Copy)]
pub enum EvalEnd<'a> {
    /// Nothing: the normalised values.
    Linear,
    /// max(., 0).
    Relu,
    /// max(. + residual, 0): the end of a residual block.
    AddRelu(&'a Tensor),
}

/// The running statistics and affine parameters of a batch norm, (channels,) each.
#[derive(Debug, Clone, Copy)]
pub struct EvalParams<'a> {
    pub gamma: &'a Tensor,
    pub beta: &'a Tensor,
    pub running_mean: &'a Tensor,
    pub running_var: &'a Tensor,
    pub eps: f64,
}

/// Evaluation-mode batch normalisation of `xs` (batch, channels, ...) with the running
/// statistics, then `end`, in one pass. CPU and f32 only: the caller falls back to
/// Candle elsewhere.
///
/// The output is not differentiable: it carries no graph back to `xs` or the
/// parameters. Evaluation measures a network; nothing is trained from it, and with the
/// graph every activation of a forward pass stayed alive until its logits were dropped.
/// On 1,000 test images a 56-layer net at width 8 held 4.8 GB that way, and the page
/// faults of growing the heap to that size again for every pass were most of an
/// evaluation's time. With no graph, each block's tensors are freed as the next one
/// is computed.
pub fn batch_norm_eval(xs: &Tensor, p: EvalParams, end: EvalEnd) -> Result<Tensor> {
    let params = Tensor::cat(&[p.gamma, p.beta, p.running_mean, p.running_var], 0)?;
    let xs = xs.contiguous()?;
    let op = BatchNormEval {
        eps: p.eps,
        relu: !matches!(end, EvalEnd::Linear),
    };
    match end {
        EvalEnd::Linear | EvalEnd::Relu => xs.apply_op2_no_bwd(&params, &op),
        EvalEnd::AddRelu(residual) => {
            same_shape(&xs, residual)?;
            xs.apply_op3_no_bwd(&params, &residual.contiguous()?, &op)
        }
    }
}

/// Training-mode batch normalisation of `xs` (batch, channels, ...) with scale `gamma`
/// and shift `beta` (channels,), then max(., 0) if `relu`: the output, and what the pass
/// measured (for the running statistics). CPU and f32 only: the caller falls back to Candle elsewhere.
pub fn batch_norm_train(
    xs: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
    relu: bool,
) -> Result<(Tensor, BatchStats)> {
    let stats = SharedStats::default();
    let op = BatchNormTrain {
        eps,
        relu,
        stats: stats.clone(),
    };
    let ys = xs.contiguous()?.apply_op3_arc(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        Arc::new(Box::new(op)),
    )?;
    let measured = stats.get()?;
    Ok((ys, measured))
}

/// Training-mode `relu(batch_norm(xs) + residual)`: the output, and what the pass
/// measured. CPU and f32 only: the caller falls back to Candle elsewhere.
pub fn batch_norm_add_relu_train(
    xs: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    residual: &Tensor,
    eps: f64,
) -> Result<(Tensor, BatchStats)> {
    same_shape(xs, residual)?;
    let stats = SharedStats::default();
    let op = BatchNormAddRelu {
        eps,
        stats: stats.clone(),
    };
    let params = Tensor::cat(&[gamma, beta], 0)?;
    let ys =
        xs.contiguous()?
            .apply_op3_arc(&params, &residual.contiguous()?, Arc::new(Box::new(op)))?;
    let measured = stats.get()?;
    Ok((ys, measured))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{assert_grads_match, normal, normal_var, rel_err, storage_len};
    use candle_core::{DType, Device, Var};
    use candle_nn::ModuleT;

    /// Against Candle's own BatchNorm in training mode, alone and followed by Candle's
    /// ReLU: outputs, the gradients of the input, gamma and beta, and the batch
    /// statistics it folds into its running ones.
    #[test]
    fn matches_candles_batch_norm_and_its_gradients() {
        let dev = Device::Cpu;
        let shapes = [
            vec![8, 5],
            vec![4, 3, 6, 6],
            vec![3, 16, 5, 5],
            vec![2, 64, 3, 3],
        ];
        for (seed, (dims, relu)) in (0..).zip(shapes.iter().flat_map(|d| [(d, false), (d, true)])) {
            let c = dims[1];
            // An offset mean checks that the variance is taken around it.
            let x = normal_var(dims, 3.0, 2.0, 3 * seed);
            let gamma = normal_var(&[c], 1.0, 0.5, 3 * seed + 1);
            let beta = normal_var(&[c], 0.0, 0.5, 3 * seed + 2);
            let (ours, stats) = batch_norm_train(
                x.as_tensor(),
                gamma.as_tensor(),
                beta.as_tensor(),
                1e-5,
                relu,
            )
            .unwrap();
            let rm = Var::zeros(c, DType::F32, &dev).unwrap();
            let rv = Var::ones(c, DType::F32, &dev).unwrap();
            let bn = candle_nn::BatchNorm::new(
                c,
                rm.as_tensor().clone(),
                rv.as_tensor().clone(),
                gamma.as_tensor().clone(),
                beta.as_tensor().clone(),
                1e-5,
            )
            .unwrap();
            let normalized = bn.forward_t(x.as_tensor(), true).unwrap();
            let theirs = if relu {
                normalized.relu().unwrap()
            } else {
                normalized.clone()
            };
            let case = format!("{dims:?}, relu {relu}");
            assert!(rel_err(&ours, &theirs) < 1e-4, "{case}: forward");
            assert_grads_match(
                &ours,
                &theirs,
                relu.then_some(&normalized),
                &[(&x, "input"), (&gamma, "gamma"), (&beta, "beta")],
                &case,
            );
            // The batch statistics: Candle's running mean after one step from 0 with
            // momentum 0.1 is 0.1 * mean.
            let mean = Tensor::new(stats.mean.as_slice(), &dev).unwrap();
            let want = (rm.as_tensor() / 0.1).unwrap();
            assert!(rel_err(&mean, &want) < 1e-4, "{case}: mean");
            assert_eq!(stats.count, dims[0] * dims[2..].iter().product::<usize>());
        }
    }

    /// The end of a residual block, relu(bn(x) + r), against Candle's operations:
    /// output, the gradients of x, gamma, beta and the residual, and the statistics.
    #[test]
    fn the_residual_end_matches_candles_operations() {
        let dev = Device::Cpu;
        for (seed, dims) in (0..).zip([vec![8, 5], vec![3, 16, 5, 5], vec![16, 64, 7, 7]]) {
            let c = dims[1];
            let (x, r) = (
                normal_var(&dims, 3.0, 1.0, 4 * seed),
                normal_var(&dims, 0.0, 1.0, 4 * seed + 1),
            );
            let gamma = normal_var(&[c], 1.0, 0.5, 4 * seed + 2);
            let beta = normal_var(&[c], 0.0, 0.5, 4 * seed + 3);
            let (ours, stats) = batch_norm_add_relu_train(
                x.as_tensor(),
                gamma.as_tensor(),
                beta.as_tensor(),
                r.as_tensor(),
                1e-5,
            )
            .unwrap();
            let (plain, plain_stats) = batch_norm_train(
                x.as_tensor(),
                gamma.as_tensor(),
                beta.as_tensor(),
                1e-5,
                false,
            )
            .unwrap();
            let bn = candle_nn::BatchNorm::new(
                c,
                Tensor::zeros(c, DType::F32, &dev).unwrap(),
                Tensor::ones(c, DType::F32, &dev).unwrap(),
                gamma.as_tensor().clone(),
                beta.as_tensor().clone(),
                1e-5,
            )
            .unwrap();
            let sum = (bn.forward_t(x.as_tensor(), true).unwrap() + r.as_tensor()).unwrap();
            let theirs = sum.relu().unwrap();
            let case = format!("{dims:?}");
            assert!(rel_err(&ours, &theirs) < 1e-4, "{case}: forward");
            let want = (plain + r.as_tensor()).unwrap().relu().unwrap();
            assert!(rel_err(&ours, &want) < 1e-6, "{case}: forward against ours");
            assert_eq!(stats.mean, plain_stats.mean, "{case}: statistics");
            assert_grads_match(
                &ours,
                &theirs,
                Some(&sum),
                &[
                    (&x, "input"),
                    (&gamma, "gamma"),
                    (&beta, "beta"),
                    (&r, "residual"),
                ],
                &case,
            );
        }
        let dev = Device::Cpu;
        let (x, g) = (
            Tensor::zeros((2, 3, 4), DType::F32, &dev).unwrap(),
            Tensor::ones(3, DType::F32, &dev).unwrap(),
        );
        let short = Tensor::zeros((2, 3, 3), DType::F32, &dev).unwrap();
        assert!(batch_norm_add_relu_train(&x, &g, &g, &short, 1e-5).is_err());
    }

    /// The backward pass's sums in SSE registers, the ReLU's mask recomputed from x, give
    /// the bits of the generic `channel_sums` over `gradient_terms` with the mask read
    /// from the output y = max(normalized(x), 0), with and without the ReLU, for channels
    /// of every length from 1 to 19 and the nets' 49 and 784 (whole chunks of eight and a
    /// tail), over a range of images, with zeros of both signs, values at the mean (a
    /// normalised output of exactly zero), negative and zero scales, infinities and NaNs
    /// among the values.
    #[test]
    fn the_gradient_sums_are_the_generic_sums_bit_for_bit() {
        let specials = [0.0, -0.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1.5];
        let (b, c) = (3, 4);
        let mean: Vec<f32> = (0..c).map(|ch| 0.25 * ch as f32 - 0.3).collect();
        let stats = BatchStats {
            mean: mean.clone(),
            inv_std: (0..c).map(|ch| 1.0 + 0.5 * ch as f32).collect(),
            // Scales gamma * inv_std of 1.5, -0.75, 0 and 2.
            gamma: vec![1.5, -0.5, 0.0, 0.8],
            beta: vec![0.0, 0.25, -0.1, -0.0],
            ..BatchStats::default()
        };
        for s in (1..20).chain([49, 784]) {
            let n = b * c * s;
            let draw = |seed: u64| -> Vec<f32> {
                let values = normal(&[n], 0.1, 1.0, seed)
                    .to_vec1::<f32>()
                    .expect("values");
                // One value in eleven special, one in thirteen the channel's mean, at
                // places that differ between x and dY.
                (0..n)
                    .map(|i| match ((i as u64 * 7 + seed) % 11, i % 13) {
                        (0, _) => specials[(i + seed as usize) % specials.len()],
                        (_, 5) => mean[(i / s) % c],
                        _ => values[i],
                    })
                    .collect()
            };
            let (x, dy) = (draw(s as u64), draw(200 + s as u64));
            // The forward pass's output, as `scale_shift` writes it.
            let y: Vec<f32> = (0..n)
                .map(|i| at_least(stats.channel((i / s) % c).normalized(x[i]), 0.0))
                .collect();
            let generic = |relu: bool| {
                channel_sums((c, s), 1..b, [&x, &y, &dy], |ch| {
                    let channel = stats.channel(ch);
                    move |v, u, g| match relu {
                        true => gradient_terms::<true>(v, u, g, channel),
                        false => gradient_terms::<false>(v, u, g, channel),
                    }
                })
            };
            let bits = |sums: Vec<f64>| sums.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            let ours = gradient_sums::<true>((c, s), 1..b, [&x, &y, &dy], &stats);
            assert_eq!(bits(ours), bits(generic(true)), "relu, s {s}");
            let ours = gradient_sums::<false>((c, s), 1..b, [&x, &y, &dy], &stats);
            assert_eq!(bits(ours), bits(generic(false)), "no relu, s {s}");
        }
    }

    /// x with the cases the ReLU's mask must get right, in (3, 6, 10): a channel of one
    /// value throughout (every output exactly the shift), zeros of both signs, and two
    /// channels whose statistics are NaN, from infinities and from a NaN.
    fn mask_cases() -> (Vec<f32>, (usize, usize, usize)) {
        let (b, c, s) = (3, 6, 10);
        let mut x = normal(&[b * c * s], 0.5, 2.0, 11)
            .to_vec1::<f32>()
            .expect("values");
        for (i, v) in x.iter_mut().enumerate() {
            let (ch, at) = ((i / s) % c, i % s);
            *v = match (ch, at) {
                (0, _) => 1.25,
                (1, 3) => -0.0,
                (1, 4) => 0.0,
                (2, 5) => f32::INFINITY,
                (2, 6) => f32::NEG_INFINITY,
                (3, 7) if i / (c * s) == 1 => f32::NAN,
                _ => *v,
            };
        }
        (x, (b, c, s))
    }

    /// Scales negative, zero and positive, shifts of both signs and zero.
    const GAMMA: [f32; 6] = [1.0, -0.75, 0.5, 1.0, 0.0, 2.0];
    const BETA: [f32; 6] = [0.0, 0.3, -0.2, 0.1, -0.0, 0.5];

    /// The backward pass's ReLU mask, recomputed from x and the forward pass's constants
    /// (`Channel::normalized`), is exactly where the forward pass's output is positive,
    /// on `mask_cases`.
    #[test]
    fn the_relu_mask_from_the_input_is_where_the_output_was_positive() {
        let (x, (b, c, s)) = mask_cases();
        let (y, stats) =
            normalize(&x, (b, c, s), &GAMMA, &BETA, 1e-5, true, None).expect("normalised");
        for (i, (&v, &out)) in x.iter().zip(&y).enumerate() {
            let ch = stats.channel((i / s) % c);
            let want = if out > 0.0 { 1.0 } else { 0.0 };
            let got = through_relu::<true>(ch.normalized(v), 1.0);
            assert_eq!(got, want, "value {i}: x {v}, y {out}");
        }
    }

    /// The input gradient with the mask recomputed from x (more than one value per
    /// channel) has the bits of the same formula with the mask read from the forward
    /// pass's output y, on `mask_cases`.
    #[test]
    fn the_input_gradient_from_x_is_the_one_from_the_output_bit_for_bit() {
        let (x, (b, c, s)) = mask_cases();
        let (y, stats) =
            normalize(&x, (b, c, s), &GAMMA, &BETA, 1e-5, true, None).expect("normalised");
        let dy = normal(&[b * c * s], 0.0, 1.0, 12)
            .to_vec1::<f32>()
            .expect("values");
        let mut dx = uninit(x.len());
        let (sum_dy, sum_dy_xhat) =
            input_gradient::<true>(&stats, (b, c, s), [&x, &y, &dy], &mut dx);
        // SAFETY: `input_gradient` writes every value of dx.
        let dx = unsafe { assume_init(dx) };
        let consts = dx_constants(&stats, &sum_dy, &sum_dy_xhat);
        for (i, &got) in dx.iter().enumerate() {
            let want = dx_value::<true>(consts[(i / s) % c], x[i], y[i], dy[i]);
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "value {i}: {got} against {want}"
            );
        }
    }

    /// A mean far from zero against the spread (as a deep plain MLP's pre-BN values have)
    /// costs no digits, forward or backward: values 4096 + d with exact sums, against the
    /// definition in f64. Folding the mean into a shift (x * scale + (beta - mean *
    /// scale)) was off by 2e-4 here.
    #[test]
    fn a_large_mean_costs_no_digits() {
        let dev = Device::Cpu;
        let (b, c) = (8usize, 2usize);
        let d = |i: usize| (i as f64 - 3.5) * 0.5 * (1.0 + (i % c) as f64);
        let xs: Vec<f32> = (0..b * c)
            .map(|i| (4096.0 + d(i / c + i % c)) as f32)
            .collect();
        let dys: Vec<f64> = (0..b * c).map(|i| (i as f64 * 0.37).sin()).collect();
        let (gamma, beta) = ([1.3f32, 0.7], [0.2f32, -0.4]);
        let x = Var::from_tensor(&Tensor::from_vec(xs.clone(), (b, c), &dev).unwrap()).unwrap();
        let g = Tensor::new(&gamma, &dev).unwrap();
        let bt = Tensor::new(&beta, &dev).unwrap();
        let (y, _) = batch_norm_train(x.as_tensor(), &g, &bt, 1e-5, false).unwrap();
        let dy: Vec<f32> = dys.iter().map(|&v| v as f32).collect();
        let dy_t = Tensor::from_vec(dy, (b, c), &dev).unwrap();
        let grads = (&y * &dy_t).unwrap().sum_all().unwrap().backward().unwrap();
        let (y, dx) = (
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            grads
                .get(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
        );
        for ch in 0..c {
            let col = |v: &[f64]| (0..b).map(|i| v[i * c + ch]).collect::<Vec<f64>>();
            let xc = col(&xs.iter().map(|&v| v as f64).collect::<Vec<_>>());
            let dyc = col(&dys);
            let n = b as f64;
            let mean = xc.iter().sum::<f64>() / n;
            let var = xc.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
            let inv_std = 1.0 / (var + 1e-5).sqrt();
            let xhat: Vec<f64> = xc.iter().map(|v| (v - mean) * inv_std).collect();
            let mean_dy = dyc.iter().sum::<f64>() / n;
            let mean_dy_xhat = dyc.iter().zip(&xhat).map(|(g, h)| g * h).sum::<f64>() / n;
            for i in 0..b {
                let want_y = xhat[i] * gamma[ch] as f64 + beta[ch] as f64;
                let want_dx =
                    gamma[ch] as f64 * inv_std * (dyc[i] - mean_dy - xhat[i] * mean_dy_xhat);
                let (got_y, got_dx) = (y[i * c + ch] as f64, dx[i * c + ch] as f64);
                assert!(
                    (got_y - want_y).abs() < 1e-5,
                    "y[{i}, {ch}] = {got_y}, want {want_y}"
                );
                assert!(
                    (got_dx - want_dx).abs() < 1e-5,
                    "dx[{i}, {ch}] = {got_dx}, want {want_dx}"
                );
            }
        }
    }

    /// gamma's and beta's gradients are copied out of the backward op's output, so they
    /// do not keep the input's gradient (activation-sized) alive until the optimiser
    /// step; the residual end's [gamma, beta] likewise.
    #[test]
    fn the_parameter_gradients_hold_only_themselves() {
        let x = normal_var(&[4, 8, 5, 5], 0.0, 1.0, 1);
        let r = normal(&[4, 8, 5, 5], 0.0, 1.0, 2);
        let gamma = normal_var(&[8], 1.0, 0.5, 3);
        let beta = normal_var(&[8], 0.0, 0.5, 4);
        let (plain, _) = batch_norm_train(
            x.as_tensor(),
            gamma.as_tensor(),
            beta.as_tensor(),
            1e-5,
            true,
        )
        .unwrap();
        let (end, _) =
            batch_norm_add_relu_train(x.as_tensor(), gamma.as_tensor(), beta.as_tensor(), &r, 1e-5)
                .unwrap();
        for (y, case) in [(plain, "batch norm"), (end, "the residual end")] {
            let grads = (y * &r).unwrap().sum_all().unwrap().backward().unwrap();
            for (v, what) in [(&gamma, "gamma"), (&beta, "beta")] {
                let held = storage_len(grads.get(v).unwrap());
                assert!(held <= 16, "{case}: {what}'s gradient holds {held} values");
            }
        }
    }

    #[test]
    fn an_input_without_channels_is_an_error() {
        let dev = Device::Cpu;
        let x = Tensor::zeros(4, DType::F32, &dev).unwrap();
        let g = Tensor::ones(4, DType::F32, &dev).unwrap();
        assert!(batch_norm_train(&x, &g, &g, 1e-5, false).is_err());
    }

    /// Evaluation mode against Candle's `BatchNorm` with the same running statistics,
    /// alone, with its ReLU, and as a residual block's end; an MLP's (batch, features)
    /// and conv shapes; a NaN input stays NaN. The output is a graph leaf even though
    /// every input is a variable, which is what frees a forward pass's activations.
    #[test]
    fn evaluation_matches_candles_and_builds_no_graph() {
        for (seed, dims) in (0..).zip([vec![8, 5], vec![3, 16, 5, 5], vec![16, 64, 7, 7]]) {
            let c = dims[1];
            let s = 6 * seed;
            let (x, r) = (
                normal_var(&dims, 3.0, 2.0, s),
                normal(&dims, 0.0, 1.0, s + 1),
            );
            let gamma = normal_var(&[c], 1.0, 0.5, s + 2);
            let beta = normal_var(&[c], 0.0, 0.5, s + 3);
            let mean = normal(&[c], 3.0, 1.0, s + 4);
            let var = (normal(&[c], 0.0, 1.0, s + 5).sqr().unwrap() + 0.1).unwrap();
            let bn = candle_nn::BatchNorm::new(
                c,
                mean.clone(),
                var.clone(),
                gamma.as_tensor().clone(),
                beta.as_tensor().clone(),
                1e-5,
            )
            .unwrap();
            let theirs = bn.forward_t(x.as_tensor(), false).unwrap();
            let params = EvalParams {
                gamma: gamma.as_tensor(),
                beta: beta.as_tensor(),
                running_mean: &mean,
                running_var: &var,
                eps: 1e-5,
            };
            let cases = [
                (EvalEnd::Linear, theirs.clone()),
                (EvalEnd::Relu, theirs.relu().unwrap()),
                (
                    EvalEnd::AddRelu(&r),
                    (&theirs + &r).unwrap().relu().unwrap(),
                ),
            ];
            for (end, want) in cases {
                let ours = batch_norm_eval(x.as_tensor(), params, end).unwrap();
                assert!(rel_err(&ours, &want) < 1e-5, "{dims:?} {end:?}");
                assert!(!ours.track_op(), "{dims:?} {end:?}: a graph");
            }
        }
        let dev = Device::Cpu;
        let one = Tensor::ones(2, DType::F32, &dev).unwrap();
        let params = EvalParams {
            gamma: &one,
            beta: &one,
            running_mean: &one,
            running_var: &one,
            eps: 1e-5,
        };
        let x = Tensor::new(&[[f32::NAN, 1.0]], &dev).unwrap();
        let y = batch_norm_eval(&x, params, EvalEnd::Relu).unwrap();
        assert!(y.to_vec2::<f32>().unwrap()[0][0].is_nan());
        let wide = Tensor::ones((1, 3), DType::F32, &dev).unwrap();
        assert!(batch_norm_eval(&wide, params, EvalEnd::Linear).is_err());
        assert!(batch_norm_eval(&x, params, EvalEnd::AddRelu(&wide)).is_err());
    }
}
