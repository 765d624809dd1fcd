// MoE router in one kernel: softmax over experts, top-k (ties: lower id), optional renormalisation.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace moed::cuda {

constexpr int kMaxExperts = 256;

// logits (tokens, num_experts) fp32 → experts (tokens, top_k) best first, weights (tokens, top_k): the chosen
// softmax probabilities, divided by their sum when `normalize`. Same contract as moed::RouteTopK.
// Requires 1 ≤ top_k ≤ num_experts ≤ kMaxExperts.
cudaError_t LaunchRouterTopK(const float* logits, int tokens, int num_experts, int top_k, bool normalize,
                             int32_t* experts, float* weights, cudaStream_t stream);

}  // namespace moed::cuda
