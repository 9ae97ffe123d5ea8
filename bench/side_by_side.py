#!/usr/bin/env python3
"""Candle against PyTorch on this machine, measured in alternation.

For each thread count and model: our training-step benchmark, then PyTorch's
(`bench/torch_reference.py speed`), back to back, for a number of rounds; both append
JSON lines, and `bench/compare.py` prints the median of the rounds and the ratio. The
alternation matters on a shared machine: the speed of the whole machine drifts by 20 %
over minutes, which a run of every Candle model followed by every PyTorch model would
put into the ratios.

    python3 bench/side_by_side.py [--python .venv-torch/bin/python] [--threads 1,2]
        [--models a,b] [--rounds N] [--out-dir target/bench]

The models' names are the ones both benchmarks know (see `DEFAULT_MODELS` in
`torch_reference.py`); conv nets of width 64 get one round (a step takes seconds), the
others `--rounds` (default 3).
"""

import argparse
import os
import pathlib
import subprocess
import sys

MODELS = [
    "mlp-plain-d64-w64",
    "mlp-residual-d64-w64",
] + [f"cifar-{m}-w{w}" for w in (4, 8, 16, 32, 64) for m in ("plain-d20", "plain-d56", "residual-d56")]


def run(cmd, env=None):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env=env)


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--python", default=".venv-torch/bin/python")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out-dir", default="target/bench")
    args = ap.parse_args()
    # Absolute: cargo runs benchmarks in the package directory.
    out = pathlib.Path(args.out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    candle, torch = out / "candle.jsonl", out / "torch.jsonl"
    for path in (candle, torch):
        path.unlink(missing_ok=True)
    # Build once, outside the timed loop.
    run(["cargo", "bench", "-p", "runner", "--bench", "train_step", "--no-run"])
    for threads in args.threads.split(","):
        env = dict(os.environ, RAYON_NUM_THREADS=threads, CANDLE_NUM_THREADS=threads)
        for model in args.models.split(","):
            for _ in range(1 if model.startswith("cifar-") and model.endswith("-w64") else args.rounds):
                run(["cargo", "bench", "-q", "-p", "runner", "--bench", "train_step", "--",
                     "--models", model, "--out", str(candle)], env=env)
                run([args.python, "bench/torch_reference.py", "speed", "--threads", threads,
                     "--models", model, "--out", str(torch)])
    run([sys.executable, "bench/compare.py", str(candle), str(torch)])


if __name__ == "__main__":
    main()
