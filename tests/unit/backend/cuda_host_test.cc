// The CUDA backend's host-side code (engine/backend/cuda/host/) held to its CPU twin, without a device: the RoPE
// table, option checks, the step plan's validation and row order (which is the order capacity ranks assignments in),
// and the sampler's candidate orders.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "engine/backend/cpu/cpu_backend.h"
#include "engine/backend/cpu/ops.h"
#include "engine/backend/cuda/host/backend_options.h"
#include "engine/model/rope.h"
#include "engine/backend/cuda/host/rope_table.h"
#include "engine/backend/cuda/host/sample_order.h"
#include "engine/backend/cuda/host/step_plan.h"
#include "engine/runtime/sampler.h"
#include "gtest/gtest.h"
#include "tests/unit/backend/random_model.h"

namespace moed {
namespace {

uint32_t Bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
}

TEST(CudaHostTest, RopeTableIsTheCpuBackendsBitForBit) {
  for (float theta : {10000.0f, 1e6f, 5e5f, 1234.5f}) {
    for (int head_dim : {8, 16, 64, 96, 128, 256}) {
      ModelSpec spec;
      spec.attention.rope.theta = theta;
      spec.attention.rope.dim = spec.attention.head_dim = head_dim;
      const std::vector<float> table = cuda::RopeInvFreqTable(spec);
      const std::vector<float> cpu = RopeInvFreq(spec.attention.rope);  // what the CPU backend rotates by
      ASSERT_EQ(table.size(), cpu.size());
      for (size_t i = 0; i < cpu.size(); ++i) {
        ASSERT_EQ(Bits(table[i]), Bits(cpu[i])) << "theta " << theta << " head_dim " << head_dim << " i " << i;
      }
    }
  }
}

// Every option the CPU backend rejects, the CUDA backend rejects with the same code (the hot-expert cache aside,
// which only the CPU backend implements).
TEST(CudaHostTest, OptionsAreValidatedAsOnTheCpu) {
  auto model = test_models::MakeRandomModel({});
  std::vector<BackendOptions> cases;
  for (float f : {-1.0f, -0.0f, 0.0f, 0.5f, 1.0f, 1e30f, std::numeric_limits<float>::quiet_NaN(),
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()}) {
    BackendOptions o;
    o.moe_capacity_factor = f;
    cases.push_back(o);
  }
  BackendOptions threads;
  threads.num_threads = -1;
  cases.push_back(threads);
  BackendOptions slots;
  slots.expert_cache_slots = -1;
  cases.push_back(slots);
  BackendOptions bytes;
  bytes.expert_cache_bytes = -5;
  cases.push_back(bytes);
  for (const BackendOptions& o : cases) {
    const absl::Status cpu = cpu::CpuBackend::Create(model, o).status();
    const absl::Status gpu = cuda::ValidateCudaBackendOptions(o);
    EXPECT_EQ(gpu.code(), cpu.code()) << "factor " << o.moe_capacity_factor << ": cpu " << cpu << ", cuda " << gpu;
  }
  // The cache flags are accepted (the GPU tier exists); the benchmark routing skew only with them.
  BackendOptions cache;
  cache.expert_cache_slots = 4;
  EXPECT_TRUE(cuda::ValidateCudaBackendOptions(cache).ok());
  cache.router_zipf = 1.2f;
  EXPECT_TRUE(cuda::ValidateCudaBackendOptions(cache).ok());
  cache.router_zipf = -1.0f;
  EXPECT_EQ(cuda::ValidateCudaBackendOptions(cache).code(), absl::StatusCode::kInvalidArgument);
  BackendOptions skew_alone;
  skew_alone.router_zipf = 1.2f;
  const absl::Status st = cuda::ValidateCudaBackendOptions(skew_alone);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("--expert-cache-"), std::string::npos) << st;
  EXPECT_EQ(cpu::CpuBackend::Create(model, skew_alone).status().code(), absl::StatusCode::kInvalidArgument)
      << "the CPU backend refuses the CUDA-only benchmark skew";
}

// The CUDA path selectors: the defaults are the new paths, the old names are accepted, anything else is refused by
// name.
TEST(CudaHostTest, PathOptionsAreValidatedByName) {
  BackendOptions o;
  EXPECT_EQ(o.cuda_moe, "grouped");
  EXPECT_EQ(o.cuda_attention, "flash");
  EXPECT_EQ(o.cuda_sampling, "radix");
  EXPECT_TRUE(o.cuda_graphs);
  EXPECT_TRUE(cuda::ValidateCudaBackendOptions(o).ok());
  o.cuda_moe = "per-expert";
  o.cuda_attention = "simple";
  o.cuda_sampling = "bisect";
  EXPECT_TRUE(cuda::ValidateCudaBackendOptions(o).ok());
  o.cuda_sampling = "sort";
  EXPECT_EQ(cuda::ValidateCudaBackendOptions(o).code(), absl::StatusCode::kInvalidArgument);
  o.cuda_sampling = "radix";
  o.cuda_moe = "cutlass";
  absl::Status st = cuda::ValidateCudaBackendOptions(o);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("cuda_moe"), std::string::npos) << st;
  o.cuda_moe = "grouped";
  o.cuda_attention = "paged";
  st = cuda::ValidateCudaBackendOptions(o);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("cuda_attention"), std::string::npos) << st;
}

constexpr int kBlock = 4;
constexpr int kBlocks = 32;

SequenceStep Seq(int64_t id, int offset, int n, int start, int first_block) {
  SequenceStep s;
  s.seq_id = id;
  s.token_offset = offset;
  s.num_tokens = n;
  s.start_pos = start;
  s.block_table.resize((start + n + kBlock - 1) / kBlock);
  std::iota(s.block_table.begin(), s.block_table.end(), first_block);
  return s;
}

// The CPU backend computes rows sequence by sequence in batch.seqs order (cpu_backend.cc Step); the plan must list
// rows in that same order, so the router's capacity ranks (row, slot) assignments as the CPU's ApplyCapacity does.
TEST(CudaHostTest, PlanRowsFollowTheCpuRowOrder) {
  auto model = test_models::MakeRandomModel({});
  StepBatch batch;
  // ids: [A0 A1 A2 | x | B0 B1] with x (index 3) in no sequence and outside the vocabulary, as the CPU allows.
  batch.token_ids = {5, 6, 7, -7, 11, 12};
  batch.seqs.push_back(Seq(20, 4, 2, 3, 8));  // B listed first: its rows come first
  batch.seqs.push_back(Seq(10, 0, 3, 0, 0));
  batch.seqs[0].want_logits = true;
  batch.seqs[1].sample = true;
  batch.seqs[1].want_routing = true;
  batch.seqs[0].want_token_routing = true;
  cuda::StepPlan plan;
  ASSERT_TRUE(cuda::BuildStepPlan(batch, model->spec, kBlocks, kBlock, &plan).ok());

  std::vector<int32_t> ids, positions, row_seq, row_in_seq;
  std::vector<int64_t> kv_rows;
  for (size_t si = 0; si < batch.seqs.size(); ++si) {  // the CPU's enumeration
    const SequenceStep& q = batch.seqs[si];
    for (int t = 0; t < q.num_tokens; ++t) {
      const int pos = q.start_pos + t;
      ids.push_back(batch.token_ids[q.token_offset + t]);
      positions.push_back(pos);
      row_seq.push_back(static_cast<int32_t>(si));
      row_in_seq.push_back(t);
      kv_rows.push_back(static_cast<int64_t>(q.block_table[pos / kBlock]) * kBlock + pos % kBlock);
    }
  }
  EXPECT_EQ(plan.rows, 5);
  EXPECT_EQ(plan.ids, ids);
  EXPECT_EQ(plan.positions, positions);
  EXPECT_EQ(plan.row_seq, row_seq);
  EXPECT_EQ(plan.row_in_seq, row_in_seq);
  EXPECT_EQ(plan.kv_rows, kv_rows);
  EXPECT_EQ(plan.out_rows, (std::vector<int32_t>{1, 4}));  // each sequence's last row
  EXPECT_EQ(plan.out_row_seq, (std::vector<int32_t>{0, 1}));
  EXPECT_TRUE(plan.any_routing);
  EXPECT_TRUE(plan.any_token_routing);
  for (int r = 0; r < plan.rows; ++r) {
    const SequenceStep& q = batch.seqs[plan.row_seq[r]];
    EXPECT_EQ(plan.block_tables[plan.table_offsets[r]], q.block_table[0]) << "row " << r;
  }

  // The CPU backend accepts the same batch (the stray id included).
  auto cpu = cpu::CpuBackend::Create(model, {});
  ASSERT_TRUE(cpu.ok());
  ASSERT_TRUE((*cpu)->InitKvCache({kBlocks, kBlock}).ok());
  StepOutput out;
  EXPECT_TRUE((*cpu)->Step(batch, &out).ok());
}

// Each batch is rejected by both or accepted by both, with the same code.
TEST(CudaHostTest, PlanValidatesBatchesAsTheCpu) {
  auto model = test_models::MakeRandomModel({});
  auto cpu = cpu::CpuBackend::Create(model, {});
  ASSERT_TRUE(cpu.ok());
  ASSERT_TRUE((*cpu)->InitKvCache({kBlocks, kBlock}).ok());
  StepBatch good;
  good.token_ids = {1, 2, 3};
  good.seqs.push_back(Seq(1, 0, 3, 0, 0));
  std::vector<StepBatch> cases(10, good);
  cases[1].token_ids[1] = model->spec.vocab_size;           // id outside the vocabulary
  cases[2].seqs[0].num_tokens = 0;                          // empty sequence
  cases[3].seqs[0].token_offset = 1;                        // tokens past the ids
  cases[4].seqs[0].start_pos = -1;                          // negative position
  cases[5].seqs[0].start_pos = kBlock;                      // block table too short
  cases[6].seqs[0].block_table[0] = kBlocks;                // block outside the cache
  cases[7].seqs[0].sample = true;                           // bad sampling params
  cases[7].seqs[0].sampling.top_p = 0.0f;
  cases[8].seqs.push_back(Seq(2, 1, 2, 0, 4));              // two sequences sharing ids: each computed
  cases[9].seqs.clear();                                    // no sequences: nothing to do
  for (size_t i = 0; i < cases.size(); ++i) {
    cuda::StepPlan plan;
    const absl::Status gpu = cuda::BuildStepPlan(cases[i], model->spec, kBlocks, kBlock, &plan);
    StepOutput out;
    const absl::Status c = (*cpu)->Step(cases[i], &out);
    EXPECT_EQ(gpu.code(), c.code()) << "case " << i << ": cpu " << c << ", cuda " << gpu;
  }
  cuda::StepPlan plan;
  ASSERT_TRUE(cuda::BuildStepPlan(cases[8], model->spec, kBlocks, kBlock, &plan).ok());
  EXPECT_EQ(plan.rows, 5);
}

// Sorting by BestFirstKey (descending) is the CPU sampler's best-first order: logit desc, id asc, -0 == +0.
TEST(CudaHostTest, BestFirstKeysOrderAsTheCpuSampler) {
  std::mt19937 rng(3);
  std::vector<float> row(2000);
  std::normal_distribution<float> nd(0.0f, 2.0f);
  for (float& v : row) v = std::round(nd(rng) * 4.0f) / 4.0f;  // many exact ties
  for (int i = 0; i < 40; ++i) row[rng() % row.size()] = (i % 2) ? -0.0f : 0.0f;
  row[7] = -std::numeric_limits<float>::infinity();
  row[8] = std::numeric_limits<float>::infinity();
  std::vector<int32_t> by_key(row.size()), by_cpu(row.size());
  std::iota(by_key.begin(), by_key.end(), 0);
  std::iota(by_cpu.begin(), by_cpu.end(), 0);
  std::sort(by_key.begin(), by_key.end(), [&](int32_t a, int32_t b) {
    return cuda::BestFirstKey(row[a], a) > cuda::BestFirstKey(row[b], b);
  });
  std::sort(by_cpu.begin(), by_cpu.end(),
            [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
  EXPECT_EQ(by_key, by_cpu);
  for (int32_t i : {0, 1, 17, 151935, std::numeric_limits<int32_t>::max() - 1}) {
    EXPECT_EQ(cuda::KeyId(cuda::BestFirstKey(1.5f, i)), i);
    EXPECT_EQ(cuda::KeyId(cuda::IdOrderKey(i)), i);
    EXPECT_GT(cuda::BestFirstKey(std::numeric_limits<float>::quiet_NaN(), i), 0u);
  }
  // NaN is never better than a number.
  EXPECT_LT(cuda::BestFirstKey(std::numeric_limits<float>::quiet_NaN(), 0),
            cuda::BestFirstKey(-std::numeric_limits<float>::infinity(), 5));
}

// The device's draw, written sequentially with the shared keys: candidates kept by a best-first top-k floor and
// top-p cut, the draw scanning in ScanKey order, the rounding edge taking the last kept candidate with weight > 0.
// It must pick SampleToken's token for every parameter mix, so the keys and the scan-order rule are the CPU's.
int32_t DrawByKeys(const std::vector<float>& row, const SamplingParams& p, int32_t sample_index) {
  const int vocab = static_cast<int>(row.size());
  const bool best_first = cuda::SampleScansBestFirst(p.top_p, p.top_k, vocab);
  std::vector<int32_t> best(vocab);
  std::iota(best.begin(), best.end(), 0);
  std::sort(best.begin(), best.end(),
            [&](int32_t a, int32_t b) { return cuda::BestFirstKey(row[a], a) > cuda::BestFirstKey(row[b], b); });
  const double inv_t = 1.0 / static_cast<double>(p.temperature);
  const double m = static_cast<double>(row[best[0]]) * inv_t;
  size_t keep = (p.top_k > 0 && p.top_k < vocab) ? p.top_k : vocab;
  std::vector<int32_t> scan(best.begin(), best.begin() + keep);
  if (!best_first) std::sort(scan.begin(), scan.end());  // ids ascending
  auto w = [&](int32_t id) { return std::exp(row[id] * inv_t - m); };
  double total = 0.0;
  for (int32_t id : scan) total += w(id);
  if (p.top_p < 1.0f) {
    const double target = static_cast<double>(p.top_p) * total;
    double cum = 0.0;
    for (size_t i = 0; i < scan.size(); ++i) {
      cum += w(scan[i]);
      if (cum >= target) {
        scan.resize(i + 1);
        break;
      }
    }
    total = 0.0;
    for (int32_t id : scan) total += w(id);
  }
  const double u = CounterUniform(p.seed, static_cast<uint64_t>(sample_index)) * total;
  double cum = 0.0;
  for (int32_t id : scan) {
    cum += w(id);
    if (u < cum) return id;
  }
  for (size_t i = scan.size(); i-- > 0;) {
    if (w(scan[i]) > 0.0) return scan[i];
  }
  return scan[0];
}

TEST(CudaHostTest, DrawScanOrderIsTheCpuSamplers) {
  std::mt19937 rng(4);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  const SamplingParams mixes[] = {{1.0f, 1.0f, 0, 0, 0},   {0.7f, 0.9f, 0, 0, 0},  {1.3f, 1.0f, 40, 0, 0},
                                  {0.8f, 0.95f, 50, 0, 0}, {1.0f, 0.5f, 1, 0, 0},   {2.0f, 0.3f, 0, 0, 0},
                                  {0.5f, 1.0f, 1000, 0, 0}, {1.0f, 1.0f, 1024, 0, 0}, {0.05f, 1.0f, 0, 0, 0}};
  int unfiltered_not_best = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::vector<float> row(1024);
    for (float& v : row) v = nd(rng);
    SamplingParams p = mixes[trial % std::size(mixes)];
    p.seed = trial;
    const int32_t want = SampleToken(row, p, trial).token;
    EXPECT_EQ(DrawByKeys(row, p, trial), want) << "trial " << trial;
    const int32_t argmax = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
    if (!cuda::SampleScansBestFirst(p.top_p, p.top_k, 1024) && want != argmax) ++unfiltered_not_best;
  }
  EXPECT_GT(unfiltered_not_best, 0);  // the unfiltered draws exercised more than the argmax
}

}  // namespace
}  // namespace moed
