// CpuBackend on in-memory random models of every family: chunking, batching, paging, threads, capacity,
// sliding window and batch validation must behave consistently.
#include "engine/backend/cpu/cpu_backend.h"

#include <cmath>
#include <numeric>

#include "gtest/gtest.h"
#include "tests/unit/backend/random_model.h"

namespace moed {
namespace {

using test_models::MakeRandomModel;
using test_models::RandomModelOptions;

constexpr int kBlock = 4;

std::unique_ptr<Backend> MakeBackend(std::shared_ptr<const Model> m, BackendOptions bo = {}) {
  auto b = CreateBackend("cpu", std::move(m), bo);
  EXPECT_TRUE(b.ok()) << b.status();
  EXPECT_TRUE((*b)->InitKvCache({64, kBlock}).ok());
  return std::move(b).value();
}

std::vector<int32_t> Table(int first, int n) {
  std::vector<int32_t> t(n);
  std::iota(t.begin(), t.end(), first);
  return t;
}

// Last-position logits of `ids` fed in chunks of `chunk` tokens, using blocks `table`.
std::vector<float> RunChunked(Backend& b, const std::vector<int32_t>& ids, int chunk, std::vector<int32_t> table) {
  std::vector<float> logits;
  for (int start = 0; start < static_cast<int>(ids.size()); start += chunk) {
    const int len = std::min<int>(chunk, ids.size() - start);
    StepBatch batch;
    batch.token_ids.assign(ids.begin() + start, ids.begin() + start + len);
    SequenceStep s;
    s.num_tokens = len;
    s.start_pos = start;
    s.block_table = table;
    s.want_logits = start + len == static_cast<int>(ids.size());
    batch.seqs = {s};
    StepOutput out;
    EXPECT_TRUE(b.Step(batch, &out).ok());
    if (s.want_logits) logits = out.results[0].logits;
  }
  return logits;
}

float MaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

std::vector<RandomModelOptions> Families() {
  std::vector<RandomModelOptions> v(5);
  v[0].family = Family::kMixtral;
  v[1].family = Family::kQwen2Moe;
  v[1].shared_ffn = 40;
  v[1].top_k = 4;
  v[2].family = Family::kQwen3Moe;
  v[2].head_dim = 12;  // q_dim ≠ hidden
  v[2].top_k = 4;
  v[3].family = Family::kOlmoe;
  v[4].family = Family::kQwen3Moe;
  v[4].dense_first_layer = true;
  return v;
}

const std::vector<int32_t> kPrompt = {1, 17, 5, 90, 33, 33, 4, 61, 2, 77, 12};

TEST(CpuBackendTest, ChunkedPagedAndTokenByTokenAgree) {
  for (const RandomModelOptions& o : Families()) {
    auto b = MakeBackend(MakeRandomModel(o));
    const auto whole = RunChunked(*b, kPrompt, 64, Table(0, 3));
    ASSERT_EQ(whole.size(), 96u);
    EXPECT_LT(MaxDiff(whole, RunChunked(*b, kPrompt, 3, Table(0, 3))), 1e-5);
    EXPECT_LT(MaxDiff(whole, RunChunked(*b, kPrompt, 1, Table(0, 3))), 1e-5);
    // Scattered, non-contiguous blocks give the same result.
    EXPECT_LT(MaxDiff(whole, RunChunked(*b, kPrompt, 4, {40, 7, 23})), 1e-6);
  }
}

TEST(CpuBackendTest, BatchOfSequencesEqualsEachAlone) {
  for (const RandomModelOptions& o : Families()) {
    auto b = MakeBackend(MakeRandomModel(o));
    const std::vector<int32_t> a = {3, 4, 5, 6, 7}, c = {9, 10};
    const auto ref_a = RunChunked(*b, a, 64, Table(0, 2));
    const auto ref_c = RunChunked(*b, c, 64, Table(0, 1));
    // Prefill a's first 3 tokens, then one step with a's remaining 2 tokens and all of c.
    RunChunked(*b, {3, 4, 5}, 64, Table(10, 2));
    StepBatch batch;
    batch.token_ids = {9, 10, 6, 7};
    SequenceStep sc;
    sc.seq_id = 7;
    sc.num_tokens = 2;
    sc.block_table = Table(20, 1);
    sc.want_logits = true;
    sc.want_routing = true;
    SequenceStep sa;
    sa.seq_id = 3;
    sa.token_offset = 2;
    sa.num_tokens = 2;
    sa.start_pos = 3;
    sa.block_table = Table(10, 2);
    sa.want_logits = true;
    batch.seqs = {sc, sa};
    StepOutput out;
    ASSERT_TRUE(b->Step(batch, &out).ok());
    ASSERT_EQ(out.results.size(), 2u);
    EXPECT_EQ(out.results[0].seq_id, 7);
    EXPECT_EQ(out.results[1].seq_id, 3);
    EXPECT_LT(MaxDiff(out.results[0].logits, ref_c), 1e-5);
    EXPECT_LT(MaxDiff(out.results[1].logits, ref_a), 1e-5);
    // Routing: every MoE layer saw 4 tokens × top_k assignments; seq 7's share is 2 × top_k.
    const ModelSpec& s = b->spec();
    for (int l = 0; l < s.num_layers; ++l) {
      const auto begin = out.routed.begin() + l * s.num_experts;
      const int64_t total = std::accumulate(begin, begin + s.num_experts, int64_t{0});
      const auto rb = out.results[0].routing.begin() + l * s.num_experts;
      const int own = std::accumulate(rb, rb + s.num_experts, 0);
      EXPECT_EQ(total, s.layer_is_moe[l] ? 4 * s.top_k : 0);
      EXPECT_EQ(own, s.layer_is_moe[l] ? 2 * s.top_k : 0);
    }
    EXPECT_TRUE(out.results[1].routing.empty());
  }
}

TEST(CpuBackendTest, ThreadCountDoesNotChangeResults) {
  RandomModelOptions o;
  o.hidden = 64;
  o.ffn = 128;
  o.vocab = 512;
  auto m = MakeRandomModel(o);
  BackendOptions one, two;
  one.num_threads = 1;
  two.num_threads = 2;
  auto b1 = MakeBackend(m, one), b2 = MakeBackend(m, two);
  std::vector<int32_t> ids(40);
  for (int i = 0; i < 40; ++i) ids[i] = (i * 37) % 512;
  EXPECT_EQ(RunChunked(*b1, ids, 64, Table(0, 10)), RunChunked(*b2, ids, 64, Table(0, 10)));
}

TEST(CpuBackendTest, CapacityDropsInTokenOrderAndCounts) {
  RandomModelOptions o;
  auto m = MakeRandomModel(o);
  BackendOptions tight, loose;
  tight.moe_capacity_factor = 0.5f;  // capacity = ceil(0.5 · 11·2 / 8) = 2 per expert
  loose.moe_capacity_factor = 100.0f;
  auto bt = MakeBackend(m, tight), bl = MakeBackend(m, loose), b0 = MakeBackend(m);
  StepBatch batch;
  batch.token_ids = kPrompt;
  SequenceStep s;
  s.num_tokens = static_cast<int>(kPrompt.size());
  s.block_table = Table(0, 3);
  s.want_logits = true;
  batch.seqs = {s};
  StepOutput ot, ol, o0;
  ASSERT_TRUE(bt->Step(batch, &ot).ok());
  ASSERT_TRUE(bl->Step(batch, &ol).ok());
  ASSERT_TRUE(b0->Step(batch, &o0).ok());
  EXPECT_EQ(ol.results[0].logits, o0.results[0].logits);  // a capacity nobody reaches changes nothing
  // Layer 0 routes the same tokens either way (drops there change what later layers see).
  EXPECT_TRUE(std::equal(ot.routed.begin(), ot.routed.begin() + 8, o0.routed.begin()));
  int64_t dropped = 0;
  for (int l = 0; l < 2; ++l) {
    for (int e = 0; e < 8; ++e) {
      const int64_t r = ot.routed[l * 8 + e], d = ot.dropped[l * 8 + e];
      EXPECT_EQ(d, std::max<int64_t>(0, r - 2)) << "layer " << l << " expert " << e;
      dropped += d;
    }
  }
  EXPECT_GT(dropped, 0);
  EXPECT_GT(MaxDiff(ot.results[0].logits, o0.results[0].logits), 1e-4);
  for (int64_t d : o0.dropped) EXPECT_EQ(d, 0);
}

TEST(CpuBackendTest, SlidingWindowOfOneSeesOnlyTheToken) {
  RandomModelOptions o;
  o.sliding_window = 1;
  auto b = MakeBackend(MakeRandomModel(o));
  // With a window of 1 each position attends only to itself, so history cannot matter.
  EXPECT_LT(MaxDiff(RunChunked(*b, {5, 6, 7}, 2, Table(0, 1)), RunChunked(*b, {9, 7}, 1, Table(0, 1))), 1e-5);
  o.sliding_window = 0;
  auto full = MakeBackend(MakeRandomModel(o));
  EXPECT_GT(MaxDiff(RunChunked(*full, {5, 6, 7}, 2, Table(0, 1)), RunChunked(*full, {9, 7}, 1, Table(0, 1))), 1e-4);
}

TEST(CpuBackendTest, SamplesGreedyWithLogprobs) {
  auto b = MakeBackend(MakeRandomModel({}));
  StepBatch batch;
  batch.token_ids = {1, 2, 3};
  SequenceStep s;
  s.num_tokens = 3;
  s.block_table = Table(0, 1);
  s.want_logits = true;
  s.sample = true;
  s.sampling.temperature = 0;
  s.sampling.logprobs = 3;
  batch.seqs = {s};
  StepOutput out;
  ASSERT_TRUE(b->Step(batch, &out).ok());
  const auto& r = out.results[0];
  const int argmax = std::max_element(r.logits.begin(), r.logits.end()) - r.logits.begin();
  EXPECT_EQ(r.token, argmax);
  ASSERT_EQ(r.top_logprobs.size(), 3u);
  EXPECT_EQ(r.top_logprobs[0].token, argmax);
  EXPECT_FLOAT_EQ(r.top_logprobs[0].logprob, r.logprob);
  EXPECT_LT(r.logprob, 0.0f);
}

TEST(CpuBackendTest, RejectsBadBatches) {
  auto m = MakeRandomModel({});
  auto fresh = CreateBackend("cpu", m, {});
  ASSERT_TRUE(fresh.ok());
  StepBatch good;
  good.token_ids = {1, 2, 3};
  SequenceStep s;
  s.num_tokens = 3;
  s.block_table = Table(0, 1);
  good.seqs = {s};
  StepOutput out;
  EXPECT_EQ((*fresh)->Step(good, &out).code(), absl::StatusCode::kFailedPrecondition);

  auto b = MakeBackend(m);
  ASSERT_TRUE(b->Step(good, &out).ok());
  auto expect_invalid = [&](StepBatch batch, const char* why) {
    EXPECT_EQ(b->Step(batch, &out).code(), absl::StatusCode::kInvalidArgument) << why;
  };
  StepBatch bad = good;
  bad.token_ids[1] = 96;
  expect_invalid(bad, "token id == vocab");
  bad = good;
  bad.token_ids[1] = -1;
  expect_invalid(bad, "negative token id");
  bad = good;
  bad.seqs[0].num_tokens = 0;
  expect_invalid(bad, "num_tokens 0");
  bad = good;
  bad.seqs[0].num_tokens = 4;
  expect_invalid(bad, "tokens past the batch");
  bad = good;
  bad.seqs[0].start_pos = 2;  // positions [0, 5) need 2 blocks of 4
  expect_invalid(bad, "block table too short");
  bad = good;
  bad.seqs[0].block_table = {64};
  expect_invalid(bad, "block id outside the cache");
  bad = good;
  bad.seqs[0].sample = true;
  bad.seqs[0].sampling.top_p = 1.5f;
  expect_invalid(bad, "top_p");
  EXPECT_EQ(CreateBackend("tpu", m, {}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CpuBackendTest, RejectsModelsWithMissingOrMisSizedWeights) {
  auto m = MakeRandomModel({});
  auto broken = std::make_shared<Model>(*m);
  broken->weights.layers[1].k_proj.shape = {3, 32};
  auto r = CreateBackend("cpu", broken, {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("k_proj"), std::string::npos) << r.status();
  broken = std::make_shared<Model>(*m);
  broken->weights.layers[0].experts[3].up.data = nullptr;
  EXPECT_FALSE(CreateBackend("cpu", broken, {}).ok());
}

TEST(CpuBackendTest, KvBytesPerBlock) {
  auto b = MakeBackend(MakeRandomModel({}));
  EXPECT_EQ(b->KvBytesPerBlock(16), 2 * 2 * 16 * 16 * 4);  // K+V × layers × tokens × kv_dim × fp32
}

}  // namespace
}  // namespace moed
