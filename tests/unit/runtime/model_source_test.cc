// OpenModel: model directories and synthetic models, with their own, a borrowed, or an ids-only tokenizer.
#include "engine/runtime/model_source.h"

#include <string>

#include "gtest/gtest.h"

namespace moed {
namespace {

const std::string kFortune = std::string(MOED_SOURCE_DIR) + "/models/fortune-moe";

TEST(ModelSourceTest, DirectoryComesWithItsOwnTokenizer) {
  absl::StatusOr<OpenedModel> m = OpenModel(kFortune, {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->tokenizer->vocab_size(), m->model->spec.vocab_size);
  EXPECT_FALSE(IsSyntheticModelName(kFortune));
}

TEST(ModelSourceTest, SmallSyntheticModelWithoutTokenizerTakesIdsOnly) {
  absl::StatusOr<OpenedModel> m = OpenModel("synthetic:qwen3-30b-a3b-small", {});
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->model->spec.num_experts, 128);
  EXPECT_EQ(m->model->spec.num_layers, 2);  // the small variant
  absl::StatusOr<std::vector<int32_t>> ids = m->tokenizer->Encode("hello");
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(ids.status().message().find("--tokenizer"), std::string::npos) << ids.status();
  EXPECT_EQ(m->tokenizer->Decode({7, 42}), "<7><42>");
  EXPECT_EQ(m->tokenizer->TokenBytes(m->model->spec.vocab_size), "");  // out of range
}

// synthetic_layers keeps the first N layers of a synthetic shape (benchmarks: the per-layer geometry with less
// memory); more layers than the shape has are refused.
TEST(ModelSourceTest, SyntheticLayersKeepTheFirstLayers) {
  ModelSourceOptions o;
  o.backend = "cuda";  // nothing materialised: the full Mixtral shape costs nothing here
  o.synthetic_layers = 4;
  auto m = OpenModel("synthetic:mixtral-8x7b", o);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->model->spec.num_layers, 4);
  EXPECT_EQ(m->model->spec.layer_is_moe.size(), 4u);
  EXPECT_EQ(m->model->weights.layers.size(), 4u);
  EXPECT_EQ(m->model->spec.hidden_size, 4096);
  EXPECT_EQ(m->model->spec.moe_intermediate_size, 14336);
  o.synthetic_layers = 33;
  auto too_many = OpenModel("synthetic:mixtral-8x7b", o);
  EXPECT_EQ(too_many.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_many.status().message().find("num_layers 33 outside [0, 32]"), std::string::npos) << too_many.status();
}

TEST(ModelSourceTest, BorrowedTokenizerMustFitTheVocabulary) {
  ModelSourceOptions o;
  o.tokenizer_dir = kFortune;  // 4096 ids
  absl::StatusOr<OpenedModel> small = OpenModel("synthetic:olmoe-1b-7b-small", o);  // vocab 512
  EXPECT_EQ(small.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(small.status().message().find("vocabulary (4096)"), std::string::npos) << small.status();
  o.backend = "cuda";  // full shape, weights left for the device: nothing large is generated here
  absl::StatusOr<OpenedModel> full = OpenModel("synthetic:olmoe-1b-7b", o);
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_EQ(full->tokenizer->vocab_size(), 4096);
  EXPECT_EQ(full->model->spec.vocab_size, 50304);
}

TEST(ModelSourceTest, ErrorsNameWhatIsWrong) {
  EXPECT_EQ(OpenModel("synthetic:nope", {}).status().code(), absl::StatusCode::kNotFound);
  ModelSourceOptions o;
  o.backend = "auto";
  EXPECT_EQ(OpenModel(kFortune, o).status().code(), absl::StatusCode::kInvalidArgument);
  o.backend = "cpu";
  o.tokenizer_dir = "/nonexistent";
  absl::StatusOr<OpenedModel> m = OpenModel(kFortune, o);
  EXPECT_FALSE(m.ok());
  EXPECT_NE(m.status().message().find("tokenizer /nonexistent"), std::string::npos) << m.status();
}

}  // namespace
}  // namespace moed
