#!/usr/bin/env bash
# Runs on the lent GPU machine, from the repository root, with .devbundle carried (bench/cuda/pack.sh):
# the GPU tests, CUDA-vs-golden parity through moe-run, the MoE-layer and backend-step benchmarks, and moed +
# moe-bench end to end. Everything goes to $OUT (or ./device-out) as logs and JSON.
set -uo pipefail
OUT="${OUT:-device-out}"; mkdir -p "$OUT"
B=.devbundle/run
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"

echo "== GPU tests"; $B moed_gpu_tests 2>&1 | tee "$OUT/gpu_tests.log" | tail -5

echo "== moe-run --backend cuda on fortune-moe (golden text)"
$B moe-run --model models/fortune-moe --prompt "Never trust a computer" --max-tokens 32 --temperature 0 --backend cuda \
  --json | tee "$OUT/fortune_cuda.json"

echo "== MoE layer vs floor"
$B gpu-moe-layer-bench 2>&1 | tee "$OUT/moe_layer_bench.txt"
echo "== backend step vs floor"
$B gpu-backend-step-bench 2>&1 | tee "$OUT/backend_step_bench.txt"

for model in synthetic:olmoe-1b-7b synthetic:qwen3-30b-a3b; do
  name=${model#synthetic:}
  echo "== moed + moe-bench on $model"
  $B moed --model "$model" --backend cuda --host 127.0.0.1 --port 50151 --metrics-port 9451 >"$OUT/moed_$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do grep -q "serving" "$OUT/moed_$name.log" && break; sleep 0.5; done
  for c in 1 16 64; do
    $B moe-bench --addr 127.0.0.1:50151 --concurrency $c --num-requests $((c * 4)) --prompt-len 128 \
      --output-len 256 --ignore-eos --temperature 0 >"$OUT/bench_${name}_c$c.json" 2>&1
  done
  $B moe-bench --addr 127.0.0.1:50151 --concurrency 1 --num-requests 4 --prompt-len 2048 --output-len 1 \
    --temperature 0 >"$OUT/bench_${name}_prefill2048.json" 2>&1
  kill -TERM $pid; wait $pid
done
ls -la "$OUT"
