// Synthetic weight fill kernel (grid-stride).
#include "engine/backend/cuda/synthetic_fill.h"
#include "engine/backend/cuda/kernel_utils.cuh"

namespace moed::cuda {
namespace {

// Must stay equal to moed::SyntheticUniform (engine/model/synthetic_model.h); a GPU test compares the two.
__device__ __forceinline__ float Uniform(uint64_t seed, uint64_t index) {
  uint64_t x = seed ^ (index * 0x9e3779b97f4a7c15ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return static_cast<float>(x >> 40) * (1.0f / 16777216.0f);
}

__global__ void FillKernel(__nv_bfloat16* dst, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = __float2bfloat16(scale * (2.0f * Uniform(seed, static_cast<uint64_t>(i)) - 1.0f));
  }
}

}  // namespace

cudaError_t LaunchSyntheticFill(__nv_bfloat16* dst, int64_t n, uint64_t seed, float scale, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  const int64_t blocks = (n + 255) / 256 < 132 * 32 ? (n + 255) / 256 : 132 * 32;
  FillKernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(dst, n, seed, scale);
  return cudaGetLastError();
}

}  // namespace moed::cuda
