#!/usr/bin/env python3
"""Did a change move training results? Final errors of two results directories of one
experiment, side by side, per run configuration over the seeds.

    python3 bench/compare_errors.py results/fashion-mlp /tmp/new/fashion-mlp

Which runs count: only those whose `meta.json` exists, parses and says `"status":
"done"`, with a readable `config.json` and at least one row in `metrics.parquet`. The
others (diverged, running, failed, unreadable files) are listed once per side under
"left out", with the reason.

Groups: a results directory can hold runs of several configurations (an older config
next to the current one). Runs are grouped by their whole `config.json` except `seed`,
so runs of different configurations are never pooled. Where a family-depth has more than
one configuration on a side, the script says which settings differ (e.g. "plain-16 has 2
configurations in OLD: they differ in train.lr (0.1 / 0.05)") and labels the rows with
those settings. Old and new groups are paired by the same config-minus-seed; what stays
unpaired is paired by (family, depth), closest configurations first, with a warning
naming the settings that differ; the rest is "only in" one side.

For each pair of groups: the final-epoch train and test error of each side (mean, and
min..max over the seeds); Welch's t of new minus old, (mean_b - mean_a) / sqrt(var_a /
n_a + var_b / n_b) with sample variances, and its Welch-Satterthwaite degrees of freedom,
when both sides have at least 2 seeds (zero variance on both sides: t is 0 if the means
are equal, else +-inf, df "-"); and whether the new mean lies within the old seed
spread: |new mean - old mean| <= old max - old min. A single-seed old group has no
spread: only the numbers are printed.

Needs pyarrow (`pip install pyarrow`). Exit status 1 when a group with a spread moved
outside it, so it can gate a change; 2 on wrong usage.
"""

import json
import math
import pathlib
import statistics
import sys

import pyarrow.parquet as pq

RUN_FILES = ("config.json", "meta.json", "metrics.parquet")
VALUE_CHARS = 24  # a setting's value in labels and messages is cut to this


def read_run(run):
    """(config, (train_error, test_error)) of a finished run, or (None, why not)."""
    try:
        meta = json.loads((run / "meta.json").read_text())
        status = meta["status"]
    except FileNotFoundError:
        return None, "no meta.json"
    except (OSError, ValueError, KeyError, TypeError):
        return None, "meta.json unreadable"
    if status != "done":
        return None, str(status)
    try:
        config = json.loads((run / "config.json").read_text())
        config["family"], config["depth"], config["seed"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, "config.json unreadable"
    try:
        rows = pq.read_table(run / "metrics.parquet").to_pylist()
    except FileNotFoundError:
        return None, "no metrics.parquet"
    except Exception:  # pyarrow raises several kinds for a damaged file
        return None, "metrics.parquet unreadable"
    if not rows:
        return None, "metrics.parquet has no rows"
    last = max(rows, key=lambda r: (r["epoch"], r.get("iteration") or 0))
    return config, (last["train_error"], last["test_error"])


def finals(root):
    """({config minus seed (canonical JSON): group}, [(run dir, why left out)]).

    A group: {"family", "depth", "config" (without seed), "seeds": {seed: (train, test)}}.
    Subdirectories without any run file are not runs and are skipped silently."""
    groups, left_out = {}, []
    for run in sorted(pathlib.Path(root).iterdir()):
        if not run.is_dir() or not any((run / f).exists() for f in RUN_FILES):
            continue
        config, result = read_run(run)
        if config is None:
            left_out.append((run.name, result))
            continue
        rest = {k: v for k, v in config.items() if k != "seed"}
        key = json.dumps(rest, sort_keys=True)
        group = groups.setdefault(
            key,
            {"family": config["family"], "depth": config["depth"], "config": rest, "seeds": {}},
        )
        group["seeds"][config["seed"]] = result
    return groups, left_out


def flatten(config, prefix=""):
    """{"train.lr": 0.1, "train.schedule.step.gamma": 0.1, ...}: nested settings by path."""
    flat = {}
    for k, v in config.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            flat.update(flatten(v, path + "."))
        else:
            flat[path] = v
    return flat


MISSING = object()


def shown(value):
    text = "(absent)" if value is MISSING else json.dumps(value, sort_keys=True)
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 3] + "..."


def differing(configs):
    """The setting paths whose values are not the same in all `configs`, sorted."""
    flats = [flatten(c) for c in configs]
    paths = sorted(set().union(*flats))
    return [p for p in paths if len({shown(f.get(p, MISSING)) for f in flats}) > 1]


def describe(configs, paths):
    """'train.lr (0.1 / 0.05), train.momentum (0.9 / 0.8)'."""
    flats = [flatten(c) for c in configs]
    return ", ".join(
        f"{p} ({' / '.join(shown(f.get(p, MISSING)) for f in flats)})" for p in paths
    )


def label(name, paths, old, new):
    """`plain-16`, or `plain-16 [train.lr=0.1]` with the settings that tell apart the
    family-depth's configurations on a side; `train.lr=0.1->0.05` where OLD and NEW
    differ in one of them."""
    if not paths:
        return name
    a, b = flatten(old), flatten(new)
    parts = []
    for p in paths:
        x, y = shown(a.get(p, MISSING)), shown(b.get(p, MISSING))
        parts.append(f"{p}={x}" if x == y else f"{p}={x}->{y}")
    return f"{name} [{', '.join(parts)}]"


def within_side_paths(sides):
    """Settings that differ between the configurations of one side (either side)."""
    paths = set()
    for groups in sides.values():
        if len(groups) > 1:
            paths.update(differing([g["config"] for g in groups.values()]))
    return sorted(paths)


def pair_groups(old, new):
    """[(label, old group or None, new group or None)], and the notes and warnings to
    print first. Exact config matches first, then by (family, depth), closest first."""
    notes, pairs = [], []
    by_name = {}
    for side, groups in (("old", old), ("new", new)):
        for key, g in groups.items():
            by_name.setdefault((g["family"], g["depth"]), {"old": {}, "new": {}})[side][key] = g
    for (family, depth), sides in sorted(by_name.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        name = f"{family}-{depth}"
        for side, title in (("old", "OLD"), ("new", "NEW")):
            if len(sides[side]) > 1:
                configs = [g["config"] for g in sides[side].values()]
                notes.append(
                    f"{name} has {len(configs)} configurations in {title}: they differ in "
                    + describe(configs, differing(configs))
                )
        paths = within_side_paths(sides)
        unmatched_old = [k for k in sides["old"] if k not in sides["new"]]
        unmatched_new = [k for k in sides["new"] if k not in sides["old"]]
        for key in sides["old"]:
            if key in sides["new"]:
                a, b = sides["old"][key], sides["new"][key]
                pairs.append((label(name, paths, a["config"], b["config"]), a, b))
        # Unpaired: closest configurations (fewest differing settings) first.
        candidates = sorted(
            (len(differing([old[ko]["config"], new[kn]["config"]])), i, j, ko, kn)
            for i, ko in enumerate(unmatched_old)
            for j, kn in enumerate(unmatched_new)
        )
        used_old, used_new = set(), set()
        for _, _, _, ko, kn in candidates:
            if ko in used_old or kn in used_new:
                continue
            used_old.add(ko)
            used_new.add(kn)
            a, b = old[ko], new[kn]
            between = [a["config"], b["config"]]
            shown_as = label(name, paths, a["config"], b["config"]) + " *"
            notes.append(
                f"warning: {shown_as}: no configuration matches on the other side, compared "
                f"by family and depth; OLD and NEW differ in {describe(between, differing(between))}"
            )
            pairs.append((shown_as, a, b))
        for ko in unmatched_old:
            if ko not in used_old:
                pairs.append((label(name, paths, old[ko]["config"], old[ko]["config"]), old[ko], None))
        for kn in unmatched_new:
            if kn not in used_new:
                pairs.append((label(name, paths, new[kn]["config"], new[kn]["config"]), None, new[kn]))
    return pairs, notes


def summary(values):
    return statistics.mean(values), min(values), max(values)


def welch(a, b):
    """(t, df) of mean(b) - mean(a), Welch's unequal-variance test; df is None when both
    variances are 0 (t is then 0 for equal means, else +-inf). Needs 2+ values a side."""
    ma, mb = statistics.mean(a), statistics.mean(b)
    sa, sb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if sa + sb == 0:
        return (0.0 if ma == mb else math.copysign(math.inf, mb - ma)), None
    t = (mb - ma) / math.sqrt(sa + sb)
    df = (sa + sb) ** 2 / (sa**2 / (len(a) - 1) + sb**2 / (len(b) - 1))
    return t, df


def welch_text(a, b):
    if len(a) < 2 or len(b) < 2:
        return "-"
    t, df = welch(a, b)
    if not math.isfinite(t):
        t_text = "+inf" if t > 0 else "-inf"
    else:
        t_text = f"{t if abs(t) >= 0.005 else 0.0:+.2f}"  # no "-0.00"
    return f"{t_text} (df {'-' if df is None else f'{df:.1f}'})"


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    for root in sys.argv[1:]:
        if not pathlib.Path(root).is_dir():
            print(f"{root}: not a directory\n\n{__doc__.strip()}", file=sys.stderr)
            return 2
    (old, old_out), (new, new_out) = finals(sys.argv[1]), finals(sys.argv[2])
    pairs, notes = pair_groups(old, new)
    for note in notes:
        print(note)
    if notes:
        print()
    moved = False
    width = max([14] + [len(p[0]) for p in pairs])
    fmt = lambda s: f"{100 * s[0]:6.2f} % ({100 * s[1]:.2f}..{100 * s[2]:.2f})"
    print(
        f"{'run':<{width}} {'what':<6} {'before: mean (min..max)':>28} "
        f"{'after: mean (min..max)':>28} {'Welch t (df)':>16}  within spread"
    )
    for name, a_group, b_group in pairs:
        if a_group is None or b_group is None:
            print(f"{name:<{width}} only in {'the old' if b_group is None else 'the new'} results")
            continue
        for i, what in enumerate(["train", "test"]):
            a_values = [v[i] for v in a_group["seeds"].values()]
            b_values = [v[i] for v in b_group["seeds"].values()]
            a, b = summary(a_values), summary(b_values)
            spread = a[2] - a[1]
            if len(a_values) < 2:
                verdict = "(one seed)"
            else:
                ok = abs(b[0] - a[0]) <= spread
                moved |= not ok
                verdict = "yes" if ok else f"NO (moved {100 * (b[0] - a[0]):+.2f} points, spread {100 * spread:.2f})"
            welch_col = welch_text(a_values, b_values)
            print(f"{name:<{width}} {what:<6} {fmt(a):>28} {fmt(b):>28} {welch_col:>16}  {verdict}")
    for title, root, out in (("OLD", sys.argv[1], old_out), ("NEW", sys.argv[2], new_out)):
        if out:
            print(f"\nleft out of {title} ({root}), not counted:")
            for run, why in out:
                print(f"  {run:<40} {why}")
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
