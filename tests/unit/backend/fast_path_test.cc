// The CPU backend's kernel choice: option checks, the expert-cache fallback to the reference, MLA layers on the
// reference, weight errors from FastPath, and the fast path on an f16 checkpoint against the reference.
#include "engine/backend/cpu/fast_path.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend/cpu/cpu_backend.h"
#include "engine/model/synthetic_model.h"
#include "gtest/gtest.h"

namespace moed::cpu {
namespace {

std::shared_ptr<const Model> Small(const char* name) {
  SyntheticOptions o;
  o.small = true;
  auto m = CreateSyntheticModel(name, o);
  EXPECT_TRUE(m.ok()) << m.status();
  return *m;
}
std::shared_ptr<const Model> SmallMixtral() { return Small("mixtral-8x7b"); }

// Last-position logits of a 40-token prompt in one step.
std::vector<float> PromptLogits(std::shared_ptr<const Model> model, const char* kernels) {
  BackendOptions bo;
  bo.cpu_kernels = kernels;
  auto b = CpuBackend::Create(model, bo);
  EXPECT_TRUE(b.ok()) << b.status();
  if (!b.ok()) return {};
  EXPECT_TRUE((*b)->InitKvCache({4, 16}).ok());
  StepBatch batch;
  SequenceStep q;
  q.num_tokens = 40;
  q.block_table = {0, 1, 2};
  q.want_logits = true;
  batch.seqs = {q};
  for (int t = 0; t < 40; ++t) batch.token_ids.push_back((5 + 11 * t) % model->spec.vocab_size);
  StepOutput out;
  EXPECT_TRUE((*b)->Step(batch, &out).ok());
  return out.results[0].logits;
}

float MaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float worst = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  return worst;
}

TEST(CpuKernels, UnknownNameIsRefusedNamingTheOption) {
  BackendOptions bo;
  bo.cpu_kernels = "turbo";
  auto b = CpuBackend::Create(SmallMixtral(), bo);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(b.status().message()).find("cpu_kernels must be fast, fast-fp32 or reference, got 'turbo'"),
            std::string::npos)
      << b.status();
}

TEST(CpuKernels, FastUnlessTheCpuExpertCacheTierIsOn) {
  BackendOptions bo;
  bo.cpu_kernels = "fast";
  auto fast = CpuBackend::Create(SmallMixtral(), bo);
  ASSERT_TRUE(fast.ok()) << fast.status();
  EXPECT_EQ((*fast)->kernels(), "fast");
  bo.cpu_kernels = "fast-fp32";
  auto fp32 = CpuBackend::Create(SmallMixtral(), bo);
  ASSERT_TRUE(fp32.ok()) << fp32.status();
  EXPECT_EQ((*fp32)->kernels(), "fast-fp32");
  bo.cpu_kernels = "fast";
  bo.expert_cache_slots = 4;
  auto cached = CpuBackend::Create(SmallMixtral(), bo);
  ASSERT_TRUE(cached.ok()) << cached.status();
  EXPECT_EQ((*cached)->kernels(), "reference");
  BackendOptions def;
  auto ref = CpuBackend::Create(SmallMixtral(), def);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ((*ref)->kernels(), "reference") << "BackendOptions' default is the reference; the binaries default to fast";
}

TEST(CpuKernels, MlaLayersRunTheReference) {
  auto model = Small("deepseek-v2-lite");
  auto fp = FastPath::Create(model, FastKernelConfig(), FastKernelConfig());
  ASSERT_TRUE(fp.ok()) << fp.status();
  for (int l = 0; l < model->spec.num_layers; ++l) EXPECT_FALSE((*fp)->RunsLayer(l)) << l;
  auto mixtral = FastPath::Create(SmallMixtral(), FastKernelConfig(), FastKernelConfig());
  ASSERT_TRUE(mixtral.ok()) << mixtral.status();
  EXPECT_TRUE((*mixtral)->RunsLayer(0));
  // Only the embedding and lm_head run fast on an MLA model, with fp32 activations under either fast kernel set:
  // fp32 summation order (measured ~1e-6).
  EXPECT_LE(MaxDiff(PromptLogits(model, "fast"), PromptLogits(model, "reference")), 1e-4f);
  EXPECT_LE(MaxDiff(PromptLogits(model, "fast-fp32"), PromptLogits(model, "reference")), 1e-4f);
}

TEST(FastPath, EveryGqaFamilyMatchesTheReference) {
  for (const char* name : {"mixtral-8x7b", "olmoe-1b-7b", "qwen3-30b-a3b"}) {
    auto model = Small(name);
    const std::vector<float> reference = PromptLogits(model, "reference");
    // fp32 activations: summation order only (measured ~1e-6).
    EXPECT_LE(MaxDiff(PromptLogits(model, "fast-fp32"), reference), 1e-4f) << name;
    // The routed experts' inputs rounded to bf16 (on AVX512_BF16 CPUs): measured 2.4e-3 to 5.8e-3; the
    // issue's bound for the fast path is 2e-2.
    EXPECT_LE(MaxDiff(PromptLogits(model, "fast"), reference), 2e-2f) << name;
  }
}

TEST(FastPath, MissingOrMisSizedWeightsAreNamed) {
  auto copy = std::make_shared<Model>(*SmallMixtral());
  copy->weights.layers[1].experts[3].down.data = nullptr;
  auto fp = FastPath::Create(copy, FastKernelConfig(), FastKernelConfig());
  ASSERT_FALSE(fp.ok());
  EXPECT_NE(std::string(fp.status().message()).find("layers.1.experts.3.down"), std::string::npos) << fp.status();

  copy = std::make_shared<Model>(*SmallMixtral());
  copy->weights.layers[0].k_proj.shape = {7, 7};
  fp = FastPath::Create(copy, FastKernelConfig(), FastKernelConfig());
  ASSERT_FALSE(fp.ok());
  EXPECT_NE(std::string(fp.status().message()).find("layers.0.k_proj"), std::string::npos) << fp.status();
}

// f16 bits of a float in the normal range (the synthetic weights), round to nearest even.
uint16_t ToF16(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  const uint32_t sign = (b >> 16) & 0x8000u;
  const int exp = static_cast<int>((b >> 23) & 0xff) - 127 + 15;
  if (exp <= 0) return static_cast<uint16_t>(sign);
  const uint32_t mant = b & 0x7fffffu;
  uint32_t h = sign | (static_cast<uint32_t>(exp) << 10) | (mant >> 13);
  const uint32_t rest = mant & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(h);
}

TEST(FastPath, F16CheckpointMatchesTheReference) {
  // The synthetic model re-stored as f16: every 2-D tensor converted, owned by the copy.
  auto copy = std::make_shared<Model>(*SmallMixtral());
  auto to_f16 = [&](TensorView& t) {
    if (!t.present() || t.shape.size() != 2) return;
    auto buf = std::make_shared<std::vector<uint16_t>>(t.numel());
    for (int64_t i = 0; i < t.numel(); ++i) (*buf)[i] = ToF16(t.at(i));
    t.data = buf->data();
    t.dtype = DType::kF16;
    copy->storage.push_back(std::move(buf));
  };
  to_f16(copy->weights.embed);
  to_f16(copy->weights.lm_head);
  for (LayerWeights& l : copy->weights.layers) {
    for (TensorView* t : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.router}) to_f16(*t);
    for (FfnWeights& e : l.experts) {
      to_f16(e.gate);
      to_f16(e.up);
      to_f16(e.down);
    }
  }
  ASSERT_EQ(copy->weights.layers[0].experts[0].gate.dtype, DType::kF16);
  // f16 weights never take the bf16 dot kernel: fp32 summation order only under either fast set (measured ~1e-6).
  const std::vector<float> reference = PromptLogits(copy, "reference");
  EXPECT_LE(MaxDiff(PromptLogits(copy, "fast"), reference), 1e-4f);
  EXPECT_LE(MaxDiff(PromptLogits(copy, "fast-fp32"), reference), 1e-4f);
}

}  // namespace
}  // namespace moed::cpu
