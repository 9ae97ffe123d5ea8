#!/usr/bin/env python3
"""PyTorch reference for the Candle models of this workspace.

Why it exists: "is Candle slow here, or is this just what the model costs on this CPU?"
and "do our deep plain nets train worse because of a bug in our code, or because that is
the degradation problem?" both need the same networks in a framework everyone trusts.
This file rebuilds our architectures in PyTorch, computation for computation (parameter
names and random numbers differ; the arithmetic does not), and

* `speed` times one training step exactly as `crates/runner/benches/train_step.rs` does
  (batch 128 of random 1x28x28 input, forward + cross-entropy + backward + SGD update,
  median after warm-up), appending JSON lines that `bench/compare.py` joins with
  Candle's;
* `train` trains the runs of one of our experiment YAML files the way
  `crates/runner/src/train.rs` does (same data, normalisation, batch order rules,
  warm-up, train-error definition), with the learning-rate schedule taken from
  PyTorch's own schedulers rather than from our formula (see below), and reports the
  final epoch's train and test error, to compare with our runs within the seed spread.

What is mirrored from the Rust sources (crates/models, crates/runner):

* Weighted layer = Linear or 3x3 Conv without bias, then BatchNorm (eps 1e-5, momentum
  0.1, running variance unbiased as in both frameworks); the ReLU comes after the
  residual addition. He-normal weights (std sqrt(2 / fan_in)), classifier LeCun-normal
  (std sqrt(1 / features)) with zero bias. `zero_init_residual` starts each residual
  block's second BN gamma at 0 (plain nets ignore it).
* MLP: depth = 2 + 2 * blocks: input layer + ReLU, blocks relu(L2(relu(L1 x)) [+ x]),
  linear classifier.
* CIFAR-style net: depth = 6n + 2: 3x3 stem, three stages of n basic blocks on
  w / 2w / 4w filters (stride 2 in the first conv of stages 2 and 3), global average
  pool, classifier. Shortcut A: x[:, :, ::2, ::2] plus zero channels, half before and
  half after; shortcut B: 1x1 conv (stride 2) + BN.
* SGD: torch.optim.SGD with momentum and weight decay on every trainable parameter
  (weights, BN gamma and beta, classifier bias): our `Sgd` gets `params::trainable`,
  which drops only the BN running statistics. PyTorch's semantics are what sgd.rs copies.

What is not mirrored but taken from PyTorch, so that a mistake in our formula
(run_config.rs lr_at) shows up as a difference instead of being copied:

* Learning-rate schedule: `schedule: {step: {milestones, gamma}}` is
  torch.optim.lr_scheduler.MultiStepLR on the optimiser, read with get_last_lr(). An
  epoch-length run steps it once per epoch, after that epoch's batches: with milestones
  [m], epochs 1..m (1-based) train at lr and epoch m + 1 onward at lr * gamma. An
  iteration-length run (`train.iterations`) steps it once per iteration: iterations
  0..m-1 (0-based) at lr, iteration m onward at lr * gamma. `cosine` is
  CosineAnnealingLR from lr to 0 over all iterations, stepped every iteration;
  `constant` keeps lr. During warm-up the optimiser gets the warm-up lr, while the
  scheduler is stepped as usual underneath (its lr depends on the iteration or epoch
  count only, not on the warm-up).

Install (a separate venv: the Rust build needs none of this):

    python3 -m venv .venv-torch && .venv-torch/bin/pip install -r bench/requirements.txt

(the default `torch` wheel on Linux is the CUDA build, some GB; the CPU-only wheel from
https://download.pytorch.org/whl/cpu is enough for everything here.)

Usage:

    .venv-torch/bin/python bench/torch_reference.py speed --threads 1 --out bench/torch.jsonl
    .venv-torch/bin/python bench/torch_reference.py speed --threads 2 \
        --models mlp-plain-d64-w64,cifar-plain-d20-w16 --steps 5 --warmup 2
    .venv-torch/bin/python bench/torch_reference.py train experiments/fashion-mlp.yaml \
        --threads 1 --runs plain-4,residual-16 --out bench/torch-train.jsonl
    python3 bench/compare.py candle.jsonl bench/torch.jsonl
"""

import argparse
import gzip
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CLASSES = 10
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
# Our trainer calls a run diverged above this training loss (train.rs DIVERGENCE_LOSS).
DIVERGENCE_LOSS = 1e3
# Test images per evaluation forward pass (train.rs EVAL_CHUNK); BN is in eval mode, so
# the chunk size changes speed only.
EVAL_CHUNK = 1000
# Mini-batches whose mean error ends an error-based warm-up (run_config.rs WARMUP_WINDOW).
WARMUP_WINDOW = 10

# The benchmark's input: Fashion-MNIST-shaped, as train_step.rs.
BENCH_BATCH = 128
BENCH_SHAPE = (1, 28, 28)
BENCH_LR = 0.1
BENCH_MOMENTUM = 0.9
BENCH_WEIGHT_DECAY = 1e-4

DEFAULT_MODELS = ["mlp-plain-d64-w64", "mlp-residual-d64-w64"] + [
    f"cifar-{family}-d{depth}-w{width}"
    for width in (4, 8, 16, 32, 64)
    for family, depth in (("plain", 20), ("plain", 56), ("residual", 56))
]
MODEL_NAME = re.compile(r"^(mlp|cifar)-(plain|residual)-d(\d+)-w(\d+)$")


# ---------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------


def he_normal_(weight: torch.Tensor) -> None:
    """std = sqrt(2 / fan_in), fan_in = in_features or in_channels * k * k (our init)."""
    fan_in = weight[0].numel()
    with torch.no_grad():
        weight.normal_(0.0, math.sqrt(2.0 / fan_in))


def batch_norm(kind, features: int, gamma: float) -> nn.Module:
    """BN with our constants; `gamma` is the initial scale (0 for zero-init residuals)."""
    bn = kind(features, eps=BN_EPS, momentum=BN_MOMENTUM)
    nn.init.constant_(bn.weight, gamma)
    nn.init.zeros_(bn.bias)
    return bn


class DenseLayer(nn.Module):
    """Linear (no bias: BN's beta is the bias) -> BN; the caller applies the ReLU."""

    def __init__(self, inputs: int, outputs: int, gamma: float = 1.0):
        super().__init__()
        self.linear = nn.Linear(inputs, outputs, bias=False)
        he_normal_(self.linear.weight)
        self.bn = batch_norm(nn.BatchNorm1d, outputs, gamma)

    def forward(self, x):
        return self.bn(self.linear(x))


class ConvLayer(nn.Module):
    """k x k conv, "same" padding k // 2, no bias -> BN; the caller applies the ReLU."""

    def __init__(self, inputs: int, outputs: int, kernel: int, stride: int, gamma=1.0):
        super().__init__()
        self.conv = nn.Conv2d(
            inputs, outputs, kernel, stride=stride, padding=kernel // 2, bias=False
        )
        he_normal_(self.conv.weight)
        self.bn = batch_norm(nn.BatchNorm2d, outputs, gamma)

    def forward(self, x):
        return self.bn(self.conv(x))


def classifier(features: int) -> nn.Linear:
    """No ReLU follows it: LeCun-normal weights (std sqrt(1 / features)), zero bias."""
    layer = nn.Linear(features, CLASSES)
    with torch.no_grad():
        layer.weight.normal_(0.0, math.sqrt(1.0 / features))
        layer.bias.zero_()
    return layer


class MlpBlock(nn.Module):
    """relu(L2(relu(L1 x)) + x) if residual, else relu(L2(relu(L1 x)))."""

    def __init__(self, width: int, residual: bool, second_gamma: float):
        super().__init__()
        self.first = DenseLayer(width, width)
        self.second = DenseLayer(width, width, second_gamma)
        self.residual = residual

    def forward(self, x):
        h = self.second(F.relu(self.first(x)))
        return F.relu(h + x) if self.residual else F.relu(h)


class Mlp(nn.Module):
    """mlp.rs: input layer, (depth - 2) / 2 blocks of two layers, linear classifier."""

    def __init__(self, depth, width, inputs, residual, zero_init_residual):
        super().__init__()
        if depth < 4 or depth % 2:
            raise ValueError(f"MLP depth {depth}: depth = 2 + 2 * blocks (4, 6, ...)")
        # Plain nets ignore zero-init (mlp.rs): their second gamma stays 1.
        second_gamma = 0.0 if residual and zero_init_residual else 1.0
        self.input = DenseLayer(inputs, width)
        self.blocks = nn.Sequential(
            *(MlpBlock(width, residual, second_gamma) for _ in range((depth - 2) // 2))
        )
        self.classifier = classifier(width)

    def forward(self, x):
        h = F.relu(self.input(x.flatten(1)))
        return self.classifier(self.blocks(h))


class ShortcutA(nn.Module):
    """Option A: keep every `stride`-th row and column (ceil(side / stride) of them, as
    shortcut.rs), then zero channels, half before and half after the existing ones."""

    def __init__(self, inputs: int, outputs: int, stride: int):
        super().__init__()
        if outputs < inputs:
            raise ValueError(f"option A cannot shrink {inputs} channels to {outputs}")
        extra = outputs - inputs
        self.stride = stride
        self.pad = (0, 0, 0, 0, extra // 2, extra - extra // 2)

    def forward(self, x):
        return F.pad(x[:, :, :: self.stride, :: self.stride], self.pad)


def make_shortcut(option: str, inputs: int, outputs: int, stride: int) -> nn.Module:
    """Identity where the shape is kept, whatever the option (shortcut.rs)."""
    if inputs == outputs and stride == 1:
        return nn.Identity()
    if option == "a":
        return ShortcutA(inputs, outputs, stride)
    if option == "b":
        return ConvLayer(inputs, outputs, 1, stride)
    raise ValueError(f"unknown shortcut option {option!r}")


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, + shortcut (residual nets only), ReLU."""

    def __init__(self, inputs, outputs, stride, shortcut, second_gamma):
        super().__init__()
        self.first = ConvLayer(inputs, outputs, 3, stride)
        self.second = ConvLayer(outputs, outputs, 3, 1, second_gamma)
        # None: the plain twin, no addition at all (not even where shapes agree).
        self.shortcut = (
            None if shortcut is None else make_shortcut(shortcut, inputs, outputs, stride)
        )

    def forward(self, x):
        h = self.second(F.relu(self.first(x)))
        if self.shortcut is not None:
            h = h + self.shortcut(x)
        return F.relu(h)


class CifarNet(nn.Module):
    """cifar_net.rs: 3x3 stem, 3 stages x n blocks on w/2w/4w, GAP, classifier."""

    def __init__(self, depth, width, in_channels, residual, shortcut, zero_init_residual):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CIFAR-style depth {depth}: depth = 6n + 2 (8, 14, 20, ...)")
        n = (depth - 2) // 6
        second_gamma = 0.0 if residual and zero_init_residual else 1.0
        self.stem = ConvLayer(in_channels, width, 3, 1)
        blocks, channels = [], width
        for stage in range(3):
            outputs = width << stage
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(
                    BasicBlock(
                        channels,
                        outputs,
                        stride,
                        (shortcut or "a") if residual else None,
                        second_gamma,
                    )
                )
                channels = outputs
        self.blocks = nn.Sequential(*blocks)
        self.classifier = classifier(channels)

    def forward(self, x):
        h = self.blocks(F.relu(self.stem(x)))
        return self.classifier(h.mean((2, 3)))


def build_model(arch, family, depth, width, shape, shortcut, zero_init_residual):
    """The network our runner's `architecture()` builds for images of `shape` (c, h, w)."""
    residual = {"plain": False, "residual": True}[family]
    if arch == "mlp":
        return Mlp(depth, width, math.prod(shape), residual, zero_init_residual)
    if arch == "cifar":
        return CifarNet(depth, width, shape[0], residual, shortcut, zero_init_residual)
    raise ValueError(f"unknown arch {arch!r} (mlp | cifar)")


def trainable_count(model: nn.Module) -> int:
    """What our params::count reports: weights, BN gamma/beta, biases; no running stats."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def sgd(model, lr, momentum, weight_decay):
    """Our Sgd: PyTorch semantics, decay on every trainable parameter (BN included)."""
    return torch.optim.SGD(
        model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )


def set_threads(threads):
    """Intra-op threads as asked; one inter-op thread (our runner has no op parallelism)."""
    if threads:
        torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # only settable before the first parallel work; harmless if already set


# ---------------------------------------------------------------------------------------
# speed
# ---------------------------------------------------------------------------------------


def parse_model_name(name):
    """`cifar-residual-d56-w16` -> ("cifar", "residual", 56, 16)."""
    m = MODEL_NAME.match(name)
    if not m:
        raise SystemExit(
            f"model {name!r}: expected (mlp|cifar)-(plain|residual)-d<depth>-w<width>"
        )
    return m.group(1), m.group(2), int(m.group(3)), int(m.group(4))


def bench_model(name):
    """The model train_step.rs builds: MLPs zero-init their residuals, conv nets do not;
    residual conv nets use shortcut A."""
    arch, family, depth, width = parse_model_name(name)
    return build_model(
        arch,
        family,
        depth,
        width,
        BENCH_SHAPE,
        shortcut="a" if arch == "cifar" else None,
        zero_init_residual=arch == "mlp",
    )


def default_steps(name):
    """(warm-up, timed) steps: MLP steps take milliseconds, conv steps up to seconds."""
    arch, _, _, width = parse_model_name(name)
    if arch == "mlp":
        return 5, 30
    return (1, 3) if width >= 64 else (2, 5)


def median_step_ms(model, warmup, steps):
    """Median wall time of one training step after `warmup` untimed ones.

    A step is what train_step.rs times: forward (training mode), cross-entropy,
    backward, the SGD update, and reading the loss (which waits for the work, as
    Candle's `to_scalar` does). zero_grad is inside: Candle builds fresh gradients each
    step, so clearing PyTorch's is the matching cost."""
    xs = torch.randn(BENCH_BATCH, *BENCH_SHAPE)
    ys = torch.arange(BENCH_BATCH) % CLASSES
    opt = sgd(model, BENCH_LR, BENCH_MOMENTUM, BENCH_WEIGHT_DECAY)
    model.train()
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xs), ys)
        loss.backward()
        opt.step()
        loss.item()
        if i >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    # The upper median for even counts, as the Rust bench's times[len / 2].
    return sorted(times)[len(times) // 2]


def append_jsonl(path, record):
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def cmd_speed(args):
    set_threads(args.threads)
    names = args.models.split(",") if args.models else DEFAULT_MODELS
    for name in names:
        parse_model_name(name)  # fail before timing anything
    print(
        f"training step, batch {BENCH_BATCH}, input {'x'.join(map(str, BENCH_SHAPE))}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}, "
        "median after warm-up"
    )
    print(f"{'model':<26} {'params':>9} {'warmup':>6} {'steps':>6} {'ms/step':>10}")
    for name in names:
        torch.manual_seed(0)
        model = bench_model(name)
        warmup, steps = default_steps(name)
        warmup = warmup if args.warmup is None else args.warmup
        steps = steps if args.steps is None else args.steps
        ms = median_step_ms(model, warmup, steps)
        params = trainable_count(model)
        print(f"{name:<26} {params:>9,} {warmup:>6} {steps:>6} {ms:>10.2f}", flush=True)
        append_jsonl(
            args.out,
            {
                "impl": "pytorch",
                "model": name,
                "threads": torch.get_num_threads(),
                "median_ms": round(ms, 4),
                "steps": steps,
                "warmup": warmup,
                "params": params,
                "version": torch.__version__,
            },
        )


# ---------------------------------------------------------------------------------------
# Data (crates/data, crates/runner/src/batches.rs)
# ---------------------------------------------------------------------------------------

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DATASET_DIRS = {
    # name: (environment variable, system directory), as crates/data/src/locate.rs
    "fashion-mnist": ("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"),
    "mnist": ("MNIST_DIR", "/usr/share/datasets/mnist"),
    "cifar10": ("CIFAR10_DIR", None),
}


def read_idx(path):
    """An IDX array (gzipped or not), as uint8 of its stored dims."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file")
    rank = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(dims)


def find_file(directory, stem):
    for name in (stem + ".gz", stem):
        if (directory / name).exists():
            return directory / name
    raise SystemExit(f"{directory}: no {stem}[.gz]")


def load_idx_dir(directory):
    """(train images, train labels, test images, test labels); images (n, 1, h, w)."""
    arrays = {k: read_idx(find_file(directory, v)) for k, v in IDX_FILES.items()}
    return (
        arrays["train_images"][:, None],
        arrays["train_labels"],
        arrays["test_images"][:, None],
        arrays["test_labels"],
    )


def load_cifar_dir(directory):
    """CIFAR-10 binary batches: 3073-byte records, label then the R, G, B planes."""

    def read(name):
        records = np.fromfile(directory / name, np.uint8).reshape(-1, 3073)
        return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0]

    parts = [read(f"data_batch_{i}.bin") for i in range(1, 6)]
    test_x, test_y = read("test_batch.bin")
    return (
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        test_x,
        test_y,
    )


def dataset_dir(spec, cli_dir):
    """The order of locate.rs: command line, YAML `dataset.dir`, environment variable,
    ./data/<name>, the system directory. (No download: that is the Rust tool's job.)"""
    name = spec["name"]
    env, system = DATASET_DIRS.get(name, (None, None))
    given = cli_dir or spec.get("dir") or (env and os.environ.get(env))
    if given:
        return Path(given)
    for candidate in (Path("data") / name, system and Path(system)):
        if candidate and candidate.is_dir():
            return candidate
    raise SystemExit(
        f"dataset {name}: not found; pass --data-dir (or let the Rust tool download it)"
    )


def standardiser(train_images, mode):
    """Per-scalar (mean, std) fitted on the training images only, pixels in [0, 1]
    (batches.rs Standardiser): global (default), per-channel, or per-pixel-mean."""
    x = train_images.astype(np.float64) / 255.0
    shape = x.shape[1:]
    mode = mode or "global"
    if mode == "global":
        mean, std = x.mean(), x.std()
        mean, std = np.full(shape, mean), np.full(shape, max(std, 1e-6))
    elif mode == "per-channel":
        mean = x.mean(axis=(0, 2, 3), keepdims=True)[0]
        std = np.maximum(x.std(axis=(0, 2, 3), keepdims=True)[0], 1e-6)
        mean, std = np.broadcast_to(mean, shape), np.broadcast_to(std, shape)
    elif mode == "per-pixel-mean":
        mean, std = x.mean(axis=0), np.ones(shape)
    else:
        raise SystemExit(f"unknown normalize mode {mode!r}")
    return mean, std


def normalise(images, mean, std):
    return torch.from_numpy(((images / 255.0 - mean) / std).astype(np.float32))


def load_datasets(spec, cli_dir):
    """worker.rs load_datasets: validation = the LAST N training images, then
    train_limit / test_limit keep the FIRST N, then normalise with training statistics."""
    directory = dataset_dir(spec, cli_dir)
    loader = load_cifar_dir if spec["name"] == "cifar10" else load_idx_dir
    train_x, train_y, test_x, test_y = loader(directory)
    val = None
    if spec.get("validation"):
        n = spec["validation"]
        val = (train_x[-n:], train_y[-n:])
        train_x, train_y = train_x[:-n], train_y[:-n]
    if spec.get("train_limit") is not None:
        train_x, train_y = train_x[: spec["train_limit"]], train_y[: spec["train_limit"]]
    if spec.get("test_limit") is not None:
        test_x, test_y = test_x[: spec["test_limit"]], test_y[: spec["test_limit"]]
    mean, std = standardiser(train_x, spec.get("normalize"))

    def split(x, y):
        return normalise(x, mean, std), torch.from_numpy(y.astype(np.int64))

    return {
        "train": split(train_x, train_y),
        "validation": val and split(*val),
        "test": split(test_x, test_y),
    }


def epoch_batches(n, batch_size, rng):
    """A fresh permutation each epoch, cut into batches; a last batch of a single
    example is dropped (BN cannot train on it), as batches.rs epoch_batches."""
    order = torch.from_numpy(rng.permutation(n))
    return [c for c in torch.split(order, batch_size) if len(c) >= 2]


def augment(xs, pad, flip, rng):
    """augment.rs: a random window of the zero-padded image (offsets in [-pad, pad]),
    mirrored left-right with probability 1/2. Applied to normalised images."""
    if not pad and not flip:
        return xs
    _, _, h, w = xs.shape
    padded = F.pad(xs, (pad, pad, pad, pad))
    out = torch.empty_like(xs)
    offsets = rng.integers(0, 2 * pad + 1, size=(len(xs), 2))
    flips = rng.random(len(xs)) < 0.5 if flip else np.zeros(len(xs), bool)
    for i, ((oy, ox), f) in enumerate(zip(offsets, flips)):
        window = padded[i, :, oy : oy + h, ox : ox + w]
        out[i] = window.flip(-1) if f else window
    return out


# ---------------------------------------------------------------------------------------
# train (crates/runner/src/train.rs)
# ---------------------------------------------------------------------------------------


def make_scheduler(opt, train, per_epoch):
    """PyTorch's own scheduler for the run's `schedule` on `opt`, and whether it is
    stepped once per iteration (else once per epoch, after the epoch's batches).

    * constant: LambdaLR with factor 1 (the base lr throughout);
    * cosine: CosineAnnealingLR from lr to 0 with T_max = all iterations of the run,
      stepped every iteration;
    * step: MultiStepLR(milestones, gamma). An epoch-length run steps it once per epoch,
      so with milestones [m] epochs 1..m (1-based) train at lr and epoch m + 1 onward
      at lr * gamma; an iteration-length run steps it once per iteration, so iterations
      0..m-1 (0-based) train at lr and iteration m onward at lr * gamma.

    None of this reads our Rust formula (run_config.rs lr_at): comparing against it is
    the point."""
    schedule, sched = train["schedule"], torch.optim.lr_scheduler
    if schedule == "constant":
        return sched.LambdaLR(opt, lambda _: 1.0), True
    if schedule == "cosine":
        total = max(total_iterations(train, per_epoch), 1)
        return sched.CosineAnnealingLR(opt, T_max=total, eta_min=0.0), True
    if isinstance(schedule, dict) and "step" in schedule:
        step = schedule["step"]
        scheduler = sched.MultiStepLR(opt, milestones=step["milestones"], gamma=step["gamma"])
        return scheduler, train.get("iterations") is not None
    raise SystemExit(f"unknown schedule {schedule!r}")


class LearningRate:
    """The optimiser's lr: the scheduler's (`make_scheduler`), replaced by the warm-up lr
    while warm-up lasts. The schedule advances underneath the warm-up all the same: its
    lr is a function of the iteration / epoch count only.

    Per batch: `set(iteration)` before the step, `after_batch()` after it; per epoch,
    `after_epoch()` after the epoch's batches."""

    def __init__(self, opt, train, per_epoch, warmup):
        self.opt, self.warmup = opt, warmup
        self.scheduler, self.per_iteration = make_scheduler(opt, train, per_epoch)

    def scheduled(self):
        return self.scheduler.get_last_lr()[0]

    def current(self, iteration):
        """The lr for the 0-based step `iteration`, without setting it."""
        warm = self.warmup.lr(iteration)
        return self.scheduled() if warm is None else warm

    def set(self, iteration):
        """Put the lr of step `iteration` into the optimiser; returns it."""
        lr = self.current(iteration)
        self._write(lr)
        return lr

    def after_batch(self):
        if self.per_iteration:
            self._advance()

    def after_epoch(self):
        if not self.per_iteration:
            self._advance()

    def _advance(self):
        # PyTorch's schedulers are chainable: step() rescales param_group["lr"] (the
        # MultiStepLR multiplies it by gamma at a milestone, else keeps it). Hand it back
        # the scheduler's own lr first, so a warm-up lr is neither scaled nor kept.
        self._write(self.scheduled())
        self.scheduler.step()

    def _write(self, lr):
        for group in self.opt.param_groups:
            group["lr"] = lr


def total_iterations(train, per_epoch):
    if train.get("iterations") is not None:
        return train["iterations"]
    return (train.get("epochs") or 0) * per_epoch


def epochs_to_run(train, per_epoch):
    if train.get("iterations") is not None:
        return -(-train["iterations"] // max(per_epoch, 1))
    return train.get("epochs") or 0


class Warmup:
    """warmup.rs: a fixed lr until `iterations` steps are done, or until the mean error
    of the last WARMUP_WINDOW training batches is below `until_train_error`."""

    def __init__(self, spec):
        self.spec, self.ended = spec, spec is None
        self.recent = []

    def lr(self, iteration):
        if self.ended:
            return None
        n = self.spec.get("iterations")
        return None if n is not None and iteration >= n else self.spec["lr"]

    def observe(self, iteration, batch_error):
        if self.ended:
            return
        n = self.spec.get("iterations")
        if n is not None:
            self.ended = iteration + 1 >= n
            return
        self.recent = (self.recent + [batch_error])[-WARMUP_WINDOW:]
        threshold = self.spec.get("until_train_error", 1.0)
        if len(self.recent) == WARMUP_WINDOW and sum(self.recent) / WARMUP_WINDOW < threshold:
            self.ended = True


@torch.no_grad()
def evaluate(model, xs, ys):
    """(error, mean loss), BN in evaluation mode (running statistics)."""
    model.eval()
    wrong, loss_sum = 0, 0.0
    for start in range(0, len(xs), EVAL_CHUNK):
        logits = model(xs[start : start + EVAL_CHUNK])
        y = ys[start : start + EVAL_CHUNK]
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        wrong += (logits.argmax(1) != y).sum().item()
    model.train()
    n = max(len(xs), 1)
    return wrong / n, loss_sum / n


def train_run(run, data):
    """One run, as train.rs `train`. Returns the per-epoch rows (or a divergence).

    Train error of an epoch = wrong predictions of the training-mode forward passes of
    that epoch's batches, over the examples seen: a running figure while the weights
    move, not a re-evaluation at the end (MetricRow.train_error)."""
    t = run["train"]
    torch.manual_seed(run["seed"])
    xs, ys = data["train"]
    model = build_model(
        run["arch"], run["family"], run["depth"], run["width"], tuple(xs.shape[1:]),
        run["shortcut"], run["zero_init_residual"],
    )
    opt = sgd(model, t["lr"], t["momentum"], t["weight_decay"])
    per_epoch = len(xs) // t["batch_size"] + int(len(xs) % t["batch_size"] >= 2)
    total = total_iterations(t, per_epoch)
    warmup = Warmup(run["warmup"])
    lrs = LearningRate(opt, t, per_epoch, warmup)
    # Not our SeededRng streams: same rules, other random numbers.
    rng = np.random.default_rng(run["seed"])
    aug = run["augment"]
    max_loss = t.get("max_loss") or DIVERGENCE_LOSS
    model.train()
    iteration, rows, started = 0, [], time.perf_counter()
    for epoch in range(1, epochs_to_run(t, per_epoch) + 1):
        batches = epoch_batches(len(xs), t["batch_size"], rng)[: max(total - iteration, 0)]
        epoch_lr = lrs.current(iteration)
        seen, wrong, loss_sum = 0, 0, 0.0
        for b, idx in enumerate(batches):
            lr = lrs.set(iteration)
            x, y = xs[idx], ys[idx]
            if aug:
                x = augment(x, aug.get("pad", 0), aug.get("flip", False), rng)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss_value = loss.item()
            if not math.isfinite(loss_value) or loss_value > max_loss:
                why = f"training loss {loss_value} at epoch {epoch}, batch {b + 1} (lr {lr:.4f})"
                return rows, why
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            batch_wrong = (logits.argmax(1) != y).sum().item()
            warmup.observe(iteration, batch_wrong / len(idx))
            lrs.after_batch()
            iteration += 1
            seen += len(idx)
            wrong += batch_wrong
            loss_sum += loss_value * len(idx)
        lrs.after_epoch()
        test_error, test_loss = evaluate(model, *data["test"])
        row = {
            "epoch": epoch,
            "iteration": iteration,
            "lr": epoch_lr,
            "train_error": wrong / max(seen, 1),
            "train_loss": loss_sum / max(seen, 1),
            "test_error": test_error,
            "test_loss": test_loss,
            "wall_s": time.perf_counter() - started,
        }
        if data["validation"] is not None:
            row["val_error"], row["val_loss"] = evaluate(model, *data["validation"])
        rows.append(row)
    return rows, None


def normalise_schedule(schedule):
    """YAML `schedule: cosine` or `schedule: {step: {...}}` (serde's kebab-case enum)."""
    return schedule.lower() if isinstance(schedule, str) else schedule


def plan_runs(spec):
    """The grid of plan.rs: families x depths x seeds, minus `exclude`, warm-up only at
    its `depths`. Each run is a flat dict."""
    model, train = spec["model"], dict(spec["train"])
    train["schedule"] = normalise_schedule(train["schedule"])
    if bool(train.get("epochs")) == bool(train.get("iterations")):
        raise SystemExit("train: give exactly one of epochs and iterations")
    excluded = set(spec.get("exclude") or [])
    warm = train.pop("warmup", None)
    runs = []
    for family in spec["families"]:
        for depth in spec["depths"]:
            if f"{family}-{depth}" in excluded:
                continue
            applies = warm is not None and (warm.get("depths") is None or depth in warm["depths"])
            for seed in spec["seeds"]:
                runs.append(
                    {
                        "name": f"{family}-{depth}-seed{seed}",
                        "arch": model["arch"],
                        "family": family,
                        "depth": depth,
                        "width": model["width"],
                        "shortcut": (model.get("shortcut") or "a").lower()
                        if model["arch"] == "cifar" else None,
                        "zero_init_residual": model["zero_init_residual"],
                        "seed": seed,
                        "train": train,
                        "warmup": warm if applies else None,
                        "augment": spec["dataset"].get("augment"),
                    }
                )
    return runs


def wanted(run, filters):
    """`--runs plain-4,residual-16` keeps every seed of those; `plain-4-seed0` one run."""
    if not filters:
        return True
    return any(run["name"] == f or run["name"].startswith(f + "-seed") for f in filters)


def cmd_train(args):
    import yaml  # only the train command needs it

    set_threads(args.threads)
    spec = yaml.safe_load(Path(args.experiment).read_text(encoding="utf-8"))
    filters = [f for f in (args.runs or "").split(",") if f]
    runs = [r for r in plan_runs(spec) if wanted(r, filters)]
    if not runs:
        raise SystemExit(f"no run of {args.experiment} matches --runs {args.runs}")
    data = load_datasets(spec["dataset"], args.data_dir)
    n_train, shape = len(data["train"][0]), tuple(data["train"][0].shape[1:])
    print(
        f"{spec['name']}: {n_train} training images {shape}, {len(data['test'][0])} test, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)"
    )
    print(
        f"{'run':<24} {'params':>9} {'epochs':>6} "
        f"{'train err %':>11} {'test err %':>10} {'wall s':>8}"
    )
    for run in runs:
        rows, diverged = train_run(run, data)
        params = trainable_count(
            build_model(run["arch"], run["family"], run["depth"], run["width"], shape,
                        run["shortcut"], run["zero_init_residual"])
        )
        last = rows[-1] if rows else {}
        if diverged:
            print(f"{run['name']:<24} {params:>9,} diverged: {diverged}", flush=True)
        else:
            print(
                f"{run['name']:<24} {params:>9,} {last['epoch']:>6} "
                f"{100 * last['train_error']:>11.2f} {100 * last['test_error']:>10.2f} "
                f"{last['wall_s']:>8.1f}",
                flush=True,
            )
        append_jsonl(
            args.out,
            {
                "impl": "pytorch",
                "experiment": spec["name"],
                "run": run["name"],
                "family": run["family"],
                "depth": run["depth"],
                "seed": run["seed"],
                "params": params,
                "threads": torch.get_num_threads(),
                "diverged": diverged,
                # Fractions, like our metrics rows; the table above shows percent.
                "train_error": last.get("train_error"),
                "test_error": last.get("test_error"),
                "train_loss": last.get("train_loss"),
                "test_loss": last.get("test_loss"),
                "history": rows,  # one row per epoch, as our metrics rows
                "version": torch.__version__,
            },
        )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    speed = sub.add_parser("speed", help="median training-step time at batch 128")
    speed.add_argument("--threads", type=int, default=1)
    speed.add_argument("--models", help="comma-separated; default: " + ",".join(DEFAULT_MODELS))
    speed.add_argument("--steps", type=int, help="timed steps (default per model)")
    speed.add_argument("--warmup", type=int, help="untimed steps first (default per model)")
    speed.add_argument("--out", help="append one JSON line per model here")
    speed.set_defaults(func=cmd_speed)

    train = sub.add_parser("train", help="train an experiment YAML's runs")
    train.add_argument("experiment")
    train.add_argument("--threads", type=int, default=1)
    train.add_argument("--runs", help="e.g. plain-4,residual-16 (all seeds) or plain-4-seed0")
    train.add_argument("--data-dir", help="the dataset's files (default: as the Rust tool)")
    train.add_argument("--out", help="append one JSON line per run here")
    train.set_defaults(func=cmd_train)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    sys.exit(main())
