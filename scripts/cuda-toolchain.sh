#!/usr/bin/env bash
# A CUDA 13 toolchain for `--features cuda` on a machine with no GPU and no system CUDA,
# from NVIDIA's wheels on PyPI (they ship a real nvcc, the headers and the runtime).
#
#   . "$(bash scripts/cuda-toolchain.sh)"          # nvcc and headers: enough for check/clippy
#   . "$(bash scripts/cuda-toolchain.sh --link)"   # also the libraries a linked binary needs
#
# The script installs into $DEGRADE_CUDA_DIR (default /var/cache/degrade/cuda13, outside the
# clone, so CI may keep it between runs), prints the path of an env file to source, and is
# idempotent: a second call with the same versions installs nothing.
#
# Why each piece:
# - candle-kernels' build script compiles its .cu files to PTX with nvcc even for
#   `cargo check`, so check and clippy need nvcc and the headers, but no libraries.
# - Candle enables cudarc's `dynamic-linking`: a linked binary names libcuda, libnvrtc,
#   libcurand, libcublas, libcublasLt and libcudart. The wheels carry all but libcuda (the
#   driver, which comes with a GPU's driver install) and name theirs `libX.so.N` only, so
#   `--link` adds the unversioned names the linker looks for and a link stub for the
#   driver: a shared library with the soname `libcuda.so.1` that defines every driver-API
#   function cudarc declares (as the toolkit's own `lib/stubs/libcuda.so` does). The stub is
#   never loaded: at run time the GPU machine's real `libcuda.so.1` is.
set -euo pipefail

# CUDA 13.0, the oldest 13.x: the PTX nvcc writes loads on any driver of 13.0 or newer
# (a driver refuses PTX newer than itself), and cudarc 0.19.10 has bindings for it. cudarc
# is told the version (CUDARC_CUDA_VERSION below): there is no driver here to ask.
cuda_version=13.0.88
cccl_version=13.0.85
cublas_version=13.0.2.14
curand_version=10.4.0.35

link=0
for arg in "$@"; do
  case "$arg" in
    --link) link=1 ;;
    *) echo "usage: $0 [--link]" >&2; exit 2 ;;
  esac
done

root="${DEGRADE_CUDA_DIR:-/var/cache/degrade/cuda13}"
venv="$root/venv"
py="$venv/bin/python"
mkdir -p "$root"
[ -x "$py" ] || python3 -m venv "$venv" >&2

wheels=(
  "nvidia-cuda-nvcc==$cuda_version" "nvidia-cuda-runtime==$cuda_version"
  "nvidia-cuda-crt==$cuda_version" "nvidia-nvvm==$cuda_version"
  "nvidia-cuda-cccl==$cccl_version"
)
if [ "$link" = 1 ]; then
  wheels+=("nvidia-cuda-nvrtc==$cuda_version" "nvidia-cublas==$cublas_version"
    "nvidia-curand==$curand_version")
fi
# pip answers "already satisfied" without a download when the versions are there.
"$py" -m pip install --quiet --disable-pip-version-check "${wheels[@]}" >&2

cu13=$("$py" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
[ -x "$cu13/bin/nvcc" ] || { echo "$0: no nvcc under $cu13" >&2; exit 1; }

if [ "$link" = 1 ]; then
  lib="$cu13/lib"
  # The unversioned names `-lcublas` etc. look for.
  for so in "$lib"/lib*.so.*; do
    base="${so##*/}"
    plain="$lib/${base%%.so.*}.so"
    [ -e "$plain" ] || ln -s "$base" "$plain"
  done
  stubs="$root/stubs"
  if [ ! -s "$stubs/libcuda.so" ]; then
    # The driver functions cudarc binds: its bindgen output declares each one as
    # `fn cuName(` (its safe wrapper and the extern item). Defining a few more than a
    # build uses is harmless.
    cudarc=$(cargo metadata --format-version 1 --all-features --manifest-path "$(dirname "$0")/../Cargo.toml" \
      | "$py" -c 'import json, sys
for p in json.load(sys.stdin)["packages"]:
    if p["name"] == "cudarc":
        print(p["manifest_path"].rsplit("/", 1)[0]); break')
    [ -n "$cudarc" ] || { echo "$0: cudarc is not in Cargo.lock" >&2; exit 1; }
    mkdir -p "$stubs"
    grep -ho 'fn cu[A-Z][A-Za-z0-9_]*(' "$cudarc"/src/driver/sys/*.rs \
      | sed 's/fn \(.*\)(/\1/' | sort -u \
      | sed 's/.*/void &(void) {}/' > "$stubs/libcuda.c"
    [ -s "$stubs/libcuda.c" ] || { echo "$0: found no driver functions in $cudarc" >&2; exit 1; }
    cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/libcuda.c"
  fi
fi

env_file="$root/env.sh"
{
  echo "# Written by scripts/cuda-toolchain.sh; source it before cargo ... --features cuda."
  echo "export CUDA_ROOT='$cu13' CUDA_HOME='$cu13' CUDA_PATH='$cu13'"
  echo "export PATH='$cu13/bin':\"\$PATH\""
  # No GPU to ask: the kernels are compiled for the H200 of the device machine (sm_90).
  echo "export CUDA_COMPUTE_CAP=\"\${CUDA_COMPUTE_CAP:-90}\""
  echo "export CUDARC_CUDA_VERSION=13000"
  # candle-kernels compiles its .cu files on half the cores unless told: all of them.
  echo "export CUDAFORGE_THREADS=\"\${CUDAFORGE_THREADS:-\$(nproc)}\""
  if [ "$link" = 1 ]; then
    echo "export LIBRARY_PATH='$cu13/lib:$root/stubs'\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
  fi
} > "$env_file"
echo "$env_file"
