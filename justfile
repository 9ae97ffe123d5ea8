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

# Training-step benchmark at batch 128, one thread: MLPs and CIFAR-style nets (`just bench mlp` or `just bench cifar` for one kind).
bench *args="":
    RAYON_NUM_THREADS=1 cargo bench -p runner --bench train_step -- {{args}}

# Formatting and lints, as CI-clean as the tests.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --release -- -D warnings

# Fuzz one target (idx, cifar or experiment_yaml) for SECONDS, with the nightly toolchain.
fuzz target seconds="600":
    mkdir -p fuzz/corpus/{{target}}
    cargo +nightly fuzz run -O {{target}} fuzz/corpus/{{target}} fuzz/seeds/{{target}} -- -max_total_time={{seconds}} -max_len=8192
