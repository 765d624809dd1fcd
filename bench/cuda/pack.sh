#!/usr/bin/env bash
# Builds the GPU test binary, the GPU benchmarks, moed, moe-run and moe-bench for sm_90 here and packs them with the
# shared libraries a bare CUDA machine lacks into .devbundle/ (gitignored), next to bench/cuda/on_device.sh.
#   bench/cuda/pack.sh            then, with the device tool:  run(command="bash bench/cuda/on_device.sh", carry=[".devbundle"])
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR="${MOED_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMOED_CUDA=ON >/dev/null
ninja -C "$BUILD_DIR" moed moe-run moe-bench moed_gpu_tests gpu-moe-layer-bench gpu-backend-step-bench
rm -rf .devbundle
../shared/tools/device-bundle .devbundle "$BUILD_DIR"/{moed,moe-run,moe-bench,gpu-moe-layer-bench,gpu-backend-step-bench} \
  "$BUILD_DIR"/tests/moed_gpu_tests
