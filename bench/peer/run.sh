#!/usr/bin/env bash
# moed against llama.cpp on this machine's CPU, same cores, same thread count, same bf16 weights, interleaved:
#   1. builds llama-bench and llama-server from the llama.cpp that PyPI's llama-cpp-python sdist vendors (pip
#      download, no wheel; the server without its web UI, which would be downloaded);
#   2. writes a ~224M Mixtral-shape model (bench/peer/make_mixtral.py) as a checkpoint directory and a bf16 GGUF,
#      and fortune-moe as a bf16 GGUF;
#   3. runs bench/peer/compare.py: moed fast, fast-fp32 and reference and llama.cpp, batch-1 decode and a 512-token
#      prefill — at one thread rated per CPU-second (the table in bench/RESULTS.md; robust on a shared machine),
#      then at two threads by the wall clock;
#   4. the serving rows at two threads, then at one (then fast-fp32 at one): moe-bench against moed and
#      bench/peer/serve.py's client against llama-server, concurrency 1, 8 and 32, the same prompt token ids and
#      max tokens (compare.py --llama-server).
# Usage: bench/peer/run.sh [WORK_DIR (default /tmp/moed-peer)] [ROUNDS (default 3)]
# Needs: build/cpu-decode-bench, build/moed, build/moe-bench (ninja -C build cpu-decode-bench moed moe-bench), the
# test venv's python (numpy), cmake, a C++ compiler.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${1:-/tmp/moed-peer}"
ROUNDS="${2:-3}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"  # e.g. PYTHON=/work/main/.venv/bin/python from a worktree
[ -x "$PY" ] || PY=python3
LLAMA_PY_VERSION="${LLAMA_PY_VERSION:-0.3.36}"
mkdir -p "$WORK"

SRC="$WORK/llama_cpp_python-$LLAMA_PY_VERSION/vendor/llama.cpp"
if [ ! -x "$SRC/build/bin/llama-bench" ] || [ ! -x "$SRC/build/bin/llama-server" ]; then
  if [ ! -d "$SRC" ]; then
    "$PY" -m pip download --no-deps --no-binary :all: "llama-cpp-python==$LLAMA_PY_VERSION" -d "$WORK"
    tar xzf "$WORK/llama_cpp_python-$LLAMA_PY_VERSION.tar.gz" -C "$WORK"
  fi
  cmake -S "$SRC" -B "$SRC/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF -DGGML_NATIVE=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
  cmake --build "$SRC/build" --target llama-bench llama-server -j"$(nproc)"
fi

[ -f "$WORK/m224/model-bf16.gguf" ] || "$PY" "$ROOT/bench/peer/make_mixtral.py" --out "$WORK/m224" --gguf-py "$SRC/gguf-py"
[ -f "$WORK/fortune/model-bf16.gguf" ] || "$PY" "$ROOT/bench/peer/make_mixtral.py" --out "$WORK/fortune" \
  --gguf-py "$SRC/gguf-py" --from-hf "$ROOT/models/fortune-moe"

cd "$ROOT"
MODELS=(--model "fortune-moe=models/fortune-moe:$WORK/fortune/model-bf16.gguf"
        --model "mixtral-224m=$WORK/m224/hf:$WORK/m224/model-bf16.gguf")
"$PY" bench/peer/compare.py --build build --llama-bench "$SRC/build/bin/llama-bench" --rounds "$ROUNDS" \
  --threads 1 --cpu-time --moed-kernels fast,fast-fp32,reference "${MODELS[@]}"
"$PY" bench/peer/compare.py --build build --llama-bench "$SRC/build/bin/llama-bench" --rounds "$ROUNDS" \
  --threads 2 "${MODELS[@]}"
for THREADS in 2 1; do
  "$PY" bench/peer/compare.py --build build --llama-server "$SRC/build/bin/llama-server" --skip-kernels \
    --rounds "$ROUNDS" --threads "$THREADS" --serve-concurrency 1,8,32 --serve-min-requests 16 "${MODELS[@]}"
done
# --cpu-kernels fast-fp32 (fp32 activations in the routed experts too) in the serving rows, one thread.
"$PY" bench/peer/compare.py --build build --llama-server "$SRC/build/bin/llama-server" --skip-kernels \
  --rounds "$ROUNDS" --threads 1 --serve-kernels fast-fp32 --serve-concurrency 1,8,32 --serve-min-requests 16 \
  "${MODELS[@]}"
