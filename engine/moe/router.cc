// Router: softmax over experts in fp32, top-k by probability, renormalisation, capacity.
#include "engine/moe/router.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>

namespace moed {

void RouteTopK(const float* logits, int num_tokens, int num_experts, int top_k, const RouterSpec& router,
               const float* bias, int32_t* experts, float* weights) {
  std::vector<float> probs(num_experts), choice(num_experts);
  std::vector<int32_t> order(num_experts);
  const bool grouped = router.method != TopKMethod::kGreedy && router.num_groups > 1;
  const int groups = grouped ? router.num_groups : 1;
  const int per_group = num_experts / groups;
  std::vector<float> group_score(groups);
  std::vector<int32_t> group_order(groups);
  std::vector<float> pair(2);
  // Best first; ties: lower index first.
  auto by_score = [](const std::vector<float>& score) {
    return [&score](int32_t a, int32_t b) { return score[a] > score[b] || (score[a] == score[b] && a < b); };
  };
  for (int t = 0; t < num_tokens; ++t) {
    const float* row = logits + static_cast<int64_t>(t) * num_experts;
    if (router.scoring == RouterScoring::kSoftmax) {
      const float m = *std::max_element(row, row + num_experts);
      float sum = 0.0f;
      for (int e = 0; e < num_experts; ++e) {
        probs[e] = std::exp(row[e] - m);
        sum += probs[e];
      }
      for (int e = 0; e < num_experts; ++e) probs[e] /= sum;
    } else {
      for (int e = 0; e < num_experts; ++e) probs[e] = 1.0f / (1.0f + std::exp(-row[e]));
    }
    for (int e = 0; e < num_experts; ++e) choice[e] = bias != nullptr ? probs[e] + bias[e] : probs[e];
    if (grouped) {
      for (int g = 0; g < groups; ++g) {
        const float* s = choice.data() + static_cast<int64_t>(g) * per_group;
        if (router.method == TopKMethod::kGroupLimitedGreedy) {
          group_score[g] = *std::max_element(s, s + per_group);
        } else {  // noaux_tc: sum of the group's two best
          std::partial_sort_copy(s, s + per_group, pair.begin(), pair.end(), std::greater<float>());
          group_score[g] = pair[0] + pair[1];
        }
      }
      std::iota(group_order.begin(), group_order.end(), 0);
      std::partial_sort(group_order.begin(), group_order.begin() + router.topk_groups, group_order.end(),
                        by_score(group_score));
      std::vector<uint8_t> kept(groups, 0);
      for (int i = 0; i < router.topk_groups; ++i) kept[group_order[i]] = 1;
      for (int e = 0; e < num_experts; ++e) {
        if (!kept[e / per_group]) choice[e] = -std::numeric_limits<float>::infinity();
      }
    }
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(), by_score(choice));
    int32_t* ex = experts + static_cast<int64_t>(t) * top_k;
    float* w = weights + static_cast<int64_t>(t) * top_k;
    float kept_sum = 0.0f;
    for (int k = 0; k < top_k; ++k) {
      ex[k] = order[k];
      w[k] = probs[order[k]];
      kept_sum += w[k];
    }
    if (router.norm_topk_prob) {
      if (router.scoring == RouterScoring::kSigmoid) kept_sum += 1e-20f;
      for (int k = 0; k < top_k; ++k) w[k] /= kept_sum;
    }
    if (router.routed_scaling_factor != 1.0f) {
      for (int k = 0; k < top_k; ++k) w[k] *= router.routed_scaling_factor;
    }
  }
}

int64_t ExpertCapacity(float capacity_factor, int64_t assignments, int num_experts) {
  if (capacity_factor <= 0.0f || num_experts <= 0) return assignments;
  const double cap = std::ceil(static_cast<double>(capacity_factor) * static_cast<double>(assignments) /
                               static_cast<double>(num_experts));
  return static_cast<int64_t>(cap);
}

int64_t ApplyCapacity(const int32_t* experts, int64_t num_assignments, int num_experts, int64_t capacity,
                      uint8_t* kept, int64_t* routed, int64_t* dropped) {
  std::vector<int64_t> taken(num_experts, 0);
  int64_t num_dropped = 0;
  for (int64_t i = 0; i < num_assignments; ++i) {
    const int32_t e = experts[i];
    ++routed[e];
    if (taken[e] < capacity) {
      ++taken[e];
      kept[i] = 1;
      continue;
    }
    kept[i] = 0;
    ++dropped[e];
    ++num_dropped;
  }
  return num_dropped;
}

}  // namespace moed
