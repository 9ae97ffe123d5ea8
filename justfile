# Recipes for the everyday loop. `just --list` shows them.

default_experiment := "experiments/fashion-mlp.yaml"

# Train every run of the experiment that is not finished yet, then write its report.
sweep experiment=default_experiment *args="":
    cargo run --release -p degrade -- sweep {{experiment}} {{args}}

# Render the report again from results/ (never trains).
report experiment=default_experiment *args="":
    cargo run --release -p degrade -- report {{experiment}} {{args}}

# List the runs the experiment expands to, and which are done.
plan experiment=default_experiment:
    cargo run --release -p degrade -- plan {{experiment}}

# Print a network's layers and parameter count, e.g. `just arch plain 56 --width 8`.
arch family depth *args="":
    cargo run --release -p degrade -- arch {{family}} {{depth}} {{args}}

# The test suite (the same command CI runs).
test:
    cargo test --workspace --release

# Training-step benchmark at batch 128 (the MLP d64 w64; CIFAR-style plain-20, plain-56, residual-56 at widths 4/8/16/32/64), one and two threads, with GFLOP/s against the FMA peak measured on the spot; `just bench mlp` or `just bench w16` picks models by name. Appends JSON lines to target/bench/candle.jsonl.
bench *filter="":
    mkdir -p target/bench
    RAYON_NUM_THREADS=1 cargo bench -p runner --bench train_step -- --out {{justfile_directory()}}/target/bench/candle.jsonl {{filter}}
    RAYON_NUM_THREADS=2 cargo bench -p runner --bench train_step -- --out {{justfile_directory()}}/target/bench/candle.jsonl {{filter}}

# Candle and PyTorch (bench/torch_reference.py in .venv-torch, made by `just torch-env`) on the same models, 1 and 2 threads, alternating model by model for 3 rounds, then the ratio table (medians); `just bench-compare --models mlp-plain-d64-w64 --rounds 5` for some.
bench-compare *args="":
    python3 bench/side_by_side.py {{args}}

# A Python environment with PyTorch for the reference (several GB: pip's default wheel carries CUDA libraries).
torch-env:
    python3 -m venv .venv-torch
    .venv-torch/bin/pip install -r bench/requirements.txt

# Formatting and lints, as CI-clean as the tests.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --release -- -D warnings

# Fuzz one target (idx, cifar or experiment_yaml) for SECONDS, with the nightly toolchain.
fuzz target seconds="600":
    mkdir -p fuzz/corpus/{{target}}
    cargo +nightly fuzz run -O {{target}} fuzz/corpus/{{target}} fuzz/seeds/{{target}} -- -max_total_time={{seconds}} -max_len=8192
