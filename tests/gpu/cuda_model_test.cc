// The whole model on the CUDA backend: golden fixtures and fortune-moe within the bf16 tolerances of
// shared/README.md, agreement with the CPU backend on random and synthetic models of every family (mixed prefill /
// decode batches, routing counts, capacity drops), and rejection of bad batches.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/model/model.h"
#include "engine/model/synthetic_model.h"
#include "nlohmann/json.hpp"
#include "tests/gpu/gpu_test_util.h"
#include "tests/unit/backend/random_model.h"

namespace moed {
namespace {

constexpr int kBlock = 16;

std::unique_ptr<Backend> MakeBackend(std::string_view kind, std::shared_ptr<const Model> m, BackendOptions bo = {}) {
  auto b = CreateBackend(kind, std::move(m), bo);
  EXPECT_TRUE(b.ok()) << b.status();
  if (!b.ok()) return nullptr;
  EXPECT_TRUE((*b)->InitKvCache({256, kBlock}).ok());
  return std::move(b).value();
}

std::vector<int32_t> Table(int first, int positions) {
  std::vector<int32_t> t((positions + kBlock - 1) / kBlock);
  std::iota(t.begin(), t.end(), first);
  return t;
}

SequenceStep Seq(int64_t id, int offset, int n, int start, std::vector<int32_t> table) {
  SequenceStep s;
  s.seq_id = id;
  s.token_offset = offset;
  s.num_tokens = n;
  s.start_pos = start;
  s.block_table = std::move(table);
  s.want_logits = true;
  return s;
}

// Logits of the last token after prefilling `ids` in one step (blocks from 0).
std::vector<float> Prefill(Backend& b, const std::vector<int32_t>& ids) {
  StepBatch batch;
  batch.token_ids = ids;
  batch.seqs.push_back(Seq(1, 0, ids.size(), 0, Table(0, ids.size() + 64)));
  StepOutput out;
  const absl::Status st = b.Step(batch, &out);
  EXPECT_TRUE(st.ok()) << st;
  return st.ok() ? out.results[0].logits : std::vector<float>();
}

// Logits after one more token at position `pos` of the same sequence.
std::vector<float> Decode(Backend& b, int32_t token, int pos) {
  StepBatch batch;
  batch.token_ids = {token};
  batch.seqs.push_back(Seq(1, 0, 1, pos, Table(0, pos + 64)));
  StepOutput out;
  const absl::Status st = b.Step(batch, &out);
  EXPECT_TRUE(st.ok()) << st;
  return st.ok() ? out.results[0].logits : std::vector<float>();
}

int Argmax(const std::vector<float>& v) { return std::max_element(v.begin(), v.end()) - v.begin(); }
float MaxAbs(const std::vector<float>& v) {
  float m = 0.0f;
  for (float x : v) m = std::max(m, std::abs(x));
  return m;
}
// Gap between the best and second-best logit.
float Margin(std::vector<float> v) {
  std::partial_sort(v.begin(), v.begin() + 2, v.end(), std::greater<float>());
  return v[0] - v[1];
}

// bf16 tolerance of shared/README.md: max |logit − golden| ≤ 5e-2 · max|golden|.
void ExpectLogitsClose(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  float worst = 0.0f;
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::abs(got[i] - want[i]));
  EXPECT_LE(worst, 5e-2f * MaxAbs(want)) << what;
  if (Margin(want) > 0.05f) EXPECT_EQ(Argmax(got), Argmax(want)) << what;
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return nlohmann::json::parse(f);
}

class CudaGoldenTest : public ::testing::TestWithParam<std::string> {};

// Last-prompt logits, then 24 teacher-forced greedy steps: the argmax must match wherever transformers' margin
// is > 0.05.
TEST_P(CudaGoldenTest, MatchesTransformers) {
  MOED_REQUIRE_GPU();
  const std::string dir = gpu_test::SourceDir() + "/tests/fixtures/" + GetParam();
  auto model = LoadModel(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  auto b = MakeBackend("cuda", *model);
  ASSERT_NE(b, nullptr);
  const nlohmann::json golden = ReadJson(dir + "/golden.json");
  for (const auto& c : golden["cases"]) {
    const std::vector<int32_t> ids = c["input_ids"].get<std::vector<int32_t>>();
    std::vector<float> logits = Prefill(*b, ids);
    ExpectLogitsClose(logits, c["last_logits"].get<std::vector<float>>(), GetParam() + ": " + c["prompt"].get<std::string>());
    int pos = ids.size();
    for (const auto& g : c["greedy"]) {
      const int want = g["token"].get<int>();
      if (g["margin"].get<float>() > 0.05f) EXPECT_EQ(Argmax(logits), want) << GetParam() << " step at " << pos;
      logits = Decode(*b, want, pos++);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, CudaGoldenTest,
                         ::testing::Values("tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"));

TEST(CudaModelTest, FortuneMoeMatchesGolden) {
  MOED_REQUIRE_GPU();
  const std::string dir = gpu_test::SourceDir() + "/models/fortune-moe";
  auto model = LoadModel(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  auto b = MakeBackend("cuda", *model);
  ASSERT_NE(b, nullptr);
  const nlohmann::json golden = ReadJson(dir + "/golden.json");
  for (const auto& c : golden["cases"]) {
    const std::vector<int32_t> ids = c["input_ids"].get<std::vector<int32_t>>();
    std::vector<float> logits = Prefill(*b, ids);
    ExpectLogitsClose(logits, c["last_logits"].get<std::vector<float>>(), c["prompt"].get<std::string>());
    int pos = ids.size();
    for (int want : c["greedy_ids"].get<std::vector<int>>()) {
      if (Margin(logits) > 0.05f) EXPECT_EQ(Argmax(logits), want) << c["prompt"] << " at " << pos;
      logits = Decode(*b, want, pos++);
    }
  }
}

// One step with a prefill chunk of A, a fresh prompt B and a decode token of C (after its prefill), on `kind`.
StepOutput MixedSteps(Backend& b, int vocab) {
  std::vector<int32_t> a(37), p(5), c(20);
  for (size_t i = 0; i < a.size(); ++i) a[i] = (i * 7 + 3) % vocab;
  for (size_t i = 0; i < p.size(); ++i) p[i] = (i * 11 + 1) % vocab;
  for (size_t i = 0; i < c.size(); ++i) c[i] = (i * 13 + 5) % vocab;
  StepBatch first;  // A's first 20 tokens and all of C
  first.token_ids.assign(a.begin(), a.begin() + 20);
  first.token_ids.insert(first.token_ids.end(), c.begin(), c.end());
  first.seqs.push_back(Seq(1, 0, 20, 0, Table(0, 64)));
  first.seqs.push_back(Seq(3, 20, 20, 0, Table(8, 64)));
  StepOutput out;
  EXPECT_TRUE(b.Step(first, &out).ok());
  StepBatch second;  // the rest of A, all of B, one decode token of C
  second.token_ids.assign(a.begin() + 20, a.end());
  second.token_ids.insert(second.token_ids.end(), p.begin(), p.end());
  second.token_ids.push_back(9 % vocab);
  second.seqs.push_back(Seq(1, 0, 17, 20, Table(0, 64)));
  second.seqs.push_back(Seq(2, 17, 5, 0, Table(4, 64)));
  second.seqs.push_back(Seq(3, 22, 1, 20, Table(8, 64)));
  for (SequenceStep& s : second.seqs) s.want_routing = true;
  second.seqs[2].sample = true;
  second.seqs[2].sampling.temperature = 0.0f;
  second.seqs[2].sampling.logprobs = 3;
  const absl::Status st = b.Step(second, &out);
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

void ExpectBackendsAgree(std::shared_ptr<const Model> cpu_model, std::shared_ptr<const Model> cuda_model,
                         const std::string& what) {
  auto cpu = MakeBackend("cpu", cpu_model);
  auto gpu = MakeBackend("cuda", cuda_model);
  ASSERT_NE(cpu, nullptr);
  ASSERT_NE(gpu, nullptr);
  const int vocab = cpu_model->spec.vocab_size;
  const StepOutput want = MixedSteps(*cpu, vocab);
  const StepOutput got = MixedSteps(*gpu, vocab);
  ASSERT_EQ(got.results.size(), want.results.size()) << what;
  for (size_t i = 0; i < want.results.size(); ++i) {
    ExpectLogitsClose(got.results[i].logits, want.results[i].logits, what + " seq " + std::to_string(i));
    const int64_t want_total = std::accumulate(want.results[i].routing.begin(), want.results[i].routing.end(), 0ll);
    const int64_t got_total = std::accumulate(got.results[i].routing.begin(), got.results[i].routing.end(), 0ll);
    EXPECT_EQ(got_total, want_total) << what << " routing of seq " << i;
  }
  const SequenceResult& c = got.results[2];
  EXPECT_EQ(c.token, Argmax(c.logits)) << what;
  ASSERT_EQ(c.top_logprobs.size(), 3u) << what;
  EXPECT_EQ(c.top_logprobs[0].token, c.token) << what;
  EXPECT_NEAR(c.logprob, want.results[2].logprob, 5e-2) << what;
  ASSERT_EQ(got.routed.size(), want.routed.size());
  const int64_t got_routed = std::accumulate(got.routed.begin(), got.routed.end(), 0ll);
  EXPECT_EQ(got_routed, std::accumulate(want.routed.begin(), want.routed.end(), 0ll)) << what;
  int64_t diff = 0;
  for (size_t i = 0; i < got.routed.size(); ++i) diff += std::abs(got.routed[i] - want.routed[i]);
  EXPECT_LE(diff, got_routed / 10) << what << ": per-expert routing differs beyond near-tie flips";
}

TEST(CudaModelTest, AgreesWithCpuOnRandomModelsOfEveryFamily) {
  MOED_REQUIRE_GPU();
  using test_models::RandomModelOptions;
  std::vector<RandomModelOptions> cases(5);
  cases[1].family = Family::kQwen2Moe;
  cases[1].shared_ffn = 40;
  cases[1].dense_first_layer = true;
  cases[2].family = Family::kQwen3Moe;
  cases[2].experts = 32;
  cases[2].top_k = 4;
  cases[3].family = Family::kOlmoe;
  cases[3].experts = 16;
  cases[3].top_k = 4;
  cases[4].sliding_window = 6;
  for (const RandomModelOptions& o : cases) {
    auto m = test_models::MakeRandomModel(o);
    ExpectBackendsAgree(m, m, std::string(FamilyName(o.family)));
  }
}

// The device-generated weights of a synthetic model equal the host-materialised ones.
TEST(CudaModelTest, SyntheticModelsGeneratedOnDeviceMatchCpu) {
  MOED_REQUIRE_GPU();
  for (const std::string& name : SyntheticModelNames()) {
    SyntheticOptions host;
    host.small = true;
    host.router_skew = 1.0f;
    SyntheticOptions device = host;
    device.materialize = false;
    auto cpu_model = CreateSyntheticModel(name, host);
    auto gpu_model = CreateSyntheticModel(name, device);
    ASSERT_TRUE(cpu_model.ok()) << cpu_model.status();
    ASSERT_TRUE(gpu_model.ok()) << gpu_model.status();
    ExpectBackendsAgree(*cpu_model, *gpu_model, "synthetic " + name);
  }
}

TEST(CudaModelTest, CapacityDropsAreCounted) {
  MOED_REQUIRE_GPU();
  SyntheticOptions o;
  o.small = true;
  o.router_skew = 4.0f;
  auto m = CreateSyntheticModel("mixtral-8x7b", o);
  ASSERT_TRUE(m.ok()) << m.status();
  BackendOptions bo;
  bo.moe_capacity_factor = 0.5f;
  auto b = MakeBackend("cuda", *m, bo);
  ASSERT_NE(b, nullptr);
  std::vector<int32_t> ids(64);
  for (int i = 0; i < 64; ++i) ids[i] = (i * 31) % (*m)->spec.vocab_size;
  StepBatch batch;
  batch.token_ids = ids;
  batch.seqs.push_back(Seq(1, 0, 64, 0, Table(0, 64)));
  StepOutput out;
  ASSERT_TRUE(b->Step(batch, &out).ok());
  const ModelSpec& s = (*m)->spec;
  const int64_t cap = static_cast<int64_t>(std::ceil(0.5 * 64 * s.top_k / s.num_experts));
  int64_t total_dropped = 0;
  for (int l = 0; l < s.num_layers; ++l) {
    int64_t routed = 0;
    for (int e = 0; e < s.num_experts; ++e) {
      const int64_t r = out.routed[l * s.num_experts + e], d = out.dropped[l * s.num_experts + e];
      EXPECT_EQ(d, std::max<int64_t>(0, r - cap)) << "layer " << l << " expert " << e;
      routed += r;
      total_dropped += d;
    }
    EXPECT_EQ(routed, 64 * s.top_k);
  }
  EXPECT_GT(total_dropped, 0);
}

TEST(CudaModelTest, RejectsBadBatches) {
  MOED_REQUIRE_GPU();
  auto m = test_models::MakeRandomModel({});
  auto fresh = CreateBackend("cuda", m, {});
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  StepOutput out;
  StepBatch one;
  one.token_ids = {1};
  one.seqs.push_back(Seq(1, 0, 1, 0, {0}));
  EXPECT_EQ((*fresh)->Step(one, &out).code(), absl::StatusCode::kFailedPrecondition);
  auto b = MakeBackend("cuda", m);
  StepBatch bad_id = one;
  bad_id.token_ids = {m->spec.vocab_size};
  EXPECT_EQ(b->Step(bad_id, &out).code(), absl::StatusCode::kInvalidArgument);
  StepBatch short_table = one;
  short_table.seqs[0].start_pos = kBlock;
  EXPECT_EQ(b->Step(short_table, &out).code(), absl::StatusCode::kInvalidArgument);
  StepBatch bad_block = one;
  bad_block.seqs[0].block_table = {256};
  EXPECT_EQ(b->Step(bad_block, &out).code(), absl::StatusCode::kInvalidArgument);
  StepBatch bad_sampling = one;
  bad_sampling.seqs[0].sample = true;
  bad_sampling.seqs[0].sampling.top_p = 0.0f;
  EXPECT_EQ(b->Step(bad_sampling, &out).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(b->Step(one, &out).ok());  // still usable afterwards
}

}  // namespace
}  // namespace moed
