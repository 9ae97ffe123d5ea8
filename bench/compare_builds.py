#!/usr/bin/env python3
"""Two (or more) builds of our training-step benchmark, alternated, on the same models.

For a change to the kernels: build the bench before and after (`cargo bench -p runner
--bench train_step --no-run` prints the binary; copy it away between the two builds),
then

    python3 bench/compare_builds.py --rounds 6 --models cifar-plain-d56-w16,cifar-plain-d20-w32 \\
        OLD_BINARY NEW_BINARY

prints, per model, the median ms per step of each binary and the ratio last / first.
The binaries run in alternating order round by round (ABBA...), so a machine whose
speed drifts over minutes puts the drift into both sides; RAYON_NUM_THREADS (default
1) sets the threads.
"""

import argparse
import os
import re
import statistics
import subprocess

LINE = re.compile(r"(\S+)\s+\d+\s+\d+\s+([\d.]+)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--models", required=True, help="comma-separated bench model names")
    ap.add_argument("binaries", nargs="+")
    args = ap.parse_args()
    env = dict(os.environ, RAYON_NUM_THREADS=os.environ.get("RAYON_NUM_THREADS", "1"))
    times = {}
    for r in range(args.rounds):
        order = args.binaries if r % 2 == 0 else list(reversed(args.binaries))
        for binary in order:
            out = subprocess.run(
                [binary, "--models", args.models], env=env, capture_output=True, text=True, check=True
            ).stdout
            for line in out.splitlines():
                m = LINE.match(line)
                if m:
                    times.setdefault((m.group(1), binary), []).append(float(m.group(2)))
    for model in args.models.split(","):
        medians = [statistics.median(times[(model, b)]) for b in args.binaries]
        cells = "  ".join(f"{os.path.basename(b)} {m:.1f}" for b, m in zip(args.binaries, medians))
        print(f"{model:<26} {cells}  ratio {medians[-1] / medians[0]:.3f}")


if __name__ == "__main__":
    main()
