#!/usr/bin/env python3
"""Candle against PyTorch, step time for step time.

Joins the JSON lines of our Candle benchmark with those of `bench/torch_reference.py
speed` on (model, threads) and prints one row per pair: both medians, the ratio
candle / pytorch (above 1: Candle is slower), and Candle's GFLOP/s where its line says
how much work a step is. Standard library only, so it runs with any python3:

    python3 bench/compare.py candle.jsonl torch.jsonl

Candle lines: {"impl": "candle", "model": ..., "threads": N, "median_ms": ...,
"gflop_per_step": ...} (or a ready "gflops" field). Lines without a "model" (the
`train` command's results) are skipped. If a file holds several lines for one
(model, threads) (rounds), their median is used and the table says how many.
A model measured on one side only is listed with "missing" on the other. Exit status 0
(2 only for wrong arguments).
"""

import json
import statistics
import sys


def load(path):
    """{(model, threads): record} where record's median_ms is the median over every line
    for that pair (one per round of `bench/side_by_side.py`; this machine is shared and
    a single measurement can be off by 20 %), and "rounds" says how many there were."""
    lines = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                print(f"{path}:{number}: skipped, not JSON ({e})", file=sys.stderr)
                continue
            if "model" in record and "median_ms" in record:
                lines.setdefault((record["model"], int(record.get("threads", 0))), []).append(record)
    records = {}
    for key, group in lines.items():
        record = dict(group[-1])
        record["median_ms"] = statistics.median(r["median_ms"] for r in group)
        record["rounds"] = len(group)
        records[key] = record
    return records


def candle_gflops(record):
    """GFLOP/s of a Candle step: given, or work per step over the median time."""
    if record.get("gflops") is not None:
        return float(record["gflops"])
    if record.get("gflop_per_step") is not None and record["median_ms"] > 0:
        return record["gflop_per_step"] / (record["median_ms"] / 1e3)
    return None


def fmt(value, spec):
    return "missing" if value is None else format(value, spec)


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[0])
        print(f"usage: {argv[0]} CANDLE.jsonl TORCH.jsonl", file=sys.stderr)
        return 2
    candle, torch = load(argv[1]), load(argv[2])
    # Candle's order first (the bench's), then what only PyTorch measured.
    first_seen = list(candle) + [k for k in torch if k not in candle]
    order = {k: i for i, k in enumerate(first_seen)}
    keys = sorted(first_seen, key=lambda k: (k[1], order[k]))  # grouped by thread count
    print(
        f"{'model':<26} {'threads':>7} {'candle ms':>10} {'pytorch ms':>10} "
        f"{'candle/pt':>9} {'candle GFLOP/s':>14} {'rounds':>6}"
    )
    for model, threads in keys:
        c, t = candle.get((model, threads)), torch.get((model, threads))
        c_ms = c and c["median_ms"]
        t_ms = t and t["median_ms"]
        ratio = c_ms / t_ms if c_ms and t_ms else None
        gflops = c and candle_gflops(c)
        print(
            f"{model:<26} {threads:>7} {fmt(c_ms, '10.2f'):>10} {fmt(t_ms, '10.2f'):>10} "
            f"{fmt(ratio, '9.2f'):>9} {'' if c and gflops is None else fmt(gflops, '14.2f'):>14} "
            f"{(c or t)['rounds']:>6}"
        )
    versions = {r.get("version") for r in torch.values() if r.get("version")}
    if versions:
        print(f"pytorch {', '.join(sorted(versions))}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
