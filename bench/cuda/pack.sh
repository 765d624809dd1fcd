#!/usr/bin/env bash
# Packs what a device run needs into .devbundle/ (git-ignored): one xz archive holding the stripped programs
# (moed, moe-run, moe-bench, moed_gpu_tests, the GPU benchmarks), the shared libraries they need that a bare CUDA
# machine lacks, and a `run` wrapper; plus manifest.json (revision, nvcc, sizes). Prints the bundle's size and the
# working tree's (both travel with a device call, 64 MiB at most) and fails above 60 MiB together.
#   bench/cuda/pack.sh        then, with the device tool: run(command="bash bench/cuda/on_device.sh",
#                                                            carry=[".devbundle"], timeout_s=540)
# Builds the programs first in $MOED_BUILD_DIR (default build/), which must be a CUDA build.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD_DIR="${MOED_BUILD_DIR:-build}"
LIMIT_MIB=60
PROGRAMS=(moed moe-run moe-bench gpu-moe-layer-bench gpu-backend-step-bench gpu-expert-cache-floor-bench tests/moed_gpu_tests)
# Present on the device image (driver, toolkit, glibc, the C++ runtime): never bundled.
SKIP='^(linux-vdso|ld-linux|libc\.so|libm\.so|libpthread|libdl\.so|librt\.so|libgcc_s|libstdc\+\+|libcuda\.so|libcudart|libcublas|libcublasLt|libnvidia|libnccl)'

die() { echo "pack.sh: $*" >&2; exit 1; }

[ -f "$BUILD_DIR/CMakeCache.txt" ] || die "no build in $BUILD_DIR (run ./moed.sh build first)"
grep -q 'moed_engine_cuda' "$BUILD_DIR/build.ninja" || die "$BUILD_DIR is not a CUDA build (nvcc not found?)"
targets=()
for p in "${PROGRAMS[@]}"; do targets+=("$(basename "$p")"); done
cmake --build "$BUILD_DIR" --target "${targets[@]}" >/dev/null

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bundle/bin" "$stage/bundle/lib"
for p in "${PROGRAMS[@]}"; do
  [ -x "$BUILD_DIR/$p" ] || die "missing $BUILD_DIR/$p"
  cp -L "$BUILD_DIR/$p" "$stage/bundle/bin/"
  strip --strip-unneeded "$stage/bundle/bin/$(basename "$p")"
  ldd "$BUILD_DIR/$p" | awk '/=> \//{print $1, $3}' | while read -r name path; do
    [[ "$name" =~ $SKIP ]] && continue
    [ -e "$stage/bundle/lib/$name" ] || { cp -L "$path" "$stage/bundle/lib/$name" && strip --strip-unneeded "$stage/bundle/lib/$name"; }
  done
  if ldd "$BUILD_DIR/$p" | grep -q 'not found'; then die "$p has unresolved libraries here: $(ldd "$BUILD_DIR/$p" | grep 'not found')"; fi
done
cat >"$stage/bundle/run" <<'RUN'
#!/usr/bin/env bash
# run PROGRAM [ARGS…]: a bundled program with the bundled libraries first, then the device's CUDA.
here=$(cd "$(dirname "$0")" && pwd)
prog=$1; shift
export LD_LIBRARY_PATH="$here/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib:${LD_LIBRARY_PATH:-}"
exec "$here/bin/$prog" "$@"
RUN
chmod +x "$stage/bundle/run"

rm -rf .devbundle
mkdir -p .devbundle
tar -C "$stage" -cf - bundle | xz -T2 -6 >.devbundle/bundle.tar.xz

nvcc_version=$( (command -v nvcc >/dev/null && nvcc --version || /usr/local/cuda/bin/nvcc --version) 2>/dev/null | tail -1)
bundle_bytes=$(stat -c %s .devbundle/bundle.tar.xz)
# What travels besides .devbundle: tracked files and untracked files git does not ignore.
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
cat >.devbundle/manifest.json <<EOF
{"revision": "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo +dirty)",
 "packed": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "nvcc": "$nvcc_version",
 "programs": [$(printf '"%s",' "${targets[@]}" | sed 's/,$//')],
 "bundle_bytes": $bundle_bytes, "tree_bytes": $tree_bytes}
EOF
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
total=$((bundle_bytes + tree_bytes))
echo "bundle: $(mib "$bundle_bytes") MiB (.devbundle/bundle.tar.xz)   working tree: $(mib "$tree_bytes") MiB   together: $(mib "$total") MiB (limit ${LIMIT_MIB} MiB)"
[ "$total" -le $((LIMIT_MIB * 1048576)) ] || die "bundle + working tree exceed ${LIMIT_MIB} MiB"
