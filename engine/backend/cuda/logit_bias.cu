// Router logit bias kernel (grid-stride over tokens × experts).
#include "engine/backend/cuda/logit_bias.h"

namespace moed::cuda {
namespace {

__global__ void AddBiasKernel(float* logits, int64_t n, int E, const float* bias) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    logits[i] += bias[i % E];
  }
}

}  // namespace

cudaError_t LaunchAddLogitBias(float* logits, int tokens, int E, const float* bias, cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(tokens) * E;
  if (n == 0) return cudaSuccess;
  const int64_t blocks = (n + 255) / 256 < 1024 ? (n + 255) / 256 : 1024;
  AddBiasKernel<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(logits, n, E, bias);
  return cudaGetLastError();
}

}  // namespace moed::cuda
