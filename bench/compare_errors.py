#!/usr/bin/env python3
"""Did a change move training results? Final errors of two results directories of one
experiment, side by side, per (family, depth) over the seeds.

    python3 bench/compare_errors.py results/fashion-mlp /tmp/new/fashion-mlp

For each group: the final-epoch train and test error of each side (mean, and min..max
over the seeds), and whether the new mean lies within the old seed spread: |new mean -
old mean| <= old max - old min. A single-seed group has no spread: only the numbers are
printed. Needs pyarrow (`pip install pyarrow`). Exit status 1 when a group with a spread
moved outside it, so it can gate a change.
"""

import json
import pathlib
import statistics
import sys

import pyarrow.parquet as pq


def finals(root):
    """{(family, depth): {seed: (train_error, test_error)}} from each run's last row."""
    groups = {}
    for run in sorted(pathlib.Path(root).iterdir()):
        metrics = run / "metrics.parquet"
        if not metrics.is_file():
            continue
        config = json.loads((run / "config.json").read_text())
        rows = pq.read_table(metrics).to_pylist()
        if not rows:
            continue
        last = max(rows, key=lambda r: (r["epoch"], r.get("iteration") or 0))
        key = (config["family"], config["depth"])
        groups.setdefault(key, {})[config["seed"]] = (last["train_error"], last["test_error"])
    return groups


def summary(values):
    return statistics.mean(values), min(values), max(values)


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    old, new = finals(sys.argv[1]), finals(sys.argv[2])
    moved = False
    print(f"{'run':<14} {'what':<6} {'before: mean (min..max)':>28} {'after: mean (min..max)':>28}  within spread")
    for key in sorted(set(old) | set(new)):
        name = f"{key[0]}-{key[1]}"
        if key not in old or key not in new:
            print(f"{name:<14} only in {'the old' if key in old else 'the new'} results")
            continue
        for i, what in enumerate(["train", "test"]):
            a = summary([v[i] for v in old[key].values()])
            b = summary([v[i] for v in new[key].values()])
            spread = a[2] - a[1]
            if len(old[key]) < 2:
                verdict = "(one seed)"
            else:
                ok = abs(b[0] - a[0]) <= spread
                moved |= not ok
                verdict = "yes" if ok else f"NO (moved {100 * (b[0] - a[0]):+.2f} points, spread {100 * spread:.2f})"
            fmt = lambda s: f"{100 * s[0]:6.2f} % ({100 * s[1]:.2f}..{100 * s[2]:.2f})"
            print(f"{name:<14} {what:<6} {fmt(a):>28} {fmt(b):>28}  {verdict}")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
