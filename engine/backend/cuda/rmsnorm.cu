// Fused residual-add + RMSNorm kernel (fp32 statistics, bf16 output).
#include "engine/backend/cuda/rmsnorm.h"
#include "engine/backend/cuda/kernel_utils.cuh"

namespace moed::cuda {
namespace {

// One block per row; the row is read twice (second time from L1/L2).
__global__ void AddRmsNormKernel(float* residual, const float* delta, int dim, const __nv_bfloat16* weight, float eps,
                                 __nv_bfloat16* out) {
  __shared__ float scratch[33];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * dim;
  float* x = residual + base;
  float ss = 0.0f;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    float v = x[i];
    if (delta != nullptr) {
      v += delta[base + i];
      x[i] = v;
    }
    ss += v * v;
  }
  const float inv = rsqrtf(BlockSum(ss, scratch) / static_cast<float>(dim) + eps);
  for (int i = threadIdx.x; i < dim; i += blockDim.x) {
    out[base + i] = __float2bfloat16(__bfloat162float(weight[i]) * (x[i] * inv));
  }
}

}  // namespace

cudaError_t LaunchAddRmsNorm(float* residual, const float* delta, int rows, int dim, const __nv_bfloat16* weight,
                             float eps, __nv_bfloat16* out, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  AddRmsNormKernel<<<rows, dim >= 1024 ? 512 : 128, 0, stream>>>(residual, delta, dim, weight, eps, out);
  return cudaGetLastError();
}

}  // namespace moed::cuda
