// The CUDA backend with the hot-expert cache on (routed experts in the host tier, a few device slots) against the
// same backend with every expert resident: the logits and tokens are bit-identical whatever the slots, waves and
// prefetch do; the cache's per-step hits, misses and evictions equal a CPU-tier replay of the backend's own routing;
// a model whose experts do not fit is refused naming the flag. Skips without a device.
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/backend/cuda/cuda_weights.h"
#include "engine/cache/expert_cache.h"
#include "engine/cache/memcpy_transfer.h"
#include "engine/cache/wave_planner.h"
#include "engine/model/model.h"
#include "engine/model/synthetic_model.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/unit/backend/random_model.h"

namespace moed {
namespace {

constexpr int kBlock = 16;

std::unique_ptr<Backend> Make(std::shared_ptr<const Model> m, int slots, bool prefetch) {
  BackendOptions o;
  o.cuda_graphs = false;
  o.expert_cache_slots = slots;
  o.expert_cache_prefetch = prefetch;
  auto b = CreateBackend("cuda", std::move(m), o);
  EXPECT_TRUE(b.ok()) << b.status();
  if (!b.ok()) return nullptr;
  EXPECT_TRUE((*b)->InitKvCache({128, kBlock}).ok());
  return std::move(b).value();
}

// Step `i` of a fixed run over 3 sequences: a prefill of 24/40/50 tokens (enough rows per expert for the tensor-core
// kernels), then decode steps (the streaming kernels) feeding back token ids derived from the step (the same for
// every backend, so the runs stay comparable even if a token differed).
StepBatch Batch(int i, int vocab, bool token_routing) {
  StepBatch b;
  const int lens[3] = {24, 40, 50};
  for (int q = 0; q < 3; ++q) {
    SequenceStep s;
    s.seq_id = q + 1;
    s.token_offset = static_cast<int>(b.token_ids.size());
    s.num_tokens = i == 0 ? lens[q] : 1;
    s.start_pos = i == 0 ? 0 : lens[q] + i - 1;
    for (int t = 0; t < s.num_tokens; ++t) b.token_ids.push_back((t * 13 + q * 7 + i * 5 + 1) % vocab);
    for (int j = 0; j < 4; ++j) s.block_table.push_back(q * 4 + j);
    s.sample = true;
    s.want_logits = true;
    s.want_token_routing = token_routing;
    s.sample_index = i;
    b.seqs.push_back(s);
  }
  return b;
}

// Runs `steps` steps on both backends and requires bit-identical logits and tokens.
void ExpectIdentical(Backend& resident, Backend& cached, int steps, const std::string& what) {
  const int V = resident.spec().vocab_size;
  int64_t accesses = 0;
  for (int i = 0; i < steps; ++i) {
    StepOutput a, b;
    ASSERT_TRUE(resident.Step(Batch(i, V, false), &a).ok());
    const absl::Status st = cached.Step(Batch(i, V, false), &b);
    ASSERT_TRUE(st.ok()) << what << ": " << st;
    ASSERT_EQ(a.results.size(), b.results.size());
    for (size_t q = 0; q < a.results.size(); ++q) {
      EXPECT_EQ(a.results[q].token, b.results[q].token) << what << " step " << i << " seq " << q;
      ASSERT_EQ(a.results[q].logits.size(), b.results[q].logits.size());
      EXPECT_EQ(std::memcmp(a.results[q].logits.data(), b.results[q].logits.data(),
                            a.results[q].logits.size() * sizeof(float)),
                0)
          << what << " step " << i << " seq " << q << ": logits differ";
    }
    EXPECT_EQ(a.routed, b.routed) << what << " step " << i;
    EXPECT_FALSE(a.expert_cache.enabled());
    ASSERT_TRUE(b.expert_cache.enabled());
    EXPECT_GE(b.expert_cache.capacity_experts, b.expert_cache.resident_experts);
    accesses += b.expert_cache.TotalHits() + b.expert_cache.TotalMisses();
  }
  EXPECT_GT(accesses, 0) << what;
}

TEST(CudaCachedMoeTest, AnySlotCountAndPrefetchGiveTheResidentOutput) {
  MOED_REQUIRE_GPU();
  // A gated shared expert and a dense first layer (qwen2_moe), 16 experts top-4: waves of one expert up to one wave.
  test_models::RandomModelOptions ro;
  ro.family = Family::kQwen2Moe;
  ro.layers = 3;
  ro.experts = 16;
  ro.top_k = 4;
  ro.shared_ffn = 16;
  ro.dense_first_layer = true;
  const auto m = test_models::MakeRandomModel(ro);
  auto resident = Make(m, 0, false);
  ASSERT_NE(resident, nullptr);
  for (int slots : {1, 3, 9, 31}) {
    for (bool prefetch : {false, true}) {
      auto cached = Make(m, slots, prefetch);
      ASSERT_NE(cached, nullptr);
      ExpectIdentical(*resident, *cached, 6,
                      "slots " + std::to_string(slots) + (prefetch ? " prefetch" : " no prefetch"));
    }
  }
}

// Synthetic weights generated on the host tier (the routed experts) and on the device (the rest) give the output of
// the fully device-generated model: the host fill follows the device fill's rule value for value.
TEST(CudaCachedMoeTest, SyntheticHostTierMatchesTheDeviceFill) {
  MOED_REQUIRE_GPU();
  for (const char* name : {"mixtral-8x7b", "olmoe-1b-7b"}) {
    SyntheticOptions o;
    o.small = true;
    o.materialize = false;
    auto m = CreateSyntheticModel(name, o);
    ASSERT_TRUE(m.ok()) << m.status();
    auto resident = Make(*m, 0, false);
    auto cached = Make(*m, 5, true);
    ASSERT_NE(resident, nullptr);
    ASSERT_NE(cached, nullptr);
    ExpectIdentical(*resident, *cached, 4, name);
  }
}

// The built-in model's bf16 shards, mmap'd read-only, are the host tier in place (pinned with
// cudaHostRegisterReadOnly where the default registration refuses a read-only mapping).
TEST(CudaCachedMoeTest, MappedCheckpointServesAsTheHostTier) {
  MOED_REQUIRE_GPU();
  auto m = LoadModel(gpu_test::SourceDir() + "/models/fortune-moe");
  ASSERT_TRUE(m.ok()) << m.status();
  auto resident = Make(*m, 0, false);
  auto cached = Make(*m, 5, true);
  ASSERT_NE(resident, nullptr);
  ASSERT_NE(cached, nullptr);
  ExpectIdentical(*resident, *cached, 4, "fortune-moe");
}

// The backend's hits, misses and evictions per step equal the CPU tier's over the backend's own routing (prefetch
// off: the planner alone decides), and GetExpertStats' residency is what the CPU tier holds.
TEST(CudaCachedMoeTest, SameHitsAndMissesAsTheCpuTierOverItsRouting) {
  MOED_REQUIRE_GPU();
  test_models::RandomModelOptions ro;
  ro.layers = 3;
  ro.experts = 8;
  ro.top_k = 2;
  const auto m = test_models::MakeRandomModel(ro);
  const ModelSpec& s = m->spec;
  constexpr int kSlots = 5;
  auto cached = Make(m, kSlots, false);
  ASSERT_NE(cached, nullptr);
  std::vector<std::vector<cache::HostPart>> parts(s.num_layers * s.num_experts);
  std::vector<float> dummy(4, 0.0f);
  for (auto& p : parts) p = {{dummy.data(), 4}};
  auto pool = cache::MemcpyTransfer::Create(s.num_experts, parts, kSlots);
  ASSERT_TRUE(pool.ok());
  auto cpu = cache::ExpertCache::Create({s.num_layers, s.num_experts, kSlots, "lru", {}}, pool->get());
  ASSERT_TRUE(cpu.ok());
  for (int i = 0; i < 8; ++i) {
    const StepBatch batch = Batch(i, s.vocab_size, true);
    StepOutput out;
    ASSERT_TRUE(cached->Step(batch, &out).ok());
    (*cpu)->BeginStep();
    for (int l = 0; l < s.num_layers; ++l) {
      std::vector<int64_t> used(s.num_experts, 0);
      for (const SequenceResult& r : out.results) {
        for (size_t t = 0; t * s.num_layers * s.top_k < r.token_experts.size(); ++t) {
          for (int k = 0; k < s.top_k; ++k) ++used[r.token_experts[(t * s.num_layers + l) * s.top_k + k]];
        }
      }
      (*cpu)->RecordRouting(l, absl::MakeConstSpan(out.routed.data() + l * s.num_experts, s.num_experts));
      EXPECT_EQ(std::vector<int64_t>(out.routed.begin() + l * s.num_experts,
                                     out.routed.begin() + (l + 1) * s.num_experts),
                used);
      cache::WavePlanner planner(cpu->get(), l, used);
      while (true) {
        auto w = planner.Next();
        ASSERT_TRUE(w.ok()) << w.status();
        if (*w == nullptr) break;
      }
    }
    const cache::ExpertCacheStats c = (*cpu)->TakeStepStats();
    EXPECT_EQ(c.hits, out.expert_cache.hits) << "step " << i;
    EXPECT_EQ(c.misses, out.expert_cache.misses) << "step " << i;
    EXPECT_EQ(c.evictions, out.expert_cache.evictions) << "step " << i;
    EXPECT_EQ(c.hit_assignments, out.expert_cache.hit_assignments) << "step " << i;
    EXPECT_EQ(c.resident, out.expert_cache.resident) << "step " << i;
    EXPECT_EQ(out.expert_cache.capacity_experts, kSlots);
    EXPECT_EQ(c.bytes_transferred > 0, out.expert_cache.bytes_transferred > 0);
  }
}

TEST(CudaCachedMoeTest, CacheFlagsAreAcceptedAndTheSkewOnlyWithThem) {
  MOED_REQUIRE_GPU();
  test_models::RandomModelOptions ro;
  const auto m = test_models::MakeRandomModel(ro);
  BackendOptions o;
  o.router_zipf = 1.0f;
  EXPECT_EQ(CreateBackend("cuda", m, o).status().code(), absl::StatusCode::kInvalidArgument);
  o.expert_cache_bytes = 1;  // holds no whole expert: refused at InitKvCache naming the flag
  auto b = CreateBackend("cuda", m, o);
  ASSERT_TRUE(b.ok()) << b.status();
  const absl::Status kv = (*b)->InitKvCache({16, kBlock});
  EXPECT_EQ(kv.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(kv.message().find("--expert-cache-bytes"), std::string::npos) << kv;
  o.cuda_moe = "per-expert";
  o.expert_cache_bytes = 0;
  o.expert_cache_slots = 2;
  const absl::Status per_expert = CreateBackend("cuda", m, o).status();
  EXPECT_EQ(per_expert.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(per_expert.message().find("grouped"), std::string::npos) << per_expert;
}

// Without a cache flag, the full Mixtral-8x7B shape (84 GiB of routed experts) is refused before anything is uploaded,
// naming the flag to set (on a device that holds the whole model the test skips).
TEST(CudaCachedMoeTest, ModelsTooLargeForTheDeviceAreRefusedNamingTheFlag) {
  MOED_REQUIRE_GPU();
  SyntheticOptions lazy;
  lazy.materialize = false;
  auto m = CreateSyntheticModel("mixtral-8x7b", lazy);
  ASSERT_TRUE(m.ok()) << m.status();
  auto bytes = cuda::MeasureWeights(**m);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  size_t free_b = 0, total_b = 0;
  MOED_CUDA_ASSERT(cudaMemGetInfo(&free_b, &total_b));
  if (bytes->dense + bytes->routed <= static_cast<int64_t>(free_b)) {
    GTEST_SKIP() << "this device holds the whole model (" << free_b << " bytes free)";
  }
  const absl::Status st = CreateBackend("cuda", *m, BackendOptions{}).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_NE(st.message().find("--expert-cache-fraction (at most"), std::string::npos) << st;
}

}  // namespace
}  // namespace moed
