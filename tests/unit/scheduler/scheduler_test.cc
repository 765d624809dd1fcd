// Scheduler: token budget, decode before prefill, chunked prefill, admission order, running limit,
// preemption victim and requeue, and a long random simulation (no starvation, no leaks).
#include "engine/scheduler/scheduler.h"

#include <map>
#include <memory>
#include <random>

#include "gtest/gtest.h"

namespace moed {
namespace {

absl::Time T(int s) { return absl::FromUnixSeconds(1000 + s); }

// The test's sequences (the engine's Request objects in production), by id; tokens are distinct per sequence.
class Seqs {
 public:
  absl::Status Add(Scheduler& s, int64_t id, int32_t priority, absl::Time arrival, int32_t num_tokens) {
    std::vector<int32_t> tokens;
    for (int32_t i = 0; i < num_tokens; ++i) tokens.push_back(static_cast<int32_t>(id * 1000 + i));
    return Add(s, id, priority, arrival, std::move(tokens));
  }
  absl::Status Add(Scheduler& s, int64_t id, int32_t priority, absl::Time arrival, std::vector<int32_t> tokens) {
    auto& seq = all_[id];
    if (seq == nullptr) seq = std::make_unique<SchedSequence>();
    seq->id = id;
    seq->priority = priority;
    seq->arrival_time = arrival;
    seq->tokens = std::move(tokens);
    return s.Add(seq.get());
  }
  SchedSequence& operator[](int64_t id) { return *all_.at(id); }

 private:
  std::map<int64_t, std::unique_ptr<SchedSequence>> all_;
};

std::vector<int64_t> Ids(const std::vector<SchedSequence*>& v) {
  std::vector<int64_t> ids;
  for (const SchedSequence* s : v) ids.push_back(s->id);
  return ids;
}

// Appends one sampled token for every chunk that reached the end of its sequence.
void SampleAll(const SchedulePlan& plan) {
  for (const ScheduledChunk& c : plan.chunks) {
    if (c.reaches_end) c.seq->tokens.push_back(7);
  }
}

TEST(SchedulerTest, ChunkedPrefillAcrossStepsThenDecode) {
  KvBlockManager kv(16, 4);
  Seqs seqs;
  Scheduler s({.max_running_seqs = 4, .max_batch_tokens = 8}, &kv);
  ASSERT_TRUE(seqs.Add(s, 1, 0, T(0), 20).ok());
  std::vector<std::pair<int, int>> spans;
  for (int step = 0; step < 3; ++step) {
    SchedulePlan p = s.Schedule();
    ASSERT_EQ(p.chunks.size(), 1u);
    EXPECT_LE(p.num_tokens, 8);
    EXPECT_EQ(p.chunks[0].num_prefill_tokens, p.chunks[0].num_tokens);
    spans.push_back({p.chunks[0].start_pos, p.chunks[0].num_tokens});
    EXPECT_EQ(p.chunks[0].reaches_end, step == 2);
    SampleAll(p);
  }
  EXPECT_EQ(spans, (std::vector<std::pair<int, int>>{{0, 8}, {8, 8}, {16, 4}}));
  EXPECT_EQ(seqs[1].kv.blocks.size(), 5u);
  SchedulePlan p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].start_pos, 20);
  EXPECT_EQ(p.chunks[0].num_tokens, 1);
  EXPECT_EQ(p.chunks[0].num_prefill_tokens, 0);
  EXPECT_TRUE(p.chunks[0].reaches_end);
  EXPECT_EQ(seqs[1].kv.blocks.size(), 6u);  // position 20 opened a sixth block
}

TEST(SchedulerTest, DecodesComeBeforePrefillAndBudgetIsRespected) {
  KvBlockManager kv(64, 4);
  Seqs seqs;
  Scheduler s({.max_running_seqs = 8, .max_batch_tokens = 10}, &kv);
  ASSERT_TRUE(seqs.Add(s, 1, 0, T(0), 3).ok());
  ASSERT_TRUE(seqs.Add(s, 2, 0, T(1), 4).ok());
  SchedulePlan p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  SampleAll(p);
  ASSERT_TRUE(seqs.Add(s, 3, -5, T(2), 30).ok());  // urgent but new: still after running decodes
  p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 3u);
  EXPECT_EQ(p.chunks[0].seq->id, 1);
  EXPECT_EQ(p.chunks[1].seq->id, 2);
  EXPECT_EQ(p.chunks[2].seq->id, 3);
  EXPECT_EQ(p.chunks[2].num_tokens, 8);  // what the budget leaves
  EXPECT_EQ(p.num_tokens, 10);
  SampleAll(p);
  p = s.Schedule();  // decodes, then the continuation of 3
  ASSERT_EQ(p.chunks.size(), 3u);
  EXPECT_EQ(p.chunks[2].seq->id, 3);
  EXPECT_EQ(p.chunks[2].start_pos, 8);
  EXPECT_EQ(p.chunks[2].num_tokens, 8);
}

TEST(SchedulerTest, AdmitsByPriorityThenFifo) {
  KvBlockManager kv(64, 4);
  Seqs seqs;
  Scheduler s({.max_running_seqs = 8, .max_batch_tokens = 100}, &kv);
  ASSERT_TRUE(seqs.Add(s, 1, 1, T(0), 2).ok());
  ASSERT_TRUE(seqs.Add(s, 2, 0, T(1), 2).ok());
  ASSERT_TRUE(seqs.Add(s, 3, 0, T(2), 2).ok());
  ASSERT_TRUE(seqs.Add(s, 4, 1, T(3), 2).ok());
  ASSERT_TRUE(seqs.Add(s, 5, 0, T(4), 2).ok());
  EXPECT_EQ(Ids(s.waiting()), (std::vector<int64_t>{2, 3, 5, 1, 4}));
  SchedulePlan p = s.Schedule();
  std::vector<int64_t> order;
  for (const ScheduledChunk& c : p.chunks) order.push_back(c.seq->id);
  EXPECT_EQ(order, (std::vector<int64_t>{2, 3, 5, 1, 4}));
  EXPECT_EQ(seqs.Add(s, 3, 0, T(5), 2).code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(seqs.Add(s, 9, 0, T(5), 0).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SchedulerTest, RunningLimitHoldsBackAdmission) {
  KvBlockManager kv(64, 4);
  Seqs seqs;
  Scheduler s({.max_running_seqs = 2, .max_batch_tokens = 100}, &kv);
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(seqs.Add(s, id, 0, T(id), 5).ok());
  SchedulePlan p = s.Schedule();
  EXPECT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(s.num_running(), 2);
  EXPECT_EQ(Ids(s.waiting()), (std::vector<int64_t>{3}));
  SampleAll(p);
  s.Remove(&seqs[1]);
  EXPECT_EQ(seqs[1].kv.blocks.size(), 0u);
  p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(p.chunks[1].seq->id, 3);
  EXPECT_EQ(s.num_waiting(), 0);
}

TEST(SchedulerTest, HeadOfQueueWaitsForBlocksWithoutBeingOvertaken) {
  KvBlockManager kv(4, 4);
  Seqs seqs;
  Scheduler s({.max_running_seqs = 8, .max_batch_tokens = 100}, &kv);
  ASSERT_TRUE(seqs.Add(s, 1, 0, T(0), 12).ok());  // 3 blocks
  ASSERT_TRUE(seqs.Add(s, 2, 0, T(1), 8).ok());   // 2 blocks: does not fit
  ASSERT_TRUE(seqs.Add(s, 3, 0, T(2), 2).ok());   // would fit, but must not overtake 2
  SchedulePlan p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(Ids(s.waiting()), (std::vector<int64_t>{2, 3}));
}

TEST(SchedulerTest, PreemptsLatestArrivalAndRequeuesItAtTheFront) {
  KvBlockManager kv(4, 4);
  Seqs seqs;
  Scheduler s({.max_running_seqs = 8, .max_batch_tokens = 100}, &kv);
  ASSERT_TRUE(seqs.Add(s, 1, 0, T(0), 8).ok());
  ASSERT_TRUE(seqs.Add(s, 2, 0, T(1), 8).ok());
  SchedulePlan p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(kv.num_free(), 0);
  SampleAll(p);
  ASSERT_TRUE(seqs.Add(s, 3, 0, T(2), 1).ok());
  p = s.Schedule();  // 1 needs a block for position 8: 2 is the victim
  EXPECT_EQ(Ids(p.preempted), (std::vector<int64_t>{2}));
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq->id, 1);
  EXPECT_EQ(Ids(s.waiting()), (std::vector<int64_t>{2, 3}));  // front, ahead of a later arrival
  const SchedSequence* two = &seqs[2];
  EXPECT_EQ(two->num_computed, 0);
  EXPECT_EQ(two->num_tokens(), 9);  // prompt + its sampled token: recomputed together
  EXPECT_EQ(two->num_preemptions, 1);
  EXPECT_TRUE(seqs[2].kv.blocks.empty());
  s.Remove(&seqs[1]);
  p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 2u);
  EXPECT_EQ(p.chunks[0].seq->id, 2);
  EXPECT_EQ(p.chunks[0].num_tokens, 9);
  EXPECT_EQ(p.chunks[0].num_prefill_tokens, 9);
  EXPECT_TRUE(p.chunks[0].reaches_end);
}

TEST(SchedulerTest, PreemptsLowestPriorityEvenIfEarlier) {
  KvBlockManager kv(4, 4);
  Seqs seqs;
  Scheduler s({.max_running_seqs = 8, .max_batch_tokens = 100}, &kv);
  ASSERT_TRUE(seqs.Add(s, 1, 3, T(0), 8).ok());  // low priority, first
  ASSERT_TRUE(seqs.Add(s, 2, 0, T(1), 8).ok());
  SchedulePlan p = s.Schedule();
  SampleAll(p);
  p = s.Schedule();
  EXPECT_EQ(Ids(p.preempted), (std::vector<int64_t>{1}));
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq->id, 2);
}

TEST(SchedulerTest, SequenceThatIsTheWorstPreemptsItself) {
  KvBlockManager kv(5, 4);
  Seqs seqs;
  Scheduler s({.max_running_seqs = 8, .max_batch_tokens = 100}, &kv);
  ASSERT_TRUE(seqs.Add(s, 1, 0, T(0), 12).ok());
  ASSERT_TRUE(seqs.Add(s, 2, 0, T(1), 4).ok());
  SchedulePlan p = s.Schedule();
  SampleAll(p);
  // 1 now has 13 tokens and takes the last free block; 2 has 5 and needs a second block: none
  // is left and 1 is already scheduled, so 2 is the only candidate and steps back itself.
  p = s.Schedule();
  EXPECT_EQ(Ids(p.preempted), (std::vector<int64_t>{2}));
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq->id, 1);
  EXPECT_EQ(s.num_running(), 1);
  EXPECT_EQ(kv.num_used(), 4);
}

// Random arrivals, lengths and priorities under a tight KV pool: every sequence finishes, each step
// respects its limits, chunks are contiguous per sequence, and no block leaks.
TEST(SchedulerTest, LongRandomSimulationFinishesEverySequence) {
  std::mt19937 rng(42);
  const int kBlockSize = 8, kBlocks = 20, kMaxLen = kBlockSize * kBlocks;
  KvBlockManager kv(kBlocks, kBlockSize);
  Seqs seqs;
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
      ASSERT_TRUE(seqs.Add(s, next_id, static_cast<int>(rng() % 3), T(step), t.prompt).ok());
      live[next_id++] = t;
    }
    SchedulePlan p = s.Schedule();
    if (!live.empty()) ASSERT_FALSE(p.chunks.empty()) << "no progress at step " << step;
    ASSERT_LE(p.num_tokens, 24);
    ASSERT_LE(s.num_running(), 6);
    preemptions += p.preempted.size();
    for (const SchedSequence* seq : p.preempted) live[seq->id].next_pos = 0;
    for (const ScheduledChunk& c : p.chunks) {
      Target& t = live.at(c.seq->id);
      ASSERT_EQ(c.start_pos, t.next_pos) << "seq " << c.seq->id;
      t.next_pos += c.num_tokens;
      ASSERT_GE(static_cast<int>(c.seq->kv.blocks.size()) * kBlockSize, t.next_pos);
      if (!c.reaches_end) continue;
      if (++t.generated == t.gen) {
        live.erase(c.seq->id);
        s.Remove(c.seq);
        ++finished;
      } else {
        c.seq->tokens.push_back(7);
      }
    }
  }
  EXPECT_EQ(finished, kSeqs) << "after " << step << " steps";
  EXPECT_GT(preemptions, 0);
  EXPECT_EQ(kv.num_used(), 0);
  EXPECT_EQ(s.num_running() + s.num_waiting(), 0);
}

// The engine's contract: after each step it commits the KV the step wrote.
void CommitAll(KvBlockManager& kv, const SchedulePlan& plan) {
  for (const ScheduledChunk& c : plan.chunks) kv.Commit(c.seq->kv, c.seq->tokens, c.seq->num_computed);
}

TEST(SchedulerTest, AdmissionStartsAfterTheCachedPrefixAndAlwaysComputesTheLastToken) {
  KvBlockManager kv(16, 4, {.enabled = true, .salt = 5});
  Seqs seqs;
  Scheduler s({.max_running_seqs = 8, .max_batch_tokens = 100}, &kv);
  const std::vector<int32_t> shared = {1, 2, 3, 4, 5, 6, 7, 8};  // two whole blocks
  std::vector<int32_t> a = shared;
  a.push_back(40);
  ASSERT_TRUE(seqs.Add(s, 1, 0, T(0), a).ok());
  SchedulePlan p = s.Schedule();
  EXPECT_EQ(p.prefix_queried_tokens, 9);
  EXPECT_EQ(p.prefix_hit_tokens, 0);
  CommitAll(kv, p);
  SampleAll(p);

  std::vector<int32_t> b = shared;
  b.insert(b.end(), {50, 51, 52});
  ASSERT_TRUE(seqs.Add(s, 2, 0, T(1), b).ok());
  ASSERT_TRUE(seqs.Add(s, 3, 0, T(2), shared).ok());  // the whole prompt is cached blocks
  p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 3u);
  EXPECT_EQ(p.chunks[1].seq->id, 2);
  EXPECT_EQ(p.chunks[1].start_pos, 8);
  EXPECT_EQ(p.chunks[1].num_tokens, 3);
  EXPECT_EQ(p.chunks[1].num_prefill_tokens, 3);
  EXPECT_EQ(seqs[2].num_cached, 8);
  EXPECT_EQ(seqs[2].kv.blocks[1], seqs[1].kv.blocks[1]);
  // 3's last token must be computed for its logits: its last block is recomputed, in a block of its own.
  EXPECT_EQ(p.chunks[2].seq->id, 3);
  EXPECT_EQ(p.chunks[2].start_pos, 4);
  EXPECT_EQ(p.chunks[2].num_tokens, 4);
  EXPECT_EQ(seqs[3].kv.blocks[0], seqs[1].kv.blocks[0]);
  EXPECT_NE(seqs[3].kv.blocks[1], seqs[1].kv.blocks[1]);
  EXPECT_EQ(p.prefix_queried_tokens, 11 + 8);
  EXPECT_EQ(p.prefix_hit_tokens, 8 + 4);
  for (int64_t id : {1, 2, 3}) s.Remove(&seqs[id]);
  EXPECT_EQ(kv.num_used(), 0);
}

TEST(SchedulerTest, PreemptedSequenceResumesFromItsOwnCachedBlocks) {
  KvBlockManager kv(4, 4, {.enabled = true, .salt = 5});
  Seqs seqs;
  Scheduler s({.max_running_seqs = 8, .max_batch_tokens = 100}, &kv);
  ASSERT_TRUE(seqs.Add(s, 1, 0, T(0), 8).ok());
  ASSERT_TRUE(seqs.Add(s, 2, 0, T(1), 6).ok());
  SchedulePlan p = s.Schedule();
  CommitAll(kv, p);
  SampleAll(p);
  p = s.Schedule();  // 1 needs a third block: 2 steps back, its full first block stays cached
  ASSERT_EQ(Ids(p.preempted), (std::vector<int64_t>{2}));
  CommitAll(kv, p);
  SampleAll(p);
  s.Remove(&seqs[1]);
  p = s.Schedule();
  ASSERT_EQ(p.chunks.size(), 1u);
  EXPECT_EQ(p.chunks[0].seq->id, 2);
  EXPECT_EQ(p.chunks[0].start_pos, 4);
  EXPECT_EQ(p.chunks[0].num_tokens, 3);  // 6 prompt tokens + 1 sampled, the first block cached
  EXPECT_EQ(p.prefix_hit_tokens, 4);
  s.Remove(&seqs[2]);
}

// Random arrivals over a few shared prompt prefixes, a pool small enough to preempt and evict: every chunk
// starts where the sequence's computed positions end, whatever the cache served is exactly the tokens it claims
// (tracked per block slot as written), and nothing leaks.
TEST(SchedulerTest, RandomSharedPrefixesServeOnlyTheirOwnTokens) {
  std::mt19937 rng(7);
  const int kBlockSize = 4, kBlocks = 14;
  KvBlockManager kv(kBlocks, kBlockSize, {.enabled = true, .salt = 9});
  Seqs seqs;
  Scheduler s({.max_running_seqs = 6, .max_batch_tokens = 16}, &kv);
  std::vector<int32_t> written(kBlocks * kBlockSize, -1);  // token whose KV each slot holds
  struct Target { int gen; int generated = 0; };
  std::map<int64_t, Target> live;
  int64_t next_id = 0, finished = 0, hits = 0, preemptions = 0;
  const int kSeqs = 200;
  for (int step = 0; step < 100000 && (next_id < kSeqs || !live.empty()); ++step) {
    if (next_id < kSeqs && rng() % 3 != 0) {
      std::vector<int32_t> tokens;
      const int prefix = static_cast<int>(rng() % 3);
      for (int i = 0; i < 4 + static_cast<int>(rng() % 20); ++i) tokens.push_back(prefix * 100 + i);
      for (int i = 0; i < 1 + static_cast<int>(rng() % 6); ++i) tokens.push_back(static_cast<int32_t>(rng() % 5));
      ASSERT_TRUE(seqs.Add(s, next_id, 0, T(step), tokens).ok());
      live[next_id++] = {.gen = 1 + static_cast<int>(rng() % 20)};
    }
    SchedulePlan p = s.Schedule();
    if (!live.empty()) ASSERT_FALSE(p.chunks.empty()) << "no progress at step " << step;
    preemptions += p.preempted.size();
    hits += p.prefix_hit_tokens;
    for (const ScheduledChunk& c : p.chunks) {
      SchedSequence& seq = *c.seq;
      ASSERT_EQ(c.start_pos + c.num_tokens, seq.num_computed);
      for (int pos = 0; pos < c.start_pos; ++pos) {  // everything before the chunk: computed or served
        ASSERT_EQ(written[seq.kv.blocks[pos / kBlockSize] * kBlockSize + pos % kBlockSize], seq.tokens[pos])
            << "seq " << seq.id << " position " << pos;
      }
      for (int pos = c.start_pos; pos < seq.num_computed; ++pos) {
        written[seq.kv.blocks[pos / kBlockSize] * kBlockSize + pos % kBlockSize] = seq.tokens[pos];
      }
    }
    CommitAll(kv, p);
    for (const ScheduledChunk& c : p.chunks) {
      if (!c.reaches_end) continue;
      if (++live[c.seq->id].generated == live[c.seq->id].gen) {
        live.erase(c.seq->id);
        s.Remove(c.seq);
        ++finished;
      } else {
        c.seq->tokens.push_back(static_cast<int32_t>(rng() % 5));
      }
    }
  }
  EXPECT_EQ(finished, kSeqs);
  EXPECT_GT(hits, 0);
  EXPECT_GT(preemptions, 0);
  EXPECT_EQ(kv.num_used(), 0);
}

}  // namespace
}  // namespace moed
