"""Reads a sweep's metrics.parquet files with pyarrow, as a user outside this tool would.

usage: read_parquet.py RESULTS_DIR RUNS EPOCHS
Checks the documented columns, their types and the row counts; prints one line.
"""
import glob
import sys

import pyarrow.parquet as pq

COLUMNS = {
    "experiment": "string", "family": "string", "depth": "uint32", "seed": "uint64",
    "config_hash": "string", "epoch": "uint32", "train_error": "double",
    "train_loss": "double", "test_error": "double", "test_loss": "double",
    "lr": "double", "wall_s": "double",
}

root, runs, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
files = sorted(glob.glob(f"{root}/*/metrics.parquet"))
assert len(files) == runs, f"expected {runs} files, found {len(files)}"
total = 0
for path in files:
    table = pq.read_table(path)
    types = {f.name: str(f.type) for f in table.schema}
    for name, kind in COLUMNS.items():
        # polars writes strings as Arrow string views; older readers see plain UTF-8.
        accepted = {"string", "large_string", "string_view"} if kind == "string" else {kind}
        assert types.get(name) in accepted, \
            f"{path}: column {name} is {types.get(name)}, expected {kind}"
    assert table.num_rows == epochs, f"{path}: {table.num_rows} rows, expected {epochs}"
    assert table.column("epoch").to_pylist() == list(range(1, epochs + 1))
    for column in ("train_error", "test_error"):
        assert all(0.0 <= v <= 1.0 for v in table.column(column).to_pylist()), column
    total += table.num_rows
print(f"pyarrow read {len(files)} files, {total} rows")
