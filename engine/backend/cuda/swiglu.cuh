// The SwiGLU of the grouped expert kernels' gate_up epilogues, rounded as the per-expert path rounds. Include from
// .cu files only.
#pragma once

#include <cuda_bf16.h>

namespace moed::cuda {

// silu(g)·u with g, u rounded to bf16 first (the per-expert path's GEMM writes gate_up in bf16).
__device__ __forceinline__ __nv_bfloat16 SwiGluBf16(float g, float u) {
  g = __bfloat162float(__float2bfloat16(g));
  u = __bfloat162float(__float2bfloat16(u));
  return __float2bfloat16(g / (1.0f + expf(-g)) * u);
}

}  // namespace moed::cuda
