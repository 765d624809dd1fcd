// The radix select of the one-pass sampling kernel (engine/backend/cuda/host/radix_select.h), run on the host: the
// kernel's pass loop against sorting, and a host twin of its filtered draw against the CPU sampler.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "engine/backend/cuda/host/radix_select.h"
#include "engine/backend/cuda/host/sample_order.h"
#include "engine/runtime/sampler.h"
#include "gtest/gtest.h"

namespace moed::cuda {
namespace {

// Largest key whose candidates at or above it weigh ≥ (or >) threshold, by sorting.
bool SortedSelect(const std::vector<uint64_t>& keys, const std::vector<uint64_t>& w, uint64_t threshold, bool at_least,
                  uint64_t* key) {
  std::vector<int> order(keys.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return keys[a] > keys[b]; });
  uint64_t cum = 0;
  for (int i : order) {
    cum += w[i];
    if (at_least ? cum >= threshold : cum > threshold) {
      *key = keys[i];
      return true;
    }
  }
  return false;
}

TEST(RadixSelectTest, MatchesSortingForCountsAndWeights) {
  std::mt19937 rng(3);
  for (int n : {1, 2, 7, 300, 5000}) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<uint64_t> keys(n), unit(n, 1), w(n);
      std::normal_distribution<float> nd(0.0f, trial % 2 ? 0.01f : 3.0f);  // narrow: many shared top digits
      std::uniform_int_distribution<int> ties(0, 3);
      for (int i = 0; i < n; ++i) {
        const float logit = trial % 5 == 0 ? static_cast<float>(ties(rng)) : nd(rng);  // exact ties too
        keys[i] = BestFirstKey(logit, i);
        w[i] = FixedWeight(std::exp(static_cast<double>(logit) - 10.0)) * (i % 9 == 0 ? 0 : 1);
      }
      uint64_t total = 0;
      for (uint64_t x : w) total += x;
      for (uint64_t k : {uint64_t{1}, uint64_t(n / 2 + 1), uint64_t(n)}) {
        bool found = false;
        uint64_t want = 0;
        ASSERT_TRUE(SortedSelect(keys, unit, k, true, &want));
        EXPECT_EQ(RadixSelectSerial(keys.data(), unit.data(), n, k, true, &found), want) << "n " << n << " k " << k;
        EXPECT_TRUE(found);
      }
      for (double frac : {0.0, 0.3, 0.9, 0.999999}) {
        for (bool at_least : {true, false}) {
          const uint64_t t = at_least ? CeilToFixed(frac * total) : FloorToFixed(frac * total);
          if (at_least && t == 0) continue;  // the contract: at_least thresholds ≥ 1
          uint64_t want = 0;
          bool found = false;
          const bool want_found = SortedSelect(keys, w, t, at_least, &want);
          const uint64_t got = RadixSelectSerial(keys.data(), w.data(), n, t, at_least, &found);
          ASSERT_EQ(found, want_found) << "n " << n << " frac " << frac;
          if (want_found) EXPECT_EQ(got, want) << "n " << n << " frac " << frac << " at_least " << at_least;
        }
      }
      // A total that falls short is reported, not answered.
      bool found = true;
      (void)RadixSelectSerial(keys.data(), w.data(), n, total + 1, true, &found);
      EXPECT_FALSE(found);
    }
  }
}

// The kernel's FilteredDrawRadix on one thread: top-k floor, top-p cut, the draw in the CPU's scan order.
int32_t DrawTwin(const std::vector<float>& row, const SamplingParams& p, int32_t sample_index) {
  const int vocab = static_cast<int>(row.size());
  std::vector<uint64_t> best(vocab), scan(vocab), w(vocab), unit(vocab, 1);
  const bool best_first = SampleScansBestFirst(p.top_p, p.top_k, vocab);
  float max_logit = row[0];
  for (float v : row) max_logit = std::max(max_logit, v);
  const double inv_t = 1.0 / p.temperature, m = max_logit * inv_t;
  for (int i = 0; i < vocab; ++i) {
    best[i] = BestFirstKey(row[i], i);
    scan[i] = ScanKey(row[i], i, best_first);
    w[i] = FixedWeight(std::exp(static_cast<double>(row[i]) * inv_t - m));
  }
  bool found = false;
  uint64_t floor = 0;
  if (p.top_k > 0 && p.top_k < vocab) floor = RadixSelectSerial(best.data(), unit.data(), vocab, p.top_k, true, &found);
  auto kept = [&](uint64_t f) {
    std::vector<uint64_t> kw(vocab);
    for (int i = 0; i < vocab; ++i) kw[i] = best[i] >= f ? w[i] : 0;
    return kw;
  };
  auto sum = [](const std::vector<uint64_t>& v) { return std::accumulate(v.begin(), v.end(), uint64_t{0}); };
  uint64_t total = sum(kept(floor));
  if (p.top_p < 1.0f && total > 0) {
    const uint64_t cut = RadixSelectSerial(best.data(), kept(floor).data(), vocab,
                                           CeilToFixed(static_cast<double>(p.top_p) * total), true, &found);
    if (found) floor = cut;
    total = sum(kept(floor));
  }
  const uint64_t u = FloorToFixed(CounterUniform(p.seed, sample_index) * static_cast<double>(total));
  const uint64_t x = RadixSelectSerial(scan.data(), kept(floor).data(), vocab, u, false, &found);
  return found ? KeyId(x) : -1;
}

TEST(RadixSelectTest, HostTwinOfTheDrawMatchesTheCpuSampler) {
  std::mt19937 rng(5);
  const float temps[] = {0.5f, 1.0f, 1.7f};
  const float top_ps[] = {1.0f, 0.9f, 0.3f};
  const int top_ks[] = {0, 1, 40, 999};
  int draws = 0;
  for (int vocab : {50, 1000, 8000}) {
    std::normal_distribution<float> nd(0.0f, 3.0f);
    for (int r = 0; r < 12; ++r) {
      std::vector<float> row(vocab);
      for (float& v : row) v = nd(rng);
      if (r % 4 == 0) {
        for (int i = 0; i < vocab; i += 3) row[i] = std::round(row[i]);  // exact ties
      }
      for (float t : temps) {
        for (float tp : top_ps) {
          for (int tk : top_ks) {
            SamplingParams p;
            p.temperature = t;
            p.top_p = tp;
            p.top_k = tk;
            p.seed = 1000 + r;
            const int32_t index = r * 7 + tk;
            ASSERT_EQ(DrawTwin(row, p, index), SampleToken(row, p, index).token)
                << "vocab " << vocab << " row " << r << " T " << t << " top_p " << tp << " top_k " << tk;
            ++draws;
          }
        }
      }
    }
  }
  EXPECT_EQ(draws, 3 * 12 * 3 * 3 * 4);
}

}  // namespace
}  // namespace moed::cuda
