// Router logit bias for benchmarks of the expert cache: a per-expert bias added to one layer's router logits before
// top-k, imposing a skewed expert popularity on synthetic weights (which otherwise route almost uniformly).
#pragma once

#include <cuda_runtime.h>

namespace moed::cuda {

// logits (tokens, E) fp32 += bias (E) fp32, row by row.
cudaError_t LaunchAddLogitBias(float* logits, int tokens, int E, const float* bias, cudaStream_t stream);

}  // namespace moed::cuda
