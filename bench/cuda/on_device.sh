#!/usr/bin/env bash
# One device run that tells everything, within 8 minutes on an H100. From the repository root, with .devbundle
# carried (bench/cuda/pack.sh):   bash bench/cuda/on_device.sh              (on the lent GPU machine)
#                                 bash bench/cuda/on_device.sh --rehearse   (here and in CI: packs first, runs each
#                                     step that has a CPU meaning with --backend cpu, marks GPU-only steps "not run:
#                                     no device", then checks the output files, the exit status and the budgets)
# Steps, each under its own time budget, each failure recorded and the run going on:
#   a device: nvidia-smi, driver and CUDA versions     e fortune_text: moe-run greedy text == golden
#   b gpu_tests: moed_gpu_tests, MOED_REQUIRE_GPU=1   f moe_layer_bench: MoE layer vs floors (3 shapes)
#   c memcheck: op tests under compute-sanitizer      g step_bench: backend decode/prefill vs floors
#   d golden_parity: every fixture + fortune-moe      h serving: moed on synthetic:olmoe-1b-7b + moe-bench c=1/16/64
#                                                       and one 2048-token prefill
#   i expert_cache: moed on the Mixtral-8x7B geometry (4 layers) with a partial hot-expert cache, imposed Zipf
#     routing, c=1/16, prefetch on/off, vs the floor measured in the run (bench/cuda/expert_cache_bench.py)
# Writes to $OUT (default ./device-out): summary.json, summary.md (a table for bench/RESULTS.md), logs.tar.xz.
# Exit status: non-zero when a correctness step (a–e, h) failed; rehearsal: also when a check failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SELF="$ROOT/bench/cuda/on_device.sh"
export MOED_SOURCE_DIR="$ROOT"  # the tests find models/ and tests/fixtures in this copy of the tree

# One step, run in a child of this script under `timeout` (see the dispatch at the bottom).
# Environment from the parent: MODE (device|rehearse), B (bundle runner), WORK (figures/ and logs/).
step_device() {
  nvidia-smi
  nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap,clocks.max.sm --format=csv
  (command -v nvcc >/dev/null && nvcc --version) || true
  python3 - "$WORK/figures/device.json" <<'PY'
import json, subprocess, sys
q = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version,compute_cap",
                    "--format=csv,noheader"], capture_output=True, text=True, check=True).stdout.strip().split(", ")
head = subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout
cuda = head.split("CUDA Version:")[1].split()[0] if "CUDA Version:" in head else None
json.dump({"name": q[0], "memory": q[1], "driver": q[2], "compute_cap": q[3], "driver_cuda": cuda},
          open(sys.argv[1], "w"))
PY
}

step_gpu_tests() {
  # No device is a failure here, never a skip.
  MOED_REQUIRE_GPU=1 "$B" moed_gpu_tests --gtest_output="json:$WORK/figures/gpu_tests.json"
}

step_gpu_tests_must_fail() {
  # Rehearsal: with no device, MOED_REQUIRE_GPU=1 must make the GPU tests fail (a skip would read as green).
  if MOED_REQUIRE_GPU=1 "$B" moed_gpu_tests; then
    echo "MOED_REQUIRE_GPU=1 moed_gpu_tests passed without a device: the device run could look green with no GPU"
    return 1
  fi
  echo "ok: MOED_REQUIRE_GPU=1 moed_gpu_tests failed without a device, as it must"
}

step_memcheck() {
  compute-sanitizer --tool memcheck --error-exitcode 3 --target-processes all \
    "$B" moed_gpu_tests \
    --gtest_filter='CudaOps*:CudaMoeOps*:CudaGroupedGemm*:CudaSampling/*/Radix:CudaFlashDecodeTest.Light:CudaFlashPrefillTest.Light:-CudaMoeOpsTest.GroupedMoeMatchesCpuAndThePerExpertPath:CudaMoeOpsTest.GroupedMoeTallTilesMatchCpuAndThePerExpertPath'
}

step_golden_parity() {
  python3 "$ROOT/bench/cuda/golden_parity.py" --moe-run "$B moe-run" --backend "$BACKEND" \
    --json "$WORK/figures/golden_parity.json" --root "$ROOT"
}

step_fortune_text() {
  python3 - "$B" "$BACKEND" "$ROOT" "$WORK/figures/fortune_text.json" <<'PY'
import json, subprocess, sys
runner, backend, root, out = sys.argv[1:]
golden = json.load(open(f"{root}/models/fortune-moe/golden.json"))["cases"]
rows = []
for case in golden:
    p = subprocess.run([runner, "moe-run", "--model", f"{root}/models/fortune-moe", "--backend", backend,
                        "--prompt", case["prompt"], "--max-tokens", str(len(case["greedy_ids"])),
                        "--temperature", "0", "--json"], capture_output=True, text=True, timeout=120)
    got = json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else {}
    ok = got.get("text") == case["greedy_text"] and got.get("output_ids") == case["greedy_ids"]
    rows.append({"prompt": case["prompt"], "pass": ok, "text": got.get("text"), "want": case["greedy_text"],
                 "error": p.stderr.strip()[-300:] if p.returncode else None})
    print(("ok   " if ok else "FAIL ") + repr(case["prompt"]) + " -> " + repr(got.get("text")))
json.dump({"pass": all(r["pass"] for r in rows), "cases": rows}, open(out, "w"), indent=1)
sys.exit(0 if all(r["pass"] for r in rows) else 1)
PY
}

step_moe_layer_bench() {
  "$B" gpu-moe-layer-bench --models mixtral-8x7b,olmoe-1b-7b,qwen3-30b-a3b --tokens 1,16,64,512,16384 \
    --iters 20 --json "$WORK/figures/moe_layer_bench.json"
}

step_step_bench() {
  "$B" gpu-backend-step-bench --models olmoe-1b-7b,qwen3-30b-a3b --batches 1,16,64 --context 512 \
    --prefill 2048 --steps 10 --json "$WORK/figures/step_bench.json"
}

step_expert_cache() {
  # Device: the Mixtral-8x7B geometry, 4 of 32 layers, the resident fraction the full model would get here.
  # Rehearsal: the small variant on the CPU tier (no imposed routing, no floor): the plumbing only.
  python3 "$ROOT/bench/cuda/expert_cache_bench.py" --runner "$B" --backend "$BACKEND" --layers 4 --zipf 1.0 \
    --output-len 32 --json "$WORK/figures/expert_cache.json" --logs "$WORK/logs"
}

# Starts moed in the background on free ports and waits until it serves, giving up at once if it dies. Sets
# MOED_PID and MOED_ADDR (host:port of gRPC). $1: log file; the rest: moed flags.
start_moed() {
  local log=$1; shift
  "$B" moed --host 127.0.0.1 --port 0 --metrics-port 0 "$@" >"$log" 2>&1 &
  MOED_PID=$!
  local line
  for _ in $(seq 1200); do
    if ! kill -0 "$MOED_PID" 2>/dev/null; then
      wait "$MOED_PID" || true
      echo "moed exited before serving:"; tail -5 "$log"
      return 1
    fi
    line=$(grep -m1 "serving" "$log" || true)
    if [ -n "$line" ]; then
      MOED_ADDR=$(echo "$line" | sed -E 's/.* on ([^,]+), metrics on .*/\1/')
      return 0
    fi
    sleep 0.25
  done
  kill -KILL "$MOED_PID" 2>/dev/null || true
  echo "moed did not start serving within 300 s"
  return 1
}

step_serving() {
  # On the device: the full OLMoE-1B-7B shape, with the built-in model's tokenizer (its ids fit the vocabulary).
  # Rehearsal: the small variant (vocab 512, no tokenizer: prompts as ids).
  local model="synthetic:olmoe-1b-7b" out_len=128 prefill=2048 tokenizer=(--tokenizer "$ROOT/models/fortune-moe")
  if [ "$MODE" = rehearse ]; then model="synthetic:olmoe-1b-7b-small" out_len=16 prefill=200 tokenizer=(); fi
  # The wait loop must give up at once when moed dies (an unknown model exits 2 immediately).
  local t0=$SECONDS
  if start_moed "$WORK/logs/moed_bad_model.log" --model synthetic:no-such-model --backend "$BACKEND"; then
    echo "moed started on a model that does not exist"; return 1
  fi
  [ $((SECONDS - t0)) -lt 20 ] || { echo "the wait loop took $((SECONDS - t0)) s to see moed die"; return 1; }

  local rc=0
  start_moed "$WORK/logs/moed_serving.log" --model "$model" --backend "$BACKEND" "${tokenizer[@]}" \
    --max-running-seqs 64 || return 1
  echo "moed $MOED_PID serving $model on $MOED_ADDR"
  for c in 1 16 64; do
    "$B" moe-bench --addr "$MOED_ADDR" --concurrency $c --num-requests $((c * 2)) --prompt-len 128 \
      --output-len $out_len --ignore-eos --temperature 0 >"$WORK/figures/serving_c$c.json" || rc=1
  done
  "$B" moe-bench --addr "$MOED_ADDR" --concurrency 1 --num-requests 2 --prompt-len $prefill --output-len 1 \
    --temperature 0 >"$WORK/figures/serving_prefill.json" || rc=1
  kill -TERM "$MOED_PID"
  wait "$MOED_PID" || { echo "moed exited non-zero after SIGTERM"; rc=1; }
  return $rc
}

# name | kind (correctness|performance) | budget on device (s) | budget in rehearsal (s) | runs in rehearsal as
STEPS=(
  "device|correctness|5|0|not run: no device"
  "gpu_tests|correctness|60|60|gpu_tests_must_fail"
  "memcheck|correctness|70|0|not run: no device"
  "golden_parity|correctness|35|180|golden_parity"
  "fortune_text|correctness|15|60|fortune_text"
  "moe_layer_bench|performance|60|0|not run: no device"
  "step_bench|performance|90|0|not run: no device"
  "serving|correctness|95|240|serving"
  "expert_cache|performance|50|120|expert_cache"
)

run_steps() {
  local entry name kind dev_budget reh_budget reh budget fn t0 rc status
  for entry in "${STEPS[@]}"; do
    IFS='|' read -r name kind dev_budget reh_budget reh <<<"$entry"
    budget=$dev_budget fn=$name
    if [ "$MODE" = rehearse ]; then
      if [[ "$reh" == "not run:"* ]]; then
        printf '{"step":"%s","kind":"%s","status":"not run","reason":"%s","seconds":0,"budget_s":%s}\n' \
          "$name" "$kind" "${reh#not run: }" "$dev_budget" >>"$WORK/steps.jsonl"
        echo "== $name: ${reh}"
        continue
      fi
      budget=$reh_budget fn=$reh
    fi
    echo "== $name (budget ${budget} s)"
    t0=$(date +%s.%N) rc=0
    timeout --kill-after=5 "$budget" bash "$SELF" --run-step "$fn" >"$WORK/logs/$name.log" 2>&1 || rc=$?
    local secs
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
    status=pass
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then status=timeout; elif [ $rc -ne 0 ]; then status=fail; fi
    printf '{"step":"%s","kind":"%s","status":"%s","rc":%d,"seconds":%s,"budget_s":%s}\n' \
      "$name" "$kind" "$status" "$rc" "$secs" "$budget" >>"$WORK/steps.jsonl"
    echo "   $status in ${secs} s (rc $rc)"
    tail -3 "$WORK/logs/$name.log" | sed 's/^/   | /'
  done
}

main() {
  MODE=device
  [ "${1:-}" = "--rehearse" ] && MODE=rehearse
  local default_out="$ROOT/device-out"
  [ "$MODE" = rehearse ] && default_out="$ROOT/build/rehearsal-out"
  OUT="${OUT:-$default_out}"
  mkdir -p "$OUT"
  rm -f "$OUT"/summary.json "$OUT"/summary.md "$OUT"/logs.tar.xz
  WORK=$(mktemp -d /tmp/moed-device.XXXXXX)
  mkdir -p "$WORK/logs" "$WORK/figures"
  BACKEND=cuda
  [ "$MODE" = rehearse ] && BACKEND=cpu
  local started=$SECONDS

  if [ "$MODE" = rehearse ]; then
    echo "== pack (rehearsal)"
    bash "$ROOT/bench/cuda/pack.sh" 2>&1 | tee "$WORK/logs/pack.log"
  fi
  [ -f "$ROOT/.devbundle/bundle.tar.xz" ] || { echo "no .devbundle/bundle.tar.xz: run bench/cuda/pack.sh here and carry .devbundle" >&2; exit 2; }
  tar -C "$WORK" -xJf "$ROOT/.devbundle/bundle.tar.xz"
  cp "$ROOT/.devbundle/manifest.json" "$WORK/figures/manifest.json"
  B="$WORK/bundle/run"
  export MODE WORK B BACKEND

  run_steps
  local rc=0
  python3 "$ROOT/bench/cuda/device_summary.py" --work "$WORK" --out "$OUT" --mode "$MODE" \
    --elapsed $((SECONDS - started)) || rc=$?
  tar -C "$WORK" -cJf "$OUT/logs.tar.xz" logs figures
  if [ "$MODE" = rehearse ]; then
    python3 "$ROOT/bench/cuda/device_summary.py" --check "$OUT" --expect-exit "$rc" || rc=1
  fi
  rm -rf "$WORK"
  echo "== summary: $OUT/summary.md (exit $rc)"
  cat "$OUT/summary.md"
  return $rc
}

if [ "${1:-}" = "--run-step" ]; then
  "step_$2"
else
  main "$@"
fi
