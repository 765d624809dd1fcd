// The grouped MoE path's index math (engine/backend/cuda/host/moe_schedule.h), run on the host exactly as the
// kernels run it: the schedule from the capacity-limited counts, every kept row covered by exactly one tile and
// one GEMV slot, the host-side bounds the grids are sized by, the split-K ranges; and flash-decoding's splits.
#include <algorithm>
#include <random>
#include <vector>

#include "engine/backend/cuda/host/flash_plan.h"
#include "engine/backend/cuda/host/moe_schedule.h"
#include "engine/moe/router.h"
#include "gtest/gtest.h"

namespace moed::cuda {
namespace {

// kept counts as the permutation computes them: ApplyCapacity over skewed random routes.
std::vector<int32_t> RandomKept(std::mt19937& rng, int tokens, int top_k, int E, float factor) {
  const int A = tokens * top_k;
  std::vector<int32_t> experts(A);
  std::normal_distribution<float> nd(0.0f, E / 4.0f);
  for (int32_t& e : experts) e = std::min<int>(E - 1, static_cast<int>(std::abs(nd(rng))));
  std::vector<uint8_t> kept_flag(A);
  std::vector<int64_t> routed(E, 0), dropped(E, 0);
  ApplyCapacity(experts.data(), A, E, ExpertCapacity(factor, A, E), kept_flag.data(), routed.data(), dropped.data());
  std::vector<int32_t> kept(E);
  for (int e = 0; e < E; ++e) kept[e] = static_cast<int32_t>(routed[e] - dropped[e]);
  return kept;
}

struct Case {
  int tokens, top_k, E;
};
constexpr Case kCases[] = {{1, 2, 8},   {1, 8, 128},  {7, 4, 16},   {16, 2, 8},     {64, 8, 64},
                           {64, 8, 128}, {64, 2, 8},  {512, 8, 128}, {1000, 1, 8}, {16384, 2, 8}};

TEST(MoeScheduleTest, ScheduleMatchesCountsAndTilesCoverEveryRowOnce) {
  std::mt19937 rng(7);
  for (const Case& c : kCases) {
    for (float factor : {0.0f, 1.0f, 0.5f}) {
      const std::vector<int32_t> kept = RandomKept(rng, c.tokens, c.top_k, c.E, factor);
      std::vector<int32_t> offsets(c.E + 1), tiles(c.E + 1), active(c.E);
      const int n_active = BuildExpertSchedule(kept.data(), c.E, kMmaTileRows, offsets.data(), tiles.data(),
                                               active.data());
      int rows = 0, want_active = 0;
      for (int e = 0; e < c.E; ++e) {
        ASSERT_EQ(offsets[e], rows);
        rows += kept[e];
        if (kept[e] > 0) ASSERT_EQ(active[want_active++], e);
      }
      ASSERT_EQ(offsets[c.E], rows);
      ASSERT_EQ(n_active, want_active);
      for (int i = n_active; i < c.E; ++i) ASSERT_EQ(active[i], -1);
      // The grid is sized on the host without the counts: it must never be short.
      const int A = c.tokens * c.top_k;
      ASSERT_LE(tiles[c.E], MaxTiles(A, c.E, kMmaTileRows)) << c.tokens << " " << c.E;
      // Walk the tiles as GroupedMmaKernel does: every kept row exactly once, in its own expert's range.
      std::vector<int> covered(rows, 0);
      for (int t = 0; t < tiles[c.E]; ++t) {
        const int e = ExpertOfTile(tiles.data(), c.E, t);
        ASSERT_GT(kept[e], 0) << "tile " << t << " went to an expert without rows";
        const int m0 = (t - tiles[e]) * kMmaTileRows;
        ASSERT_LT(m0, kept[e]);
        for (int m = m0; m < std::min(kept[e], m0 + kMmaTileRows); ++m) ++covered[offsets[e] + m];
      }
      // Walk the GEMV slots as the streaming kernels do.
      std::vector<int> by_slot(rows, 0);
      const GemvPlan p = PlanGemv(A, c.E, 2048, 1024, 132, true);
      ASSERT_GE(p.slots, n_active);
      for (int slot = 0; slot < p.slots; ++slot) {
        if (slot >= n_active) continue;
        const int e = active[slot];
        for (int r = offsets[e]; r < offsets[e + 1]; ++r) ++by_slot[r];
      }
      for (int r = 0; r < rows; ++r) {
        ASSERT_EQ(covered[r], 1) << "row " << r;
        ASSERT_EQ(by_slot[r], 1) << "row " << r;
      }
    }
  }
}

TEST(MoeScheduleTest, ExpertOfTileSkipsEmptyExperts) {
  const std::vector<int32_t> kept = {0, 0, 65, 0, 1, 0, 0, 128, 0};
  const int E = static_cast<int>(kept.size());
  std::vector<int32_t> offsets(E + 1), tiles(E + 1), active(E);
  ASSERT_EQ(BuildExpertSchedule(kept.data(), E, 64, offsets.data(), tiles.data(), active.data()), 3);
  ASSERT_EQ(tiles[E], 2 + 1 + 2);
  const int want[] = {2, 2, 4, 7, 7};
  for (int t = 0; t < tiles[E]; ++t) EXPECT_EQ(ExpertOfTile(tiles.data(), E, t), want[t]) << "tile " << t;
}

// Split-K ranges partition K in whole warp passes; at most 8 splits; one when the columns already fill the chip.
TEST(MoeScheduleTest, GemvSplitsPartitionK) {
  for (int K : {64, 256, 768, 1024, 1408, 2048, 4096, 14336}) {
    for (int cols : {16, 64, 2048, 4096, 28672}) {
      for (int A : {1, 2, 8, 64, 512}) {
        const GemvPlan p = PlanGemv(A, 8, cols, K, 132, true);
        ASSERT_GE(p.splits, 1);
        ASSERT_LE(p.splits, 8);
        ASSERT_EQ(p.k_per_split % kGemvKStep, 0);
        ASSERT_GE(static_cast<int64_t>(p.splits) * p.k_per_split, K);
        ASSERT_LT(static_cast<int64_t>(p.splits - 1) * p.k_per_split, K) << "an empty split";
        if (static_cast<int64_t>(p.slots) * p.col_blocks >= 4 * 132) ASSERT_EQ(p.splits, 1);
        const GemvPlan q = PlanGemv(A, 8, cols, K, 132, false);
        ASSERT_EQ(q.splits, 1);
        ASSERT_EQ(q.k_per_split, K);
      }
    }
  }
  // Mixtral's down projection at one token: 2 experts × 256 column blocks = 512 CTAs → 2 splits of 7168.
  const GemvPlan m = PlanGemv(2, 8, 4096, 14336, 132, true);
  EXPECT_EQ(m.slots, 2);
  EXPECT_EQ(m.col_blocks, 256);
  EXPECT_EQ(m.splits, 2);
}

TEST(MoeScheduleTest, KernelChoiceFollowsRowsPerExpert) {
  EXPECT_TRUE(UseGemv(1, 2, 8));      // Mixtral decode
  EXPECT_TRUE(UseGemv(16, 2, 8));     // 4 rows per expert
  EXPECT_FALSE(UseGemv(64, 2, 8));    // 16 rows per expert: tensor cores
  EXPECT_TRUE(UseGemv(64, 8, 128));   // Qwen3 batch 64: 4 rows per expert
  EXPECT_FALSE(UseGemv(2048, 8, 128));
  EXPECT_FALSE(UseGemv(0, 2, 8));
}

// Flash-decoding's split ranges cover each row's positions exactly once, in order, split 0 never empty.
TEST(FlashPlanTest, SplitsCoverTheContextOnce) {
  for (int splits = 1; splits <= kFlashMaxSplits; ++splits) {
    for (int lo : {0, 3, 100}) {
      for (int n : {1, 2, 5, 31, 32, 33, 512, 2049}) {
        const int pos = lo + n - 1;
        int next = lo;
        for (int sp = 0; sp < splits; ++sp) {
          int p0 = 0, p1 = 0;
          FlashSplitRange(lo, pos, splits, sp, &p0, &p1);
          if (sp == 0) ASSERT_LT(p0, p1);
          if (p0 >= p1) continue;  // empty past the end
          ASSERT_EQ(p0, next) << "splits " << splits << " n " << n << " sp " << sp;
          next = p1;
        }
        ASSERT_EQ(next, pos + 1) << "splits " << splits << " n " << n;
      }
    }
  }
  EXPECT_EQ(FlashDecodeSplits(1, 8, 132), 32);
  EXPECT_EQ(FlashDecodeSplits(64, 4, 132), 2);
  EXPECT_EQ(FlashDecodeSplits(2048, 4, 132), 1);
}

}  // namespace
}  // namespace moed::cuda
