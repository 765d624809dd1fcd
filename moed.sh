#!/usr/bin/env bash
# moed.sh — one entry point for users and CI: install what is missing, build, serve, test.
#   ./moed.sh serve [moed flags…]   set up, build, and serve the built-in model (models/fortune-moe)
#   ./moed.sh test                  set up, build, and run every test (what CI runs), then the GPU harness's
#                                   rehearsal (bench/cuda/on_device.sh --rehearse) when the build has CUDA
#   ./moed.sh setup | build         the individual steps
#   ./moed.sh test-cpp              set up, build, and run ctest only (CI runs it with MOED_CUDA=OFF too)
set -euo pipefail
cd "$(dirname "$0")"
ROOT="$(pwd)"
BUILD_DIR="${MOED_BUILD_DIR:-$ROOT/build}"
VENV="$ROOT/.venv"
JOBS="${MOED_JOBS:-$(nproc)}"

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config git python3 python3-venv python3-pip
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  prometheus-cpp-dev libgtest-dev libgmock-dev libsentencepiece-dev nlohmann-json3-dev libre2-dev
  prometheus libicu-dev xz-utils binutils libboost-dev libssl-dev chromium
)

log() { printf '[moed.sh] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

setup_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

setup_python() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating the Python environment for tests in .venv"
    python3 -m venv "$VENV"
  fi
  # Reinstall only when tests/requirements.txt changed since the last install.
  local stamp="$VENV/.requirements.sha256"
  local want
  want="$(sha256sum "$ROOT/tests/requirements.txt" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing Python packages from tests/requirements.txt"
    "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/tests/requirements.txt"
    echo "$want" >"$stamp"
  fi
  # The Python client package (client/python; the tests' gRPC client) is installed, never imported from the tree:
  # reinstall it when its sources or the proto changed. Its build generates the stubs with the venv's grpcio-tools.
  local client_stamp="$VENV/.moed-client.sha256"
  want="$(cd "$ROOT" && find client/python proto -type f ! -path '*/__pycache__/*' -print0 | sort -z |
    xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$client_stamp" ] || [ "$(cat "$client_stamp")" != "$want" ]; then
    log "installing the Python client package (client/python) into .venv"
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-build-isolation "$ROOT/client/python"
    echo "$want" >"$client_stamp"
  fi
}

setup() { setup_apt; setup_python; }

build() {
  local cuda_flag=()
  [ -n "${MOED_CUDA:-}" ] && cuda_flag=(-DMOED_CUDA="$MOED_CUDA")
  cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${MOED_BUILD_TYPE:-RelWithDebInfo}" "${cuda_flag[@]}" >/dev/null
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

has_cuda_build() { grep -q 'moed_engine_cuda' "$BUILD_DIR/build.ninja" 2>/dev/null; }

run_ctest() {
  log "C++ tests (ctest)"
  (cd "$BUILD_DIR" && ctest --output-on-failure --no-tests=error -j "$JOBS" --timeout 900)
}

run_tests() {
  run_ctest
  if compgen -G "$ROOT/tests/**/test_*.py" >/dev/null || ls "$ROOT"/tests/*/test_*.py >/dev/null 2>&1; then
    log "Python tests (pytest)"
    MOED_BUILD_DIR="$BUILD_DIR" "$VENV/bin/python" -m pytest -q "$ROOT/tests"
  fi
  if has_cuda_build; then
    log "GPU harness rehearsal (bench/cuda/on_device.sh --rehearse)"
    MOED_BUILD_DIR="$BUILD_DIR" OUT="$BUILD_DIR/rehearsal-out" bash "$ROOT/bench/cuda/on_device.sh" --rehearse
  else
    log "GPU harness rehearsal skipped: this build has no CUDA (nvcc not found or MOED_CUDA=OFF)"
  fi
}

serve() {
  if [ -x "$BUILD_DIR/moed" ]; then
    exec "$BUILD_DIR/moed" --model "$ROOT/models/fortune-moe" "$@"
  fi
  # Until the daemon lands, serve runs the offline CLI on the built-in model.
  exec "$BUILD_DIR/moe-run" --model "$ROOT/models/fortune-moe" --prompt "${MOED_PROMPT:-Never trust a computer}" \
    --max-tokens 32 --temperature 0 "$@"
}

cmd="${1:-}"
shift || true
case "$cmd" in
  setup) setup ;;
  build) setup; build ;;
  serve) setup; build; serve "$@" ;;
  test) setup; build; run_tests ;;
  test-cpp) setup; build; run_ctest ;;
  *) echo "usage: $0 {serve|test|test-cpp|setup|build} [args…]" >&2; exit 2 ;;
esac
