// EP planner: packing by hand on a skewed layer, replication of the hot expert, slot checks, all-to-all volume.
#include "engine/moe/ep_planner.h"

#include <algorithm>
#include <numeric>
#include <vector>

#include "gtest/gtest.h"

namespace moed {
namespace {

TEST(EpPlannerTest, UniformLoadPacksEvenly) {
  absl::StatusOr<LayerPlacement> p = PlanLayer(std::vector<double>(8, 5.0), 4, 0);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_DOUBLE_EQ(p->balancedness, 1.0);
  for (const auto& slots : p->gpu_experts) EXPECT_EQ(slots.size(), 2u);
}

TEST(EpPlannerTest, SkewedLayerWithoutReplicasByHand) {
  // Copies by load: e0 8, e7 2, then e1..e6 1 each, 2 slots per GPU, each to the least-loaded GPU with room:
  // G0 {e0, e6} = 9, G1 {e7, e5} = 3, G2 {e1, e3} = 2, G3 {e2, e4} = 2 → mean 4 / max 9.
  const std::vector<double> loads = {8, 1, 1, 1, 1, 1, 1, 2};
  absl::StatusOr<LayerPlacement> p = PlanLayer(loads, 4, 0);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->gpu_load, (std::vector<double>{9, 3, 2, 2}));
  EXPECT_EQ(p->gpu_experts[0], (std::vector<int>{0, 6}));
  EXPECT_EQ(p->gpu_experts[1], (std::vector<int>{7, 5}));
  EXPECT_DOUBLE_EQ(p->balancedness, 4.0 / 9.0);
}

TEST(EpPlannerTest, ReplicasGoToTheHotExpertAndSpreadOverGpus) {
  const std::vector<double> loads = {8, 1, 1, 1, 1, 1, 1, 2};
  absl::StatusOr<LayerPlacement> p = PlanLayer(loads, 4, 4);
  ASSERT_TRUE(p.ok()) << p.status();
  // Load per copy: e0 8 → 4 → 2.67 → 2 (= e7's 2; the lower id wins) → 1.6.
  EXPECT_EQ(p->replicas, (std::vector<int>{5, 1, 1, 1, 1, 1, 1, 1}));
  int holding_e0 = 0;
  for (const auto& slots : p->gpu_experts) {
    EXPECT_EQ(slots.size(), 3u);
    holding_e0 += std::count(slots.begin(), slots.end(), 0) > 0;
  }
  EXPECT_EQ(holding_e0, 4);  // 5 copies on 4 GPUs: every GPU has one
  EXPECT_DOUBLE_EQ(std::accumulate(p->gpu_load.begin(), p->gpu_load.end(), 0.0), 16.0);
  EXPECT_GT(p->balancedness, 0.85);
  EXPECT_GT(p->balancedness, PlanLayer(loads, 4, 0)->balancedness);
}

TEST(EpPlannerTest, RejectsUnevenSlotsAndBadInput) {
  absl::StatusOr<LayerPlacement> p = PlanLayer(std::vector<double>(8, 1.0), 3, 0);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("multiple of gpus (3)"), std::string::npos) << p.status();
  EXPECT_FALSE(PlanLayer(std::vector<double>(8, 1.0), 0, 0).ok());
  EXPECT_FALSE(PlanLayer(std::vector<double>(8, 1.0), 4, -4).ok());
  EXPECT_FALSE(PlanLayer(std::vector<double>{1, -1}, 2, 0).ok());
  EXPECT_TRUE(PlanLayer(std::vector<double>(8, 0.0), 16, 8).ok());  // more GPUs than experts: replicas fill
}

TEST(EpPlannerTest, ContiguousBaseline) {
  absl::StatusOr<LayerPlacement> p = PlanLayerContiguous(std::vector<double>{8, 1, 1, 1, 1, 1, 1, 2}, 4);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->gpu_load, (std::vector<double>{9, 2, 2, 3}));
  EXPECT_FALSE(PlanLayerContiguous(std::vector<double>(8, 1.0), 3).ok());
}

TEST(EpPlannerTest, AllToAllCountsOnlyRemoteAssignments) {
  const std::vector<double> assignments = {10, 10};
  // One GPU: nothing crosses.
  EXPECT_EQ(AllToAllBytes(assignments, *PlanLayer(assignments, 1, 0), 100), 0.0);
  // Two GPUs, one expert each: half of each expert's tokens live on the other GPU, dispatch + combine.
  EXPECT_DOUBLE_EQ(AllToAllBytes(assignments, *PlanLayerContiguous(assignments, 2), 100), 2 * 10 * 0.5 * 2 * 100);
  // Both experts replicated on both GPUs: all local.
  absl::StatusOr<LayerPlacement> both = PlanLayer(assignments, 2, 2);
  ASSERT_TRUE(both.ok());
  EXPECT_EQ(both->gpu_experts[0].size(), 2u);
  EXPECT_NE(both->gpu_experts[0][0], both->gpu_experts[0][1]);
  EXPECT_EQ(AllToAllBytes(assignments, *both, 100), 0.0);
}

}  // namespace
}  // namespace moed
