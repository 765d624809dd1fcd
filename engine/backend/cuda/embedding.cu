// Embedding gather kernel.
#include "engine/backend/cuda/embedding.h"
#include "engine/backend/cuda/kernel_utils.cuh"

namespace moed::cuda {
namespace {

// One block per token row.
__global__ void EmbeddingKernel(const int32_t* ids, const __nv_bfloat16* table, int hidden, float* out) {
  const int64_t row = blockIdx.x;
  const __nv_bfloat16* src = table + static_cast<int64_t>(ids[row]) * hidden;
  float* dst = out + row * hidden;
  for (int i = threadIdx.x; i < hidden; i += blockDim.x) dst[i] = __bfloat162float(src[i]);
}

}  // namespace

cudaError_t LaunchEmbedding(const int32_t* ids, int n, const __nv_bfloat16* table, int hidden, float* out,
                            cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  EmbeddingKernel<<<n, 256, 0, stream>>>(ids, table, hidden, out);
  return cudaGetLastError();
}

}  // namespace moed::cuda
