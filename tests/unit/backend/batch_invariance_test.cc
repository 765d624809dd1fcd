// Batch invariance of the CPU backend, fast and reference kernels: a sequence's logits are bitwise the same whether
// its tokens run alone in one step or chunked across steps inside batches with other sequences (what prefix caching
// on vs off changes), on bf16 synthetic models of GQA (with and without q/k norm) and MLA families.
#include <cstring>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/model/synthetic_model.h"
#include "gtest/gtest.h"

namespace moed {
namespace {

constexpr int kBlock = 4;

SequenceStep Seq(int64_t id, int offset, int num_tokens, int start_pos, int first_block, bool logits) {
  SequenceStep s;
  s.seq_id = id;
  s.token_offset = offset;
  s.num_tokens = num_tokens;
  s.start_pos = start_pos;
  s.block_table.resize(16);
  std::iota(s.block_table.begin(), s.block_table.end(), first_block);
  s.want_logits = logits;
  return s;
}

// Runs `seqs` (token ids appended in order) as one step; returns the logits of seqs[want].
std::vector<float> Step(Backend& b, std::vector<std::pair<SequenceStep, std::vector<int32_t>>> seqs, size_t want) {
  StepBatch batch;
  for (auto& [s, ids] : seqs) {
    s.token_offset = static_cast<int32_t>(batch.token_ids.size());
    batch.token_ids.insert(batch.token_ids.end(), ids.begin(), ids.end());
    batch.seqs.push_back(s);
  }
  StepOutput out;
  const absl::Status st = b.Step(batch, &out);
  EXPECT_TRUE(st.ok()) << st;
  return st.ok() ? out.results[want].logits : std::vector<float>{};
}

void ExpectBitwiseEqual(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  ASSERT_FALSE(a.empty()) << what;
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(std::memcmp(&a[i], &b[i], sizeof(float)), 0) << what << ": logit " << i << " " << a[i] << " vs " << b[i];
  }
}

class BatchInvarianceTest : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(BatchInvarianceTest, AloneEqualsChunkedInsideMixedBatches) {
  const auto& [name, kernels] = GetParam();
  SyntheticOptions so;
  so.small = true;
  auto model = CreateSyntheticModel(name, so);
  ASSERT_TRUE(model.ok()) << model.status();
  const int vocab = (*model)->spec.vocab_size;
  auto ids = [&](int n, int seed) {
    std::vector<int32_t> v(n);
    for (int i = 0; i < n; ++i) v[i] = (seed + 37 * i) % vocab;
    return v;
  };
  const std::vector<int32_t> p = ids(21, 3), q = ids(13, 11), r = ids(7, 5);
  const int32_t next = 42;  // the decode token after p
  BackendOptions bo;
  bo.cpu_kernels = kernels;
  bo.num_threads = 2;
  auto make = [&] {
    auto b = CreateBackend("cpu", *model, bo);
    EXPECT_TRUE(b.ok()) << b.status();
    EXPECT_TRUE((*b)->InitKvCache({64, kBlock}).ok());
    return std::move(b).value();
  };

  // Alone: p's whole prompt in one step, then one decode step.
  auto alone = make();
  const auto prefill_alone = Step(*alone, {{Seq(1, 0, 21, 0, 0, true), p}}, 0);
  const auto decode_alone = Step(*alone, {{Seq(1, 0, 1, 21, 0, true), {next}}}, 0);

  // Mixed: p's first 16 tokens after q's prefill, its last 5 beside q's decode, then its decode between q's decode
  // and r's prefill.
  auto mixed = make();
  Step(*mixed, {{Seq(2, 0, 13, 0, 16, false), q}, {Seq(1, 0, 16, 0, 0, false), {p.begin(), p.begin() + 16}}}, 1);
  const auto prefill_mixed =
      Step(*mixed, {{Seq(1, 0, 5, 16, 0, true), {p.begin() + 16, p.end()}}, {Seq(2, 0, 1, 13, 16, true), {9}}}, 0);
  const auto decode_mixed = Step(*mixed,
                                 {{Seq(2, 0, 1, 14, 16, true), {8}},
                                  {Seq(1, 0, 1, 21, 0, true), {next}},
                                  {Seq(3, 0, 7, 0, 32, true), r}},
                                 1);
  ExpectBitwiseEqual(prefill_alone, prefill_mixed, name + " " + kernels + " prompt logits");
  ExpectBitwiseEqual(decode_alone, decode_mixed, name + " " + kernels + " decode logits");
}

INSTANTIATE_TEST_SUITE_P(FamiliesAndKernels, BatchInvarianceTest,
                         ::testing::Combine(::testing::Values("mixtral-8x7b", "qwen3-30b-a3b", "deepseek-v2-lite"),
                                            ::testing::Values("fast", "fast-fp32", "reference")),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param);
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace moed
