// The FFN compute of the CPU backend: one SwiGLU FFN over a batch of rows, and a MoE layer's routed experts
// grouped by expert (the place a hot-expert cache plugs in: every expert weight read goes through here).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/backend/cpu/cpu_weights.h"
#include "engine/common/thread_pool.h"

namespace moed::cpu {

// Non-owning view of one SwiGLU FFN's fp32 weights (host tier, or a slot of the expert cache).
struct FfnView {
  int width = 0;                // intermediate size; 0 = absent
  const float* gate = nullptr;  // (width, hidden)
  const float* up = nullptr;    // (width, hidden)
  const float* down = nullptr;  // (hidden, width)
};
FfnView ViewOf(const CpuFfn& ffn);

// y (n, hidden) = down(silu(gate(x)) · up(x)) for x (n, hidden). Parallel inside the matmuls when `pool`.
void RunFfn(const FfnView& ffn, const float* x, int64_t n, int hidden, float* y, ThreadPool* pool);
void RunFfn(const CpuFfn& ffn, const float* x, int64_t n, int hidden, float* y, ThreadPool* pool);

// Routed experts of one MoE layer for a step.
//   x        (num_tokens, hidden)  normalised hidden states
//   experts  (num_tokens, top_k)   router choices; weights (num_tokens, top_k) their routing weights
//   kept     (num_tokens, top_k)   1 = computed, 0 = dropped by capacity (contributes nothing)
//   out      (num_tokens, hidden)  += Σ_kept weight · expert(x)
// Each expert runs once over all its tokens (gathered); experts are spread over the pool's threads; the
// accumulation into `out` is serial in expert-id order, so results do not depend on the thread count.
// `weights` (num_experts): every expert with a kept assignment must have width > 0.
void RunRoutedExperts(const std::vector<FfnView>& weights, const float* x, int num_tokens, int hidden,
                      const int32_t* experts, const float* routing_weights, const uint8_t* kept, int top_k,
                      float* out, ThreadPool* pool);
void RunRoutedExperts(const std::vector<CpuFfn>& weights, const float* x, int num_tokens, int hidden,
                      const int32_t* experts, const float* routing_weights, const uint8_t* kept, int top_k,
                      float* out, ThreadPool* pool);

}  // namespace moed::cpu
