// Run-time detection of the CPU's vector extensions, with an environment override for tests and benchmarks.
#include "engine/backend/cpu/kernels/isa.h"

#include <algorithm>
#include <cstdlib>

namespace moed::cpu {
namespace {

Isa Detect() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
  if (!avx2) return Isa::kScalar;
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  if (!avx512) return Isa::kAvx2;
  if (__builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni")) return Isa::kAvx512Bf16;
  return Isa::kAvx512;
#else
  return Isa::kScalar;
#endif
}

}  // namespace

std::string_view IsaName(Isa isa) {
  switch (isa) {
    case Isa::kScalar: return "scalar";
    case Isa::kAvx2: return "avx2";
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx512Bf16: return "avx512bf16";
  }
  return "unknown";
}

bool ParseIsa(std::string_view name, Isa* isa) {
  for (Isa i : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512, Isa::kAvx512Bf16}) {
    if (name == IsaName(i)) {
      *isa = i;
      return true;
    }
  }
  return false;
}

Isa DetectedIsa() {
  static const Isa detected = Detect();
  return detected;
}

Isa ActiveIsa() {
  static const Isa active = [] {
    Isa isa = DetectedIsa();
    const char* env = std::getenv("MOED_CPU_ISA");
    Isa want;
    if (env != nullptr && ParseIsa(env, &want)) isa = std::min(isa, want);
    return isa;
  }();
  return active;
}

}  // namespace moed::cpu
