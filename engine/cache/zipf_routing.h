// ZipfRouting: imposed expert routing for cache benches and tests — per token and layer, top-k distinct experts
// drawn with a Zipf skew, since random synthetic weights route almost uniformly and make hit rates meaningless.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace moed::cache {

// Expert of popularity rank r (0 = hottest) in layer l is perm_l[r], a seeded permutation per layer, so layers have
// different hot experts. The first pick of a token has P(rank r) = (r+1)^-exponent / Σ; later picks draw from the
// same weights without the experts already picked. exponent 0 = uniform. Deterministic for a seed; not thread-safe.
class ZipfRouting {
 public:
  // Requires 1 ≤ top_k ≤ num_experts, exponent ≥ 0 (callers validate).
  ZipfRouting(int num_layers, int num_experts, int top_k, double exponent, uint64_t seed);

  // ids (rows, top_k): the next `rows` tokens' experts in `layer`.
  void Draw(int layer, int rows, int32_t* ids);
  // The expert of popularity rank `rank` in `layer`.
  int ExpertOfRank(int layer, int rank) const { return perm_[layer][rank]; }
  // P(first pick has popularity rank `rank`).
  double FirstPickProbability(int rank) const { return weights_[rank] / total_; }

 private:
  int num_experts_, top_k_;
  std::vector<double> weights_;          // (num_experts) by rank
  double total_ = 0;
  std::vector<std::vector<int>> perm_;   // (num_layers, num_experts) rank → expert
  std::mt19937_64 rng_;
};

// The logit form of the same skew, for routers that stay hidden-state dependent (so a next-layer predictor still
// means something): (num_layers, num_experts) bias with bias[l][ExpertOfRank(l, r)] = −exponent · ln(r + 1),
// ExpertOfRank from ZipfRouting(num_layers, num_experts, 1, exponent, seed). Added to the router logits before
// top-k, it multiplies each expert's softmax odds by its Zipf weight (r+1)^−exponent.
std::vector<float> ZipfLogitBias(int num_layers, int num_experts, double exponent, uint64_t seed);

}  // namespace moed::cache
