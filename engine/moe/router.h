// MoE router as pure functions: scoring (softmax | sigmoid) → top-k (greedy | group-limited | noaux_tc) → optional
// renormalisation and scaling, then expert capacity and drops.
// The CPU backend uses these directly; the CUDA router kernel is tested against them.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model/model_spec.h"

namespace moed {

// Top-k routing of `num_tokens` tokens as transformers does it for each family.
//   logits  (num_tokens, num_experts)  router logits, fp32
//   bias    (num_experts)              selection bias (router.selection_bias), else nullptr
//   experts (num_tokens, top_k)        chosen expert ids, best choice score first (ties: lower id first)
//   weights (num_tokens, top_k)        the chosen experts' scores (softmax over all experts, or sigmoid; never biased),
//                                      divided by their sum when router.norm_topk_prob, times routed_scaling_factor
// Choice scores are the scores plus the bias. Group methods split the experts into router.num_groups consecutive
// groups, rank groups by their max (group_limited_greedy) or the sum of their top 2 (noaux_tc) choice scores, keep
// router.topk_groups (ties: lower group first) and exclude the other groups' experts from the top-k.
// Requires 1 ≤ top_k ≤ experts of the kept groups.
void RouteTopK(const float* logits, int num_tokens, int num_experts, int top_k, const RouterSpec& router,
               const float* bias, int32_t* experts, float* weights);

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
