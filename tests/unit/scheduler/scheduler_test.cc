// Scheduler: token budget, decode before prefill, chunked prefill, admission order, running limit,
// preemption victim and requeue, and a long random simulation (no starvation, no leaks).
#include "engine/scheduler/scheduler.h"

#include <map>
#include <random>

#include "gtest/gtest.h"

namespace moed {
namespace {

absl::Time T(int s) { return absl::FromUnixSeconds(1000 + s); }

// Appends one sampled token for every chunk that reached the end of its sequence.
void SampleAll(Scheduler& s, const SchedulePlan& plan) {
  for (const ScheduledChunk& c : plan.chunks) {
    if (c.reaches_end) s.AppendToken(c.seq_id);
  }
}

TEST(SchedulerTest, ChunkedPrefillAcrossStepsThenDecode) {
  KvBlockManager kv(16, 4);
  Scheduler s({.max_running_seqs = 4, .max_batch_tokens = 8}, &kv);
  ASSERT_TRUE(s.Add(1, 0, T(0), 20).ok());
  std::vector<std::pair<int, int>> spans;
  for (int step = 0; step < 3; ++step) {
    SchedulePlan p = s.Schedule();
    ASSERT_EQ(p.chunks.size(), 1u);
    EXPECT_LE(p.num_tokens, 8);
    EXPECT_EQ(p.chunks[0].num_prefill_tokens, p.chunks[0].num_tokens);
    spans.push_back({p.chunks[0].start_pos, p.chunks[0].num_tokens});
    EXPECT_EQ(p.chunks[0].reaches_end, step == 2);
    SampleAll(s, p);
  }
  EXPECT_EQ(spans, (std::vector<std::pair<int, int>>{{0, 8}, {8, 8}, {16, 4}}));
  EXPECT_EQ(kv.Table(1).size(), 5u);
  SchedulePlan p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].start_pos, 20);
  EXPECT_EQ(p.chunks[0].num_tokens, 1);
  EXPECT_EQ(p.chunks[0].num_prefill_tokens, 0);
  EXPECT_TRUE(p.chunks[0].reaches_end);
  EXPECT_EQ(kv.Table(1).size(), 6u);  // position 20 opened a sixth block
}

TEST(SchedulerTest, DecodesComeBeforePrefillAndBudgetIsRespected) {
  KvBlockManager kv(64, 4);
  Scheduler s({.max_running_seqs = 8, .max_batch_tokens = 10}, &kv);
  ASSERT_TRUE(s.Add(1, 0, T(0), 3).ok());
  ASSERT_TRUE(s.Add(2, 0, T(1), 4).ok());
  SchedulePlan p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  SampleAll(s, p);
  ASSERT_TRUE(s.Add(3, -5, T(2), 30).ok());  // urgent but new: still after running decodes
  p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 3u);
  EXPECT_EQ(p.chunks[0].seq_id, 1);
  EXPECT_EQ(p.chunks[1].seq_id, 2);
  EXPECT_EQ(p.chunks[2].seq_id, 3);
  EXPECT_EQ(p.chunks[2].num_tokens, 8);  // what the budget leaves
  EXPECT_EQ(p.num_tokens, 10);
  SampleAll(s, p);
  p = s.Schedule();  // decodes, then the continuation of 3
  ASSERT_EQ(p.chunks.size(), 3u);
  EXPECT_EQ(p.chunks[2].seq_id, 3);
  EXPECT_EQ(p.chunks[2].start_pos, 8);
  EXPECT_EQ(p.chunks[2].num_tokens, 8);
}

TEST(SchedulerTest, AdmitsByPriorityThenFifo) {
  KvBlockManager kv(64, 4);
  Scheduler s({.max_running_seqs = 8, .max_batch_tokens = 100}, &kv);
  ASSERT_TRUE(s.Add(1, 1, T(0), 2).ok());
  ASSERT_TRUE(s.Add(2, 0, T(1), 2).ok());
  ASSERT_TRUE(s.Add(3, 0, T(2), 2).ok());
  ASSERT_TRUE(s.Add(4, 1, T(3), 2).ok());
  ASSERT_TRUE(s.Add(5, 0, T(4), 2).ok());
  EXPECT_EQ(s.waiting(), (std::vector<int64_t>{2, 3, 5, 1, 4}));
  SchedulePlan p = s.Schedule();
  std::vector<int64_t> order;
  for (const ScheduledChunk& c : p.chunks) order.push_back(c.seq_id);
  EXPECT_EQ(order, (std::vector<int64_t>{2, 3, 5, 1, 4}));
  EXPECT_EQ(s.Add(3, 0, T(5), 2).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(s.Add(9, 0, T(5), 0).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SchedulerTest, RunningLimitHoldsBackAdmission) {
  KvBlockManager kv(64, 4);
  Scheduler s({.max_running_seqs = 2, .max_batch_tokens = 100}, &kv);
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(s.Add(id, 0, T(id), 5).ok());
  SchedulePlan p = s.Schedule();
  EXPECT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(s.num_running(), 2);
  EXPECT_EQ(s.waiting(), (std::vector<int64_t>{3}));
  SampleAll(s, p);
  s.Remove(1);
  EXPECT_EQ(kv.Table(1).size(), 0u);
  p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(p.chunks[1].seq_id, 3);
  EXPECT_EQ(s.num_waiting(), 0);
}

TEST(SchedulerTest, HeadOfQueueWaitsForBlocksWithoutBeingOvertaken) {
  KvBlockManager kv(4, 4);
  Scheduler s({.max_running_seqs = 8, .max_batch_tokens = 100}, &kv);
  ASSERT_TRUE(s.Add(1, 0, T(0), 12).ok());  // 3 blocks
  ASSERT_TRUE(s.Add(2, 0, T(1), 8).ok());   // 2 blocks: does not fit
  ASSERT_TRUE(s.Add(3, 0, T(2), 2).ok());   // would fit, but must not overtake 2
  SchedulePlan p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(s.waiting(), (std::vector<int64_t>{2, 3}));
}

TEST(SchedulerTest, PreemptsLatestArrivalAndRequeuesItAtTheFront) {
  KvBlockManager kv(4, 4);
  Scheduler s({.max_running_seqs = 8, .max_batch_tokens = 100}, &kv);
  ASSERT_TRUE(s.Add(1, 0, T(0), 8).ok());
  ASSERT_TRUE(s.Add(2, 0, T(1), 8).ok());
  SchedulePlan p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(kv.num_free(), 0);
  SampleAll(s, p);
  ASSERT_TRUE(s.Add(3, 0, T(2), 1).ok());
  p = s.Schedule();  // 1 needs a block for position 8: 2 is the victim
  EXPECT_EQ(p.preempted, (std::vector<int64_t>{2}));
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq_id, 1);
  EXPECT_EQ(s.waiting(), (std::vector<int64_t>{2, 3}));  // front, ahead of a later arrival
  const SchedSequence* two = s.Find(2);
  ASSERT_NE(two, nullptr);
  EXPECT_EQ(two->num_computed, 0);
  EXPECT_EQ(two->num_tokens, 9);  // prompt + its sampled token: recomputed together
  EXPECT_EQ(two->num_preemptions, 1);
  EXPECT_TRUE(kv.Table(2).empty());
  s.Remove(1);
  p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(p.chunks[0].seq_id, 2);
  EXPECT_EQ(p.chunks[0].num_tokens, 9);
  EXPECT_EQ(p.chunks[0].num_prefill_tokens, 9);
  EXPECT_TRUE(p.chunks[0].reaches_end);
}

TEST(SchedulerTest, PreemptsLowestPriorityEvenIfEarlier) {
  KvBlockManager kv(4, 4);
  Scheduler s({.max_running_seqs = 8, .max_batch_tokens = 100}, &kv);
  ASSERT_TRUE(s.Add(1, 3, T(0), 8).ok());  // low priority, first
  ASSERT_TRUE(s.Add(2, 0, T(1), 8).ok());
  SchedulePlan p = s.Schedule();
  SampleAll(s, p);
  p = s.Schedule();
  EXPECT_EQ(p.preempted, (std::vector<int64_t>{1}));
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq_id, 2);
}

TEST(SchedulerTest, SequenceThatIsTheWorstPreemptsItself) {
  KvBlockManager kv(5, 4);
  Scheduler s({.max_running_seqs = 8, .max_batch_tokens = 100}, &kv);
  ASSERT_TRUE(s.Add(1, 0, T(0), 12).ok());
  ASSERT_TRUE(s.Add(2, 0, T(1), 4).ok());
  SchedulePlan p = s.Schedule();
  SampleAll(s, p);
  // 1 now has 13 tokens and takes the last free block; 2 has 5 and needs a second block: none
  // is left and 1 is already scheduled, so 2 is the only candidate and steps back itself.
  p = s.Schedule();
  EXPECT_EQ(p.preempted, (std::vector<int64_t>{2}));
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq_id, 1);
  EXPECT_EQ(s.num_running(), 1);
  EXPECT_EQ(kv.num_used(), 4);
}

// Random arrivals, lengths and priorities under a tight KV pool: every sequence finishes, each step
// respects its limits, chunks are contiguous per sequence, and no block leaks.
TEST(SchedulerTest, LongRandomSimulationFinishesEverySequence) {
  std::mt19937 rng(42);
  const int kBlockSize = 8, kBlocks = 20, kMaxLen = kBlockSize * kBlocks;
  KvBlockManager kv(kBlocks, kBlockSize);
  Scheduler s({.max_running_seqs = 6, .max_batch_tokens = 24}, &kv);
  struct Target { int prompt; int gen; int generated = 0; int next_pos = 0; };
  std::map<int64_t, Target> live;
  int64_t next_id = 0, preemptions = 0, finished = 0;
  const int kSeqs = 300;
  int step = 0;
  for (; step < 200000 && (next_id < kSeqs || !live.empty()); ++step) {
    if (next_id < kSeqs && rng() % 3 == 0) {
      Target t{.prompt = 1 + static_cast<int>(rng() % 60), .gen = 1 + static_cast<int>(rng() % 50)};
      t.prompt = std::min(t.prompt, kMaxLen - t.gen);
      ASSERT_TRUE(s.Add(next_id, static_cast<int>(rng() % 3), T(step), t.prompt).ok());
      live[next_id++] = t;
    }
    SchedulePlan p = s.Schedule();
    if (!live.empty()) ASSERT_FALSE(p.chunks.empty()) << "no progress at step " << step;
    ASSERT_LE(p.num_tokens, 24);
    ASSERT_LE(s.num_running(), 6);
    preemptions += p.preempted.size();
    for (int64_t id : p.preempted) live[id].next_pos = 0;
    for (const ScheduledChunk& c : p.chunks) {
      Target& t = live.at(c.seq_id);
      ASSERT_EQ(c.start_pos, t.next_pos) << "seq " << c.seq_id;
      t.next_pos += c.num_tokens;
      ASSERT_GE(static_cast<int>(kv.Table(c.seq_id).size()) * kBlockSize, t.next_pos);
      if (!c.reaches_end) continue;
      if (++t.generated == t.gen) {
        s.Remove(c.seq_id);
        live.erase(c.seq_id);
        ++finished;
      } else {
        s.AppendToken(c.seq_id);
      }
    }
  }
  EXPECT_EQ(finished, kSeqs) << "after " << step << " steps";
  EXPECT_GT(preemptions, 0);
  EXPECT_EQ(kv.num_used(), 0);
  EXPECT_EQ(s.num_running() + s.num_waiting(), 0);
}

}  // namespace
}  // namespace moed
