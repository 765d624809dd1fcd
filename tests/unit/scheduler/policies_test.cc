// Scheduling policies: priority-then-FIFO order and the lowest-rank preemption victim.
#include "engine/scheduler/policies.h"

#include <vector>

#include "gtest/gtest.h"

namespace moed {
namespace {

SchedSequence Seq(int64_t id, int32_t priority, absl::Time arrival, uint64_t seq) {
  SchedSequence s;
  s.id = id;
  s.priority = priority;
  s.arrival_time = arrival;
  s.arrival_seq = seq;
  return s;
}

TEST(PriorityFifoOrderTest, LowerPriorityValueFirstThenArrival) {
  PriorityFifoOrder order;
  absl::Time t0 = absl::FromUnixSeconds(100);
  SchedSequence urgent_late = Seq(1, -1, t0 + absl::Seconds(5), 9);
  SchedSequence normal_early = Seq(2, 0, t0, 0);
  SchedSequence normal_late = Seq(3, 0, t0 + absl::Seconds(1), 1);
  SchedSequence normal_same_time_added_later = Seq(4, 0, t0 + absl::Seconds(1), 2);
  EXPECT_TRUE(order.Before(urgent_late, normal_early));
  EXPECT_FALSE(order.Before(normal_early, urgent_late));
  EXPECT_TRUE(order.Before(normal_early, normal_late));
  EXPECT_TRUE(order.Before(normal_late, normal_same_time_added_later));
  EXPECT_FALSE(order.Before(normal_late, normal_late));  // irreflexive
}

TEST(LowestRankVictimTest, PicksLowestPriorityThenLatestArrival) {
  PriorityFifoOrder order;
  LowestRankVictim policy(order);
  absl::Time t0 = absl::FromUnixSeconds(100);
  SchedSequence a = Seq(1, 0, t0, 0);
  SchedSequence b = Seq(2, 2, t0 + absl::Seconds(1), 1);  // worst priority
  SchedSequence c = Seq(3, 1, t0 + absl::Seconds(9), 2);
  SchedSequence d = Seq(4, 2, t0 + absl::Seconds(2), 3);  // worst priority, later arrival
  std::vector<const SchedSequence*> all = {&a, &b, &c, &d};
  EXPECT_EQ(policy.PickVictim(all), 3u);
  std::vector<const SchedSequence*> abc = {&c, &a, &b};
  EXPECT_EQ(policy.PickVictim(abc), 2u);
  std::vector<const SchedSequence*> ac = {&a, &c};
  EXPECT_EQ(policy.PickVictim(ac), 1u);
  std::vector<const SchedSequence*> only = {&a};
  EXPECT_EQ(policy.PickVictim(only), 0u);
}

}  // namespace
}  // namespace moed
