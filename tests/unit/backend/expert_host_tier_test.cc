// ExpertHostTier: the CUDA expert cache's host tier holds every routed expert as its device slot will, in bf16:
// checkpoint bf16 in place, other dtypes converted, synthetic experts generated with the device fill's values.
#include "engine/backend/cuda/host/expert_host_tier.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "engine/model/dtype.h"
#include "engine/model/model.h"
#include "engine/model/synthetic_model.h"
#include "gtest/gtest.h"

namespace moed::cuda {
namespace {

// Synthetic experts generated on 3 threads equal the host-materialised model's bf16 tensors byte for byte (the same
// rule the device fill follows, held to it by tests/gpu).
TEST(ExpertHostTierTest, SyntheticExpertsAreGeneratedAsTheMaterialisedModel) {
  SyntheticOptions lazy;
  lazy.small = true;
  lazy.materialize = false;
  SyntheticOptions full = lazy;
  full.materialize = true;
  auto generated = CreateSyntheticModel("olmoe-1b-7b", lazy);
  auto materialised = CreateSyntheticModel("olmoe-1b-7b", full);
  ASSERT_TRUE(generated.ok() && materialised.ok());
  auto tier = ExpertHostTier::Build(**generated, 3);
  ASSERT_TRUE(tier.ok()) << tier.status();
  const ModelSpec& s = (*generated)->spec;
  const int64_t mat = static_cast<int64_t>(s.moe_intermediate_size) * s.hidden_size;
  EXPECT_EQ((*tier)->expert_bytes(), 3 * mat * 2);
  EXPECT_EQ((*tier)->routed_experts(), s.num_routed_experts());
  EXPECT_EQ((*tier)->arena_bytes(), (*tier)->routed_bytes()) << "nothing to use in place";
  for (int l = 0; l < s.num_layers; ++l) {
    for (int e = 0; e < s.num_experts; ++e) {
      const auto& parts = (*tier)->parts()[static_cast<size_t>(l) * s.num_experts + e];
      ASSERT_EQ(parts.size(), 3u);
      const FfnOf<TensorView>& f = (*materialised)->weights.layers[l].experts[e];
      const TensorView* want[3] = {&f.gate, &f.up, &f.down};
      for (int p = 0; p < 3; ++p) {
        ASSERT_EQ(want[p]->dtype, DType::kBF16);
        ASSERT_EQ(parts[p].bytes, mat * 2);
        EXPECT_EQ(std::memcmp(parts[p].data, want[p]->data, mat * 2), 0) << "layer " << l << " expert " << e;
      }
      // Back to back, as the slot holds them.
      EXPECT_EQ(static_cast<const char*>(parts[1].data), static_cast<const char*>(parts[0].data) + mat * 2);
      EXPECT_EQ(static_cast<const char*>(parts[2].data), static_cast<const char*>(parts[1].data) + mat * 2);
    }
  }
}

// bf16 checkpoint tensors are used where they are (no copy).
TEST(ExpertHostTierTest, Bf16TensorsAreUsedInPlace) {
  SyntheticOptions full;
  full.small = true;
  auto m = CreateSyntheticModel("mixtral-8x7b", full);
  ASSERT_TRUE(m.ok());
  auto tier = ExpertHostTier::Build(**m, 2);
  ASSERT_TRUE(tier.ok()) << tier.status();
  EXPECT_EQ((*tier)->arena_bytes(), 0);
  const FfnOf<TensorView>& f = (*m)->weights.layers[1].experts[3];
  const auto& parts = (*tier)->parts()[(*m)->spec.num_experts + 3];
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(parts[0].data, f.gate.data);
  EXPECT_EQ(parts[1].data, f.up.data);
  EXPECT_EQ(parts[2].data, f.down.data);
}

// An expert with a tensor in another dtype goes to the arena: the fp32 tensor converted with round-to-nearest-even,
// its bf16 tensors copied; the other experts stay in place.
TEST(ExpertHostTierTest, OtherDtypesAreConvertedToBf16) {
  SyntheticOptions full;
  full.small = true;
  auto base = CreateSyntheticModel("mixtral-8x7b", full);
  ASSERT_TRUE(base.ok());
  auto m = std::make_shared<Model>(**base);  // shares the base's storage
  FfnOf<TensorView>& f = m->weights.layers[1].experts[2];
  auto f32 = std::make_shared<std::vector<float>>(f.down.numel());
  for (size_t i = 0; i < f32->size(); ++i) (*f32)[i] = f.down.at(static_cast<int64_t>(i)) * 1.0009765625f + 1e-7f;
  m->storage.push_back(f32);
  f.down.dtype = DType::kF32;
  f.down.data = f32->data();
  auto tier = ExpertHostTier::Build(*m, 4);
  ASSERT_TRUE(tier.ok()) << tier.status();
  const ModelSpec& s = m->spec;
  EXPECT_EQ((*tier)->arena_bytes(), (*tier)->expert_bytes()) << "one expert converted, the rest in place";
  const auto& parts = (*tier)->parts()[static_cast<size_t>(s.num_experts) + 2];
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_EQ(std::memcmp(parts[0].data, f.gate.data, f.gate.numel() * 2), 0);
  EXPECT_EQ(std::memcmp(parts[1].data, f.up.data, f.up.numel() * 2), 0);
  const auto* got = static_cast<const uint16_t*>(parts[2].data);
  int rounded = 0;
  for (size_t i = 0; i < f32->size(); ++i) {
    ASSERT_EQ(got[i], FloatToBf16((*f32)[i])) << i;
    rounded += Bf16ToFloat(got[i]) != (*f32)[i];
  }
  EXPECT_GT(rounded, 0) << "the values were not all bf16 already";
  EXPECT_EQ((*tier)->parts()[0][0].data, m->weights.layers[0].experts[0].gate.data);
}

}  // namespace
}  // namespace moed::cuda
