// The fast path's FFN compute: SwiGLU FFNs (routed experts, a shared expert, a dense MLP) on weights in the
// checkpoint's dtype, with every weight row of every FFN of a step split across threads in chunks of equal work.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/backend/cpu/kernels/linear.h"
#include "engine/common/thread_pool.h"
#include "engine/model/weights.h"

namespace moed::cpu {

// One SwiGLU FFN's matrices (weights.h's FfnOf): non-owning views of the model's tensors; width 0 = absent.
using FfnMatrices = FfnOf<WeightMatrix>;

// One FFN over n rows: y (n, hidden) = down(silu(gate·x) ⊙ up·x), x (n, hidden). y may not alias x.
struct FfnJob {
  const FfnMatrices* w = nullptr;
  const float* x = nullptr;
  int64_t n = 0;
  float* y = nullptr;
};

// Runs every job of a step. Two phases (gate/up with silu·mul fused, then down), each cut into row chunks of
// about equal multiply-adds and spread over the pool's threads, so one expert's rows run on every thread at batch 1
// and each weight row is streamed once per token block. Results depend neither on the thread count nor on the
// other jobs or rows of the step (each output element is one LinearRows product).
void RunFfnJobs(const KernelConfig& cfg, const std::vector<FfnJob>& jobs, int64_t hidden, ThreadPool* pool);

// The routed experts of one MoE layer (the contract of RunRoutedExperts in experts.h):
//   x (num_tokens, hidden); experts, routing_weights, kept (num_tokens, top_k);
//   out (num_tokens, hidden) += Σ_kept weight · expert(x), accumulated serially in expert-id order.
void RunRoutedExpertsFast(const KernelConfig& cfg, const std::vector<FfnMatrices>& weights, const float* x,
                          int num_tokens, int64_t hidden, const int32_t* experts, const float* routing_weights,
                          const uint8_t* kept, int top_k, float* out, ThreadPool* pool);

}  // namespace moed::cpu
