// SwiGLU's activation for the fast path: out = silu(gate) · up, vectorised per Isa.
#pragma once

#include <cstdint>

#include "engine/backend/cpu/kernels/isa.h"

namespace moed::cpu {

// out[i] = gate[i] / (1 + e^(−gate[i])) · up[i] for i < n (out may alias gate or up). Elementwise, so a value never
// depends on n or on its neighbours. AVX-512: e^x by range reduction to [−ln2/2, ln2/2] and a degree-7 polynomial
// (≤ 2 ulp from std::exp); other levels: std::exp.
void SiluMul(Isa isa, const float* gate, const float* up, int64_t n, float* out);

}  // namespace moed::cpu
