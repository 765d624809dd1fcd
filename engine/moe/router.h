// MoE router as pure functions: softmax → top-k → optional renormalisation, then expert capacity and drops.
// The CPU backend uses these directly; the CUDA router kernel is tested against them.
#pragma once

#include <cstdint>
#include <vector>

namespace moed {

// Top-k routing of `num_tokens` tokens.
//   logits  (num_tokens, num_experts)  router logits, fp32
//   experts (num_tokens, top_k)        chosen expert ids, best first (ties: lower id first)
//   weights (num_tokens, top_k)        softmax probabilities of the chosen experts (over all experts),
//                                      divided by their sum when `normalize` (norm_topk_prob)
// Requires 1 ≤ top_k ≤ num_experts.
void RouteTopK(const float* logits, int num_tokens, int num_experts, int top_k, bool normalize, int32_t* experts,
               float* weights);

// Capacity per expert for one layer and step: ceil(factor · assignments / num_experts); factor ≤ 0 → no limit
// (returns `assignments`).
int64_t ExpertCapacity(float capacity_factor, int64_t assignments, int num_experts);

// Applies capacity to `num_assignments` flat (token-major, then top-k slot) expert ids: walks them in order,
// keeping an assignment while its expert has taken fewer than `capacity`, else dropping it.
//   kept     (num_assignments)  1 = kept, 0 = dropped (overwritten)
//   routed   (num_experts)      += every assignment
//   dropped  (num_experts)      += every dropped assignment
// Returns the number of dropped assignments.
int64_t ApplyCapacity(const int32_t* experts, int64_t num_assignments, int num_experts, int64_t capacity,
                      uint8_t* kept, int64_t* routed, int64_t* dropped);

}  // namespace moed
