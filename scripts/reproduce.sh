#!/usr/bin/env bash
# From a fresh machine to reports/fashion-mlp/index.html in one command.
# Installs what the sweep needs and is missing (the Fashion-MNIST data, `just`), then
# runs `just sweep`. Extra arguments go to the sweep (e.g. another experiment file).
set -euo pipefail
cd "$(dirname "$0")/.."

have_data() {
  [ -n "${FASHION_MNIST_DIR:-}" ] && return 0
  ls data/fashion-mnist/train-images-idx3-ubyte* >/dev/null 2>&1 && return 0
  ls /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte* >/dev/null 2>&1
}

if ! have_data; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "Installing Fashion-MNIST (Debian package dataset-fashion-mnist)..."
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist \
      || echo "apt-get could not install it; the sweep will try to download the files instead."
  else
    echo "No apt-get here; the sweep will download Fashion-MNIST into ./data instead."
  fi
fi

if ! command -v just >/dev/null 2>&1; then
  echo "Installing just..."
  python3 -m pip install --quiet --user rust-just 2>/dev/null \
    || cargo install --quiet just --locked \
    || true
  export PATH="$HOME/.local/bin:$HOME/.cargo/bin:$PATH"
fi

if command -v just >/dev/null 2>&1; then
  exec just sweep "$@"
else
  echo "just is not available; running the sweep with cargo directly."
  exec cargo run --release -p degrade -- sweep "$@"
fi
