// ZipfRouting: seeded per-layer popularity permutations, top-k draws without replacement.
#include "engine/cache/zipf_routing.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace moed::cache {

ZipfRouting::ZipfRouting(int num_layers, int num_experts, int top_k, double exponent, uint64_t seed)
    : num_experts_(num_experts), top_k_(top_k), weights_(num_experts), perm_(num_layers), rng_(seed) {
  for (int r = 0; r < num_experts; ++r) weights_[r] = std::pow(r + 1.0, -exponent);
  total_ = std::accumulate(weights_.begin(), weights_.end(), 0.0);
  for (std::vector<int>& p : perm_) {
    p.resize(num_experts);
    std::iota(p.begin(), p.end(), 0);
    std::shuffle(p.begin(), p.end(), rng_);
  }
}

void ZipfRouting::Draw(int layer, int rows, int32_t* ids) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<double> left(num_experts_);
  for (int row = 0; row < rows; ++row) {
    left = weights_;
    double mass = total_;
    for (int j = 0; j < top_k_; ++j) {
      double x = u(rng_) * mass;
      int r = 0;
      while (r + 1 < num_experts_ && (left[r] == 0 || x >= left[r])) {
        x -= left[r];
        ++r;
      }
      while (left[r] == 0) --r;  // rounding ran past the last remaining rank
      ids[static_cast<int64_t>(row) * top_k_ + j] = perm_[layer][r];
      mass -= left[r];
      left[r] = 0;
    }
  }
}

std::vector<float> ZipfLogitBias(int num_layers, int num_experts, double exponent, uint64_t seed) {
  const ZipfRouting z(num_layers, num_experts, 1, exponent, seed);
  std::vector<float> bias(static_cast<size_t>(num_layers) * num_experts);
  for (int l = 0; l < num_layers; ++l) {
    for (int r = 0; r < num_experts; ++r) {
      bias[static_cast<size_t>(l) * num_experts + z.ExpertOfRank(l, r)] = static_cast<float>(-exponent * std::log(r + 1.0));
    }
  }
  return bias;
}

}  // namespace moed::cache
