// The fast path's routed experts (RunRoutedExpertsFast over bf16 weights) against the fp32 reference
// RunRoutedExperts on the same values widened, with capacity drops, at several thread counts; and batch invariance:
// a token's output is bitwise the same alone and routed beside other tokens.
#include "engine/backend/cpu/fast_experts.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "engine/backend/cpu/experts.h"
#include "gtest/gtest.h"

namespace moed::cpu {
namespace {

// One expert as bf16 storage (for the fast path) and its exact fp32 widening (for the reference).
struct Expert {
  std::vector<uint16_t> gate, up, down;
  CpuFfn f32;
  FfnMatrices view;
};

std::vector<uint16_t> RandomBf16(size_t n, std::mt19937& rng, std::vector<float>* widened) {
  std::normal_distribution<float> d(0, 0.3f);
  std::vector<uint16_t> v(n);
  widened->resize(n);
  for (size_t i = 0; i < n; ++i) {
    v[i] = FloatToBf16(d(rng));
    (*widened)[i] = Bf16ToFloat(v[i]);
  }
  return v;
}

TEST(FastExperts, MatchReferenceWithDropsAndAnyThreadCount) {
  // hidden and width multiples of 32 take the pair-split kernels; 40 / 24 the plain tiles.
  for (auto [hidden, width] : {std::pair{128, 64}, std::pair{40, 24}}) {
    const int num_experts = 6, top_k = 2, tokens = 9;
    std::mt19937 rng(5);
    std::vector<Expert> experts(num_experts);
    std::vector<FfnMatrices> views;
    std::vector<CpuFfn> ref;
    for (Expert& e : experts) {
      e.gate = RandomBf16(width * hidden, rng, &e.f32.gate);
      e.up = RandomBf16(width * hidden, rng, &e.f32.up);
      e.down = RandomBf16(hidden * width, rng, &e.f32.down);
      e.f32.width = width;
      e.view.width = width;
      e.view.gate = {e.gate.data(), DType::kBF16, width, hidden};
      e.view.up = {e.up.data(), DType::kBF16, width, hidden};
      e.view.down = {e.down.data(), DType::kBF16, hidden, width};
      views.push_back(e.view);
      ref.push_back(e.f32);
    }
    std::normal_distribution<float> d(0, 1.0f);
    std::vector<float> x(tokens * hidden);
    for (float& v : x) v = d(rng);
    std::vector<int32_t> ids(tokens * top_k);
    std::vector<float> w(tokens * top_k);
    std::vector<uint8_t> kept(tokens * top_k);
    for (int a = 0; a < tokens * top_k; ++a) {
      ids[a] = (a * 5 + a / top_k) % num_experts;
      if (a % top_k == 1 && ids[a] == ids[a - 1]) ids[a] = (ids[a] + 1) % num_experts;
      w[a] = 0.1f + 0.05f * a;
      kept[a] = a % 7 != 3;
    }
    std::vector<float> want(tokens * hidden, 0.0f);
    RunRoutedExperts(ref, x.data(), tokens, hidden, ids.data(), w.data(), kept.data(), top_k, want.data(), nullptr);
    float scale = 1.0f;
    for (float v : want) scale = std::max(scale, std::fabs(v));
    const KernelConfig cfg{ActiveIsa(), 0};
    ThreadPool two(2), three(3);
    std::vector<float> first;
    for (ThreadPool* pool : {static_cast<ThreadPool*>(nullptr), &two, &three}) {
      std::vector<float> got(tokens * hidden, 0.0f);
      RunRoutedExpertsFast(cfg, views, x.data(), tokens, hidden, ids.data(), w.data(), kept.data(), top_k, got.data(),
                           pool);
      for (int i = 0; i < tokens * hidden; ++i) {
        // Same products, fp32 sums in another order: errors scale with the largest output (cancellation leaves
        // small outputs with the rounding of large terms); measured ≤ 3.2e-7 of it (1.1e-5 with outputs up to 36).
        ASSERT_NEAR(got[i], want[i], 1e-6f * scale) << "hidden " << hidden << " at " << i;
      }
      if (first.empty()) first = got;
      EXPECT_EQ(got, first) << "the thread count changed a result";
    }
    // Token 4 alone (its own routing) gives bitwise what it got among all nine tokens.
    std::vector<float> alone(hidden, 0.0f);
    RunRoutedExpertsFast(cfg, views, x.data() + 4 * hidden, 1, hidden, ids.data() + 4 * top_k, w.data() + 4 * top_k,
                         kept.data() + 4 * top_k, top_k, alone.data(), &two);
    for (int j = 0; j < hidden; ++j) ASSERT_EQ(alone[j], first[4 * hidden + j]) << "hidden " << hidden << " at " << j;
  }
}

}  // namespace
}  // namespace moed::cpu
