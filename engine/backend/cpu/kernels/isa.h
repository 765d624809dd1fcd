// CPU instruction-set levels of the fast kernels, detected once at run time (one binary for any x86-64).
#pragma once

#include <string_view>

namespace moed::cpu {

// Ordered: each level includes the ones below it.
enum class Isa {
  kScalar = 0,      // portable C++ (any CPU, and the fallback off x86-64)
  kAvx2 = 1,        // AVX2 + FMA + F16C (x86-64-v3)
  kAvx512 = 2,      // AVX-512 F/BW/VL/DQ (x86-64-v4)
  kAvx512Bf16 = 3,  // kAvx512 + AVX512_BF16 (vdpbf16ps) + AVX512_VNNI
};

std::string_view IsaName(Isa isa);  // "scalar", "avx2", "avx512", "avx512bf16"
// Parses IsaName spellings; false when unknown.
bool ParseIsa(std::string_view name, Isa* isa);

// The best level this CPU and OS support (cpuid and xgetbv via __builtin_cpu_supports). Computed once.
Isa DetectedIsa();

// The level the fast kernels use: DetectedIsa(), lowered by the environment variable MOED_CPU_ISA
// (an IsaName; a level above the detected one is clamped to it). Read once; thread-safe.
Isa ActiveIsa();

}  // namespace moed::cpu
