// The CPU backend on DeepSeek's kinds: the MLA latent cache size, capacity drops and the routing report under
// group-limited and noaux_tc routing, the synthetic DeepSeek shapes, and the CUDA backend's named refusal.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/model/model.h"
#include "engine/model/synthetic_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/backend/random_model.h"

namespace moed {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const Model> Fixture(const std::string& name) {
  auto m = LoadModel(std::string(MOED_SOURCE_DIR) + "/tests/fixtures/" + name);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : nullptr;
}

TEST(DeepseekBackendTest, MlaCacheHoldsTheLatentAndRopeKeyPerToken) {
  auto model = Fixture("tiny-deepseek-v3");
  ASSERT_NE(model, nullptr);
  auto b = CreateBackend("cpu", model, {});
  ASSERT_TRUE(b.ok()) << b.status();
  // 3 layers × 16 tokens × (kv_lora_rank 32 + rope 16) fp32 — not heads 4 × (qk 32 + v 24).
  EXPECT_EQ((*b)->KvBytesPerBlock(16), 3 * 16 * (32 + 16) * 4);
}

// One prefill of 24 tokens with capacity factor 0.5: every MoE layer routes 24 × top_k assignments, each expert keeps
// at most ceil(0.5 · 24 · top_k / E), the dense layer routes nothing, and the sequence's routing report adds up.
void ExpectCapacityDrops(const std::string& fixture) {
  auto model = Fixture(fixture);
  ASSERT_NE(model, nullptr);
  BackendOptions bo;
  bo.moe_capacity_factor = 0.5f;
  auto made = CreateBackend("cpu", model, bo);
  ASSERT_TRUE(made.ok()) << made.status();
  Backend& b = **made;
  ASSERT_TRUE(b.InitKvCache({4, 16}).ok());
  const ModelSpec& s = b.spec();
  const int T = 24, E = s.num_experts, K = s.top_k;
  StepBatch batch;
  for (int i = 0; i < T; ++i) batch.token_ids.push_back((i * 37 + 5) % s.vocab_size);
  SequenceStep q;
  q.num_tokens = T;
  q.block_table = {0, 1};
  q.want_routing = true;
  batch.seqs.push_back(q);
  StepOutput out;
  ASSERT_TRUE(b.Step(batch, &out).ok());
  const int64_t cap = static_cast<int64_t>(std::ceil(0.5 * T * K / E));
  int64_t dropped_total = 0;
  for (int l = 0; l < s.num_layers; ++l) {
    int64_t routed = 0;
    for (int e = 0; e < E; ++e) {
      const int64_t r = out.routed[l * E + e], d = out.dropped[l * E + e];
      EXPECT_EQ(d, std::max<int64_t>(0, r - cap)) << fixture << " layer " << l << " expert " << e;
      EXPECT_EQ(out.results[0].routing[l * E + e], r) << "the one sequence's report is the layer's routing";
      routed += r;
      dropped_total += d;
    }
    EXPECT_EQ(routed, s.layer_is_moe[l] ? T * K : 0) << fixture << " layer " << l;
  }
  EXPECT_GT(dropped_total, 0) << fixture;
}

TEST(DeepseekBackendTest, CapacityDropsUnderGroupLimitedRouting) { ExpectCapacityDrops("tiny-deepseek-v2"); }
TEST(DeepseekBackendTest, CapacityDropsUnderNoauxTcRouting) { ExpectCapacityDrops("tiny-deepseek-v3"); }

// Single-token steps of the small synthetic shapes: every token's experts lie in at most topk_group groups.
TEST(DeepseekBackendTest, SyntheticShapesRunAndRespectExpertGroups) {
  for (const char* name : {"deepseek-v2-lite", "deepseek-v3-4l"}) {
    SyntheticOptions o;
    o.small = true;
    auto model = CreateSyntheticModel(name, o);
    ASSERT_TRUE(model.ok()) << model.status();
    const ModelSpec& s = (*model)->spec;
    EXPECT_EQ(s.attention.kind, AttentionKind::kMla) << name;
    auto made = CreateBackend("cpu", *model, {});
    ASSERT_TRUE(made.ok()) << name << ": " << made.status();
    Backend& b = **made;
    ASSERT_TRUE(b.InitKvCache({4, 16}).ok());
    const int E = s.num_experts;
    const int per_group = E / std::max(1, s.router.num_groups);
    StepBatch batch;
    SequenceStep q;
    q.num_tokens = 1;
    q.block_table = {0};
    q.want_routing = true;
    q.want_logits = true;
    batch.seqs.push_back(q);
    for (int pos = 0; pos < 5; ++pos) {
      batch.token_ids = {(pos * 101 + 7) % s.vocab_size};
      batch.seqs[0].start_pos = pos;
      StepOutput out;
      ASSERT_TRUE(b.Step(batch, &out).ok()) << name;
      for (float v : out.results[0].logits) ASSERT_TRUE(std::isfinite(v)) << name;
      for (int l = 0; l < s.num_layers; ++l) {
        std::set<int> groups;
        int chosen = 0;
        for (int e = 0; e < E; ++e) {
          if (out.results[0].routing[l * E + e] == 0) continue;
          groups.insert(e / per_group);
          ++chosen;
        }
        EXPECT_EQ(chosen, s.layer_is_moe[l] ? s.top_k : 0) << name << " layer " << l;
        if (s.router.method != TopKMethod::kGreedy) EXPECT_LE(static_cast<int>(groups.size()), s.router.topk_groups);
      }
    }
  }
}

// The GPU kernels implement GQA + softmax greedy routing only: DeepSeek's kinds are refused by name, never run as
// something else (without CUDA the backend is unavailable altogether).
TEST(DeepseekBackendTest, CudaBackendRefusesTheNewKindsByName) {
  for (const char* fixture : {"tiny-deepseek-v2-lite", "tiny-deepseek-v3"}) {
    auto model = Fixture(fixture);
    ASSERT_NE(model, nullptr);
    auto b = CreateBackend("cuda", model, {});
    ASSERT_FALSE(b.ok()) << fixture;
#ifdef MOED_HAVE_CUDA
    EXPECT_EQ(b.status().code(), absl::StatusCode::kUnimplemented) << b.status();
    EXPECT_THAT(std::string(b.status().message()), HasSubstr("MLA attention")) << fixture;
#else
    EXPECT_EQ(b.status().code(), absl::StatusCode::kUnavailable) << b.status();
#endif
  }
}

// A GQA model with one new kind at a time: each is refused by name on CUDA, and runs on the CPU.
TEST(DeepseekBackendTest, CudaBackendRefusesEachNewKindOfAGqaModel) {
  const std::shared_ptr<const Model> base = test_models::MakeRandomModel({});
  struct Case {
    const char* needle;
    void (*edit)(ModelSpec&);
  };
  const Case cases[] = {
      {"RoPE scaling", [](ModelSpec& s) { s.attention.rope.type = RopeType::kLinear; }},
      {"sigmoid router scoring", [](ModelSpec& s) { s.router.scoring = RouterScoring::kSigmoid; }},
      {"group-limited", [](ModelSpec& s) {
         s.router.method = TopKMethod::kGroupLimitedGreedy;
         s.router.num_groups = 2;
         s.router.topk_groups = 1;
       }},
      {"routed_scaling_factor", [](ModelSpec& s) { s.router.routed_scaling_factor = 2.0f; }},
  };
  for (const Case& c : cases) {
    auto model = std::make_shared<Model>(*base);
    c.edit(model->spec);
    auto cpu = CreateBackend("cpu", model, {});
    EXPECT_TRUE(cpu.ok()) << c.needle << ": " << cpu.status();
    auto cuda = CreateBackend("cuda", model, {});
    ASSERT_FALSE(cuda.ok()) << c.needle;
#ifdef MOED_HAVE_CUDA
    EXPECT_EQ(cuda.status().code(), absl::StatusCode::kUnimplemented) << cuda.status();
    EXPECT_THAT(std::string(cuda.status().message()), HasSubstr(c.needle));
#endif
  }
}

}  // namespace
}  // namespace moed
