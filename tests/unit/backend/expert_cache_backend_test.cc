// CpuBackend with the hot-expert cache on real checkpoints (fortune-moe, tiny-qwen2-moe, tiny-deepseek-v2/v3): logits and sampled tokens
// bitwise identical to the cache-off backend for every policy, small caches (down to one slot), prefetch on and
// off, capacity factor 0 and > 0; and per step and layer, hits + misses = the experts the router used.
#include <algorithm>
#include <numeric>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/model/model.h"
#include "gtest/gtest.h"

namespace moed {
namespace {

std::shared_ptr<const Model> Load(const std::string& name) {
  const std::string dir = name == "fortune-moe" ? std::string(MOED_SOURCE_DIR) + "/models/fortune-moe"
                                                : std::string(MOED_SOURCE_DIR) + "/tests/fixtures/" + name;
  auto m = LoadModel(dir);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : nullptr;
}

struct Trace {
  std::vector<std::vector<float>> logits;  // every step's logits rows, both sequences
  std::vector<int32_t> tokens;             // greedy tokens, both sequences, step by step
  cache::ExpertCacheStats total;
};

// Two sequences: a prefill step of both prompts (one batch), then `decode` greedy decode steps of both.
Trace RunTrace(std::shared_ptr<const Model> model, const BackendOptions& bo, int decode = 10) {
  Trace t;
  auto made = CreateBackend("cpu", model, bo);
  EXPECT_TRUE(made.ok()) << made.status();
  if (!made.ok()) return t;
  Backend& b = **made;
  EXPECT_TRUE(b.InitKvCache({16, 8}).ok());
  const ModelSpec& s = b.spec();
  const int E = s.num_experts;
  const std::vector<std::vector<int32_t>> prompts = {{1, 40, 7, 300, 21, 5, 99, 17, 250, 3, 64},
                                                     {1, 12, 180, 33, 2, 77}};
  StepBatch batch;
  for (int i = 0; i < 2; ++i) {
    SequenceStep q;
    q.seq_id = i;
    q.token_offset = static_cast<int32_t>(batch.token_ids.size());
    q.num_tokens = static_cast<int32_t>(prompts[i].size());
    q.block_table = {2 * i, 2 * i + 1, 8 + 2 * i, 9 + 2 * i};
    q.sample = true;
    q.want_logits = true;
    q.sampling.temperature = 0;
    for (int32_t id : prompts[i]) batch.token_ids.push_back(id % s.vocab_size);
    batch.seqs.push_back(q);
  }
  StepOutput out;
  for (int step = 0; step <= decode; ++step) {
    EXPECT_TRUE(b.Step(batch, &out).ok());
    for (const SequenceResult& r : out.results) {
      t.logits.push_back(r.logits);
      t.tokens.push_back(r.token);
    }
    const cache::ExpertCacheStats& c = out.expert_cache;
    if (c.enabled()) {
      for (int l = 0; l < s.num_layers; ++l) {
        const int64_t used = std::count_if(out.routed.begin() + l * E, out.routed.begin() + (l + 1) * E,
                                           [](int64_t n) { return n > 0; });
        EXPECT_EQ(c.hits[l] + c.misses[l], used) << "step " << step << " layer " << l;
        const int64_t kept = std::accumulate(out.routed.begin() + l * E, out.routed.begin() + (l + 1) * E, int64_t{0}) -
                             std::accumulate(out.dropped.begin() + l * E, out.dropped.begin() + (l + 1) * E, int64_t{0});
        EXPECT_EQ(c.hit_assignments[l] + c.miss_assignments[l], kept) << "step " << step << " layer " << l;
      }
      EXPECT_LE(c.resident_experts, c.capacity_experts);
    }
    t.total.Add(c);
    batch.token_ids.clear();
    for (int i = 0; i < 2; ++i) {
      SequenceStep& q = batch.seqs[i];
      q.start_pos += q.num_tokens;
      q.num_tokens = 1;
      q.token_offset = i;
      q.sample_index = step + 1;
      batch.token_ids.push_back(out.results[i].token);
    }
  }
  return t;
}

int RoutedExperts(const ModelSpec& s) {
  return static_cast<int>(std::count(s.layer_is_moe.begin(), s.layer_is_moe.end(), true)) * s.num_experts;
}

void ExpectBitwiseIdentical(const std::string& name) {
  auto model = Load(name);
  ASSERT_NE(model, nullptr);
  const int routed = RoutedExperts(model->spec);
  for (const float factor : {0.0f, 1.0f}) {
    BackendOptions off;
    off.moe_capacity_factor = factor;
    const Trace want = RunTrace(model, off);
    ASSERT_FALSE(want.logits.empty());
    EXPECT_FALSE(want.total.enabled());
    for (const char* policy : {"lru", "lfu", "load-aware"}) {
      for (const int slots : {1, 3, routed / 2}) {
        for (const bool prefetch : {false, true}) {
          BackendOptions bo = off;
          bo.expert_cache_slots = slots;
          bo.expert_cache_policy = policy;
          bo.expert_cache_prefetch = prefetch;
          const Trace got = RunTrace(model, bo);
          const std::string what = name + " " + policy + " slots=" + std::to_string(slots) +
                                   " prefetch=" + std::to_string(prefetch) + " factor=" + std::to_string(factor);
          ASSERT_EQ(got.tokens, want.tokens) << what;
          ASSERT_EQ(got.logits.size(), want.logits.size()) << what;
          for (size_t i = 0; i < want.logits.size(); ++i) {
            ASSERT_TRUE(got.logits[i] == want.logits[i]) << what << ": logits row " << i << " differ";
          }
          EXPECT_EQ(got.total.capacity_experts, slots) << what;
          EXPECT_GT(got.total.TotalMisses(), 0) << what;
          EXPECT_GT(got.total.TotalEvictions(), 0) << what << ": a small cache must evict";
          EXPECT_GT(got.total.bytes_transferred, 0) << what;
          EXPECT_GE(got.total.load_seconds, got.total.stall_seconds) << what;
          if (prefetch) {
            EXPECT_LE(got.total.TotalPrefetchUsed() + got.total.TotalPrefetchWasted(),
                      got.total.TotalPrefetchIssued()) << what;
          } else {
            EXPECT_EQ(got.total.TotalPrefetchIssued(), 0) << what;
          }
        }
      }
    }
  }
}

TEST(ExpertCacheBackendTest, FortuneMoeBitwiseIdentical) { ExpectBitwiseIdentical("fortune-moe"); }

TEST(ExpertCacheBackendTest, TinyQwen2MoeBitwiseIdentical) { ExpectBitwiseIdentical("tiny-qwen2-moe"); }

// Group-limited routing, two ungated shared experts (never in the cache: always resident) and a dense first layer.
TEST(ExpertCacheBackendTest, TinyDeepseekV2BitwiseIdentical) { ExpectBitwiseIdentical("tiny-deepseek-v2"); }

// Sigmoid noaux_tc routing with a selection bias and a shared expert.
TEST(ExpertCacheBackendTest, TinyDeepseekV3BitwiseIdentical) { ExpectBitwiseIdentical("tiny-deepseek-v3"); }

TEST(ExpertCacheBackendTest, PrefetchIsIssuedAndUsedOnFortuneMoe) {
  auto model = Load("fortune-moe");
  ASSERT_NE(model, nullptr);
  BackendOptions bo;
  bo.expert_cache_slots = 16;  // 4 of 8 experts per layer
  bo.expert_cache_policy = "lru";
  const Trace t = RunTrace(model, bo, 20);
  EXPECT_GT(t.total.TotalPrefetchIssued(), 0);
  EXPECT_GT(t.total.TotalPrefetchUsed(), 0);
  // Every load is a miss or a prefetch; each copies one expert (3 · 256 · 128 floats).
  const int64_t loads = t.total.TotalMisses() + t.total.TotalPrefetchIssued();
  EXPECT_EQ(t.total.bytes_transferred, loads * 3 * 256 * 128 * 4);
  bo.expert_cache_prefetch = false;
  const Trace without = RunTrace(model, bo, 20);
  EXPECT_EQ(without.total.TotalPrefetchIssued(), 0);
  EXPECT_EQ(without.total.TotalHits() + without.total.TotalMisses(), t.total.TotalHits() + t.total.TotalMisses())
      << "prefetch changes where experts come from, not how many are accessed";
}

TEST(ExpertCacheBackendTest, SlotsBeyondTheModelAreClampedAndStayResident) {
  auto model = Load("fortune-moe");
  ASSERT_NE(model, nullptr);
  BackendOptions bo;
  bo.expert_cache_slots = 1000;
  const Trace t = RunTrace(model, bo);
  EXPECT_EQ(t.total.capacity_experts, 32);
  EXPECT_EQ(t.total.TotalEvictions(), 0);
  EXPECT_LE(t.total.TotalMisses(), 32);
}

TEST(ExpertCacheBackendTest, BadOptionsAreInvalidArgument) {
  auto model = Load("fortune-moe");
  ASSERT_NE(model, nullptr);
  BackendOptions bo;
  bo.expert_cache_slots = 8;
  bo.expert_cache_policy = "random";
  auto b = CreateBackend("cpu", model, bo);
  ASSERT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(b.status().message().find("lru, lfu, load-aware"), std::string::npos) << b.status();
  bo.expert_cache_policy = "lru";
  bo.expert_cache_slots = -1;
  EXPECT_EQ(CreateBackend("cpu", model, bo).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace moed
