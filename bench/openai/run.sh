#!/usr/bin/env bash
# One workload, two load generators: guidellm (PyPI, OpenAI HTTP API) and moe-bench (ours, gRPC), against one moed
# serving fortune-moe on the CPU; prints one table (output tok/s, TTFT p50/p99, ITL p50) for bench/RESULTS.md.
#   bench/openai/run.sh            from the repository root, after ./moed.sh build (needs build/moed, build/moe-bench)
# Environment: MOED_BUILD_DIR (build), OUT (bench/out/openai), PROMPT_LEN (32), OUTPUT_LEN (128),
#   CONCURRENCY ("1 8 32"); each level sends max(16, 4 × concurrency) requests, greedy, ignore_eos.
# guidellm lives in bench/openai/.venv (git-ignored), made here on first use; it is never in the tests' venv.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$(pwd)"
BUILD_DIR="${MOED_BUILD_DIR:-$ROOT/build}"
OUT="${OUT:-$ROOT/bench/out/openai}"
PROMPT_LEN="${PROMPT_LEN:-32}"
OUTPUT_LEN="${OUTPUT_LEN:-128}"
CONCURRENCY="${CONCURRENCY:-1 8 32}"
MODEL_DIR="$ROOT/models/fortune-moe"
VENV="$ROOT/bench/openai/.venv"
# 0.3.1 is the last guidellm whose requirements leave out torch (0.4 on loads its data through torch's DataLoader,
# which from PyPI brings ~5 GB of CUDA wheels); its OpenAI backend streams /v1/completions with
# stream_options.include_usage and sends ignore_eos + max_tokens when the data fixes the output length.
# bench/openai/requirements.txt pins it and everything it resolved to.

export HF_HUB_OFFLINE=1  # guidellm's tokenizer comes from the model directory, never from a hub
log() { printf '[bench/openai] %s\n' "$*" >&2; }

for exe in moed moe-bench; do
  [ -x "$BUILD_DIR/$exe" ] || { log "$BUILD_DIR/$exe is not built (./moed.sh build)"; exit 2; }
done
if [ ! -x "$VENV/bin/guidellm" ]; then
  log "installing guidellm (bench/openai/requirements.txt) into bench/openai/.venv"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/bench/openai/requirements.txt"
fi
mkdir -p "$OUT"
rm -f "$OUT"/guidellm-c* "$OUT"/moe-bench-c*
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"

# moed on free ports; the startup line names them ("… on H:P, metrics on H:P, http on H:P").
log "starting moed (fortune-moe, CPU backend) → $OUT/moed.log"
"$BUILD_DIR/moed" --model "$MODEL_DIR" --backend cpu --host 127.0.0.1 --port 0 --metrics-port 0 --http-port -1 \
  >"$OUT/moed.log" 2>&1 &
MOED_PID=$!
trap 'kill "$MOED_PID" 2>/dev/null; wait "$MOED_PID" 2>/dev/null || true' EXIT
line=""
for _ in $(seq 1 600); do
  line="$(grep -m1 'moed: serving .*, http on ' "$OUT/moed.log" || true)"
  [ -n "$line" ] && break
  kill -0 "$MOED_PID" 2>/dev/null || { log "moed exited:"; cat "$OUT/moed.log" >&2; exit 1; }
  sleep 0.1
done
[ -n "$line" ] || { log "moed did not report its ports in 60 s"; exit 1; }
GRPC_ADDR="$(sed -E 's/.*\) on ([^ ,]+), metrics on .*/\1/' <<<"$line")"
HTTP_ADDR="$(sed -E 's/.*, http on ([^ ,]+).*/\1/' <<<"$line")"
log "moed: gRPC $GRPC_ADDR, HTTP $HTTP_ADDR"

# CPU seconds moed has used so far (user + system, from /proc).
moed_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$MOED_PID/stat"; }

# run_timed NAME CMD…: runs CMD with stdout to $OUT/NAME.out, and writes $OUT/NAME.cpu as "<load generator's CPU s>
# <moed's CPU s>" over the run (the generator's own processes and children, from /usr/bin/time).
run_timed() {
  local name="$1" before
  shift
  before="$(moed_cpu)"
  /usr/bin/time -f "%U %S" -o "$OUT/$name.time" "$@" >"$OUT/$name.out" 2>"$OUT/$name.log" ||
    { log "$name failed:"; tail -30 "$OUT/$name.log" >&2; exit 1; }
  echo "$(awk '{ printf "%.2f", $1 + $2 }' "$OUT/$name.time") $(awk -v a="$before" -v b="$(moed_cpu)" \
    'BEGIN { printf "%.2f", b - a }')" >"$OUT/$name.cpu"
}

for c in $CONCURRENCY; do
  n=$(( 4 * c > 16 ? 4 * c : 16 ))
  log "guidellm: concurrency $c, $n requests"
  run_timed "guidellm-c$c" "$VENV/bin/guidellm" benchmark --target "http://$HTTP_ADDR" \
    --backend-type openai_http --backend-args '{"extra_body": {"temperature": 0}}' --processor "$MODEL_DIR" \
    --data "prompt_tokens=$PROMPT_LEN,output_tokens=$OUTPUT_LEN" --rate-type concurrent --rate "$c" \
    --max-requests "$n" --random-seed 42 --disable-progress --disable-console-outputs \
    --output-path "$OUT/guidellm-c$c.json"
  log "moe-bench: concurrency $c, $n requests"
  run_timed "moe-bench-c$c" "$BUILD_DIR/moe-bench" --addr "$GRPC_ADDR" --concurrency "$c" --num-requests "$n" \
    --prompt-len "$PROMPT_LEN" --output-len "$OUTPUT_LEN" --ignore-eos --temperature 0 --seed 42
  mv "$OUT/moe-bench-c$c.out" "$OUT/moe-bench-c$c.json"
done

{
  python3 "$ROOT/bench/openai/summarize.py" "$OUT" $CONCURRENCY
  echo
  echo "Load average (1/5/15 min) before: $load_before; after: $(cut -d' ' -f1-3 /proc/loadavg)."
} | tee "$OUT/table.md"
