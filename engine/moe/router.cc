// Router: softmax over experts in fp32, top-k by probability, renormalisation, capacity.
#include "engine/moe/router.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moed {

void RouteTopK(const float* logits, int num_tokens, int num_experts, int top_k, bool normalize, int32_t* experts,
               float* weights) {
  std::vector<float> probs(num_experts);
  std::vector<int32_t> order(num_experts);
  for (int t = 0; t < num_tokens; ++t) {
    const float* row = logits + static_cast<int64_t>(t) * num_experts;
    const float m = *std::max_element(row, row + num_experts);
    float sum = 0.0f;
    for (int e = 0; e < num_experts; ++e) {
      probs[e] = std::exp(row[e] - m);
      sum += probs[e];
    }
    for (int e = 0; e < num_experts; ++e) probs[e] /= sum;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(), [&](int32_t a, int32_t b) {
      return probs[a] > probs[b] || (probs[a] == probs[b] && a < b);
    });
    int32_t* ex = experts + static_cast<int64_t>(t) * top_k;
    float* w = weights + static_cast<int64_t>(t) * top_k;
    float kept_sum = 0.0f;
    for (int k = 0; k < top_k; ++k) {
      ex[k] = order[k];
      w[k] = probs[order[k]];
      kept_sum += w[k];
    }
    if (!normalize) continue;
    for (int k = 0; k < top_k; ++k) w[k] /= kept_sum;
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
