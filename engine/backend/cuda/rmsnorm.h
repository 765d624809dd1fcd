// RMSNorm fused with the residual add: residual += delta; out = weight · residual / rms(residual).
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

namespace moed::cuda {

// residual (rows, dim) fp32, updated in place when delta (rows, dim) fp32 is non-null;
// weight (dim) bf16; out (rows, dim) bf16, the normalised rows (the next GEMM's input).
cudaError_t LaunchAddRmsNorm(float* residual, const float* delta, int rows, int dim, const __nv_bfloat16* weight,
                             float eps, __nv_bfloat16* out, cudaStream_t stream);

}  // namespace moed::cuda
