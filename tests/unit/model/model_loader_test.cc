// Tests for LoadModel: real fixtures and fortune-moe load with the right values; rewritten checkpoints
// (f32 misaligned, fused experts, tied embeddings) load; broken ones are rejected with designed messages.
#include <cstdint>
#include <filesystem>
#include <string>

#include "engine/model/model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/model/model_test_util.h"

namespace moed {
namespace {

using ::moed::testing::BuildSafetensors;
using ::moed::testing::Bf16ToF32Bytes;
using ::moed::testing::CopyDir;
using ::moed::testing::FixtureDir;
using ::moed::testing::FortuneDir;
using ::moed::testing::RawTensor;
using ::moed::testing::ReadAll;
using ::moed::testing::ReadSafetensors;
using ::moed::testing::TempDir;
using ::moed::testing::WriteAll;
using ::testing::HasSubstr;

std::shared_ptr<const Model> MustLoad(const std::string& dir) {
  absl::StatusOr<std::shared_ptr<const Model>> m = LoadModel(dir);
  EXPECT_TRUE(m.ok()) << m.status();
  return m.ok() ? *m : nullptr;
}

std::string LoadError(const std::string& dir) {
  absl::StatusOr<std::shared_ptr<const Model>> m = LoadModel(dir);
  EXPECT_FALSE(m.ok()) << "loaded " << dir;
  return m.ok() ? "" : std::string(m.status().message());
}

// A copy of fixture `name` in `dir` whose tensors went through `edit`.
template <typename Edit>
void RewriteFixture(const std::string& name, const TempDir& dir, Edit edit, int misalign = 0) {
  CopyDir(FixtureDir(name), dir.path());
  std::vector<RawTensor> tensors = ReadSafetensors(FixtureDir(name) + "/model.safetensors");
  edit(tensors);
  WriteAll(dir.File("model.safetensors"), BuildSafetensors(tensors, misalign));
}

void Erase(std::vector<RawTensor>& ts, const std::string& name) {
  const size_t before = ts.size();
  std::erase_if(ts, [&](const RawTensor& t) { return t.name == name; });
  ASSERT_EQ(ts.size() + 1, before) << name;
}

// Every element of two views of equal shape compares equal as float.
void ExpectSameValues(const TensorView& a, const TensorView& b) {
  ASSERT_EQ(a.shape, b.shape) << a.name << " vs " << b.name;
  for (int64_t i = 0; i < a.numel(); ++i) {
    ASSERT_EQ(a.at(i), b.at(i)) << a.name << " vs " << b.name << " at " << i;
  }
}

TEST(LoadModelTest, TinyMixtral) {
  auto m = MustLoad(FixtureDir("tiny-mixtral"));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->source, FixtureDir("tiny-mixtral"));
  ASSERT_EQ(m->weights.layers.size(), 2u);
  const LayerWeights& l0 = m->weights.layers[0];
  EXPECT_EQ(l0.q_proj.name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(l0.q_proj.dtype, DType::kBF16);
  EXPECT_EQ(l0.q_proj.shape, (std::vector<int64_t>{64, 64}));
  // Values read from the file with Python's struct module.
  EXPECT_EQ(l0.q_proj.at(0), 0.10595703125f);
  EXPECT_EQ(l0.q_proj.at(64 * 64 - 1), -0.0830078125f);
  EXPECT_EQ(m->weights.embed.at(5 * 64 + 3), -0.12890625f);
  const LayerWeights& l1 = m->weights.layers[1];
  ASSERT_EQ(l1.experts.size(), 8u);
  EXPECT_EQ(l1.experts[7].down.name, "model.layers.1.block_sparse_moe.experts.7.w2.weight");
  EXPECT_EQ(l1.experts[7].down.shape, (std::vector<int64_t>{64, 128}));
  EXPECT_EQ(l1.experts[7].down.at(100), -0.0054931640625f);
  EXPECT_EQ(l1.experts[7].gate.name, "model.layers.1.block_sparse_moe.experts.7.w1.weight");
  EXPECT_EQ(l1.experts[7].up.name, "model.layers.1.block_sparse_moe.experts.7.w3.weight");
  EXPECT_EQ(l1.router.shape, (std::vector<int64_t>{8, 64}));
  EXPECT_FALSE(l1.q_bias.present());
  EXPECT_FALSE(l1.q_norm.present());
  EXPECT_FALSE(l1.shared_expert.gate.present());
  EXPECT_TRUE(m->weights.lm_head.present());
  EXPECT_NE(m->weights.lm_head.data, m->weights.embed.data);
  EXPECT_FALSE(m->storage.empty());
}

TEST(LoadModelTest, TinyQwen2Moe) {
  auto m = MustLoad(FixtureDir("tiny-qwen2-moe"));
  ASSERT_NE(m, nullptr);
  const LayerWeights& l1 = m->weights.layers[1];
  ASSERT_EQ(l1.experts.size(), 16u);
  EXPECT_EQ(l1.experts[15].up.at(7), 0.0947265625f);
  EXPECT_EQ(l1.shared_expert_gate.shape, (std::vector<int64_t>{1, 64}));
  EXPECT_EQ(l1.shared_expert_gate.at(63), 0.10888671875f);
  EXPECT_EQ(l1.shared_expert.gate.shape, (std::vector<int64_t>{96, 64}));
  EXPECT_EQ(l1.shared_expert.down.shape, (std::vector<int64_t>{64, 96}));
  EXPECT_EQ(l1.q_bias.shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(l1.k_bias.shape, (std::vector<int64_t>{32}));
  EXPECT_TRUE(l1.v_bias.present());
}

TEST(LoadModelTest, TinyQwen3Moe) {
  auto m = MustLoad(FixtureDir("tiny-qwen3-moe"));
  ASSERT_NE(m, nullptr);
  const LayerWeights& l1 = m->weights.layers[1];
  ASSERT_EQ(l1.experts.size(), 32u);
  EXPECT_EQ(l1.experts[31].down.at(2047), -0.08154296875f);
  EXPECT_EQ(l1.q_norm.shape, (std::vector<int64_t>{16}));
  EXPECT_EQ(l1.k_norm.shape, (std::vector<int64_t>{16}));
  EXPECT_FALSE(l1.q_bias.present());
}

TEST(LoadModelTest, TinyOlmoe) {
  auto m = MustLoad(FixtureDir("tiny-olmoe"));
  ASSERT_NE(m, nullptr);
  const LayerWeights& l = m->weights.layers[1];
  EXPECT_EQ(l.router.at(1000), 0.1572265625f);
  EXPECT_EQ(m->weights.layers[0].q_norm.shape, (std::vector<int64_t>{64}));
  EXPECT_EQ(m->weights.layers[0].k_norm.shape, (std::vector<int64_t>{32}));
}

TEST(LoadModelTest, FortuneMoeFromTwoShards) {
  auto m = MustLoad(FortuneDir());
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(m->weights.layers.size(), 4u);
  EXPECT_EQ(m->weights.final_norm.at(0), 2.0f);                              // shard 2
  EXPECT_EQ(m->weights.layers[3].experts[7].down.at(12345), -0.059326171875f);  // shard 2
  EXPECT_EQ(m->weights.lm_head.at(4095 * 128 + 127), -0.043212890625f);      // shard 1
  EXPECT_EQ(m->weights.lm_head.shape, (std::vector<int64_t>{4096, 128}));
  EXPECT_GE(m->storage.size(), 2u);
}

TEST(LoadModelTest, TiedEmbeddingsWithoutLmHead) {
  TempDir dir;
  RewriteFixture("tiny-mixtral", dir, [](std::vector<RawTensor>& ts) { Erase(ts, "lm_head.weight"); });
  EXPECT_THAT(LoadError(dir.path()),
              HasSubstr(dir.File("model.safetensors") + ": tensor 'lm_head.weight' is missing (expected shape [1024, 64])"));
  nlohmann::json cfg = nlohmann::json::parse(ReadAll(dir.File("config.json")));
  cfg["tie_word_embeddings"] = true;
  WriteAll(dir.File("config.json"), cfg.dump());
  auto m = MustLoad(dir.path());
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->weights.lm_head.data, m->weights.embed.data);
}

// All tensors as F32 behind a header whose length leaves the data section 2 bytes off alignment:
// the loader must copy them into aligned storage and read the same values as the bf16 original.
TEST(LoadModelTest, MisalignedF32IsCopiedAligned) {
  TempDir dir;
  RewriteFixture(
      "tiny-mixtral", dir,
      [](std::vector<RawTensor>& ts) {
        for (RawTensor& t : ts) {
          t.dtype = "F32";
          t.bytes = Bf16ToF32Bytes(t.bytes);
        }
      },
      /*misalign=*/2);
  auto m = MustLoad(dir.path());
  auto ref = MustLoad(FixtureDir("tiny-mixtral"));
  ASSERT_NE(m, nullptr);
  ASSERT_NE(ref, nullptr);
  EXPECT_EQ(m->weights.embed.dtype, DType::kF32);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(m->weights.embed.data) % 4, 0u);
  // The mapping plus one aligned copy per bound tensor: embed, norm, lm_head, and per layer
  // 2 norms + 4 attention projections + router + 8 experts × 3.
  EXPECT_EQ(m->storage.size(), 1u + 3u + 2u * (2 + 4 + 1 + 24));
  ExpectSameValues(m->weights.embed, ref->weights.embed);
  for (size_t l = 0; l < 2; ++l) {
    const LayerWeights& a = m->weights.layers[l];
    const LayerWeights& b = ref->weights.layers[l];
    EXPECT_EQ(reinterpret_cast<uintptr_t>(a.o_proj.data) % 4, 0u);
    ExpectSameValues(a.q_proj, b.q_proj);
    ExpectSameValues(a.router, b.router);
    ExpectSameValues(a.experts[3].down, b.experts[3].down);
  }
}

// The fused transformers-5 expert layout: gate_up_proj (E, 2*ffn, hidden), down_proj (E, hidden, ffn).
TEST(LoadModelTest, FusedExpertsMatchPerExpertTensors) {
  TempDir dir;
  RewriteFixture("tiny-olmoe", dir, [](std::vector<RawTensor>& ts) {
    for (int l = 0; l < 2; ++l) {
      const std::string p = "model.layers." + std::to_string(l) + ".mlp.experts.";
      RawTensor gate_up{p + "gate_up_proj", "BF16", {16, 64, 64}, ""};
      RawTensor down{p + "down_proj", "BF16", {16, 64, 32}, ""};
      for (int e = 0; e < 16; ++e) {
        const std::string q = p + std::to_string(e) + ".";
        auto take = [&](const std::string& n) {
          auto it = std::find_if(ts.begin(), ts.end(), [&](const RawTensor& t) { return t.name == n; });
          std::string bytes = it->bytes;
          ts.erase(it);
          return bytes;
        };
        gate_up.bytes += take(q + "gate_proj.weight");
        gate_up.bytes += take(q + "up_proj.weight");
        down.bytes += take(q + "down_proj.weight");
      }
      ts.push_back(gate_up);
      ts.push_back(down);
    }
  });
  auto m = MustLoad(dir.path());
  auto ref = MustLoad(FixtureDir("tiny-olmoe"));
  ASSERT_NE(m, nullptr);
  ASSERT_NE(ref, nullptr);
  for (int l = 0; l < 2; ++l) {
    for (int e = 0; e < 16; ++e) {
      ExpectSameValues(m->weights.layers[l].experts[e].gate, ref->weights.layers[l].experts[e].gate);
      ExpectSameValues(m->weights.layers[l].experts[e].up, ref->weights.layers[l].experts[e].up);
      ExpectSameValues(m->weights.layers[l].experts[e].down, ref->weights.layers[l].experts[e].down);
    }
  }
  EXPECT_EQ(m->weights.layers[1].experts[2].up.name, "model.layers.1.mlp.experts.gate_up_proj[2].up");
}

TEST(LoadModelTest, ExtraTensorsAreIgnored) {
  TempDir dir;
  RewriteFixture("tiny-qwen3-moe", dir, [](std::vector<RawTensor>& ts) {
    ts.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", "F32", {8}, std::string(32, '\0')});
  });
  EXPECT_NE(MustLoad(dir.path()), nullptr);
}

TEST(LoadModelErrorTest, MissingTensor) {
  TempDir dir;
  RewriteFixture("tiny-qwen2-moe", dir,
                 [](std::vector<RawTensor>& ts) { Erase(ts, "model.layers.1.mlp.experts.3.up_proj.weight"); });
  EXPECT_THAT(LoadError(dir.path()),
              HasSubstr(dir.File("model.safetensors") +
                        ": tensor 'model.layers.1.mlp.experts.3.up_proj.weight' is missing (expected shape [32, 64])"));
}

TEST(LoadModelErrorTest, MissingSharedExpertGateAndBias) {
  TempDir dir;
  RewriteFixture("tiny-qwen2-moe", dir,
                 [](std::vector<RawTensor>& ts) { Erase(ts, "model.layers.0.mlp.shared_expert_gate.weight"); });
  EXPECT_THAT(LoadError(dir.path()),
              HasSubstr("tensor 'model.layers.0.mlp.shared_expert_gate.weight' is missing (expected shape [1, 64])"));
  TempDir dir2;
  RewriteFixture("tiny-qwen2-moe", dir2,
                 [](std::vector<RawTensor>& ts) { Erase(ts, "model.layers.1.self_attn.v_proj.bias"); });
  EXPECT_THAT(LoadError(dir2.path()),
              HasSubstr("tensor 'model.layers.1.self_attn.v_proj.bias' is missing (expected shape [32])"));
}

TEST(LoadModelErrorTest, WrongShape) {
  TempDir dir;
  RewriteFixture("tiny-mixtral", dir, [](std::vector<RawTensor>& ts) {
    for (RawTensor& t : ts) {
      if (t.name != "model.layers.0.self_attn.q_proj.weight") continue;
      t.shape = {64, 32};
      t.bytes.resize(64 * 32 * 2);
    }
  });
  EXPECT_THAT(LoadError(dir.path()),
              HasSubstr(dir.File("model.safetensors") +
                        ": tensor 'model.layers.0.self_attn.q_proj.weight': expected shape [64, 64], found [64, 32]"));
}

TEST(LoadModelErrorTest, WrongDtypeInCheckpoint) {
  TempDir dir;
  RewriteFixture("tiny-olmoe", dir, [](std::vector<RawTensor>& ts) { ts[3].dtype = "I16"; });
  EXPECT_THAT(LoadError(dir.path()), HasSubstr("unsupported dtype 'I16' (supported: BF16, F16, F32)"));
}

TEST(LoadModelErrorTest, BadConfigIsReportedFirst) {
  TempDir dir;
  CopyDir(FixtureDir("tiny-olmoe"), dir.path());
  WriteAll(dir.File("config.json"), "{\"model_type\": \"olmoe\"}");
  EXPECT_THAT(LoadError(dir.path()), HasSubstr(dir.File("config.json") + ": field 'vocab_size' is missing"));
}

TEST(LoadModelErrorTest, NoWeightFiles) {
  TempDir dir;
  std::filesystem::copy_file(FixtureDir("tiny-olmoe") + "/config.json", dir.File("config.json"));
  EXPECT_THAT(LoadError(dir.path()),
              HasSubstr(dir.path() + ": no model.safetensors or model.safetensors.index.json found"));
}

class ShardedErrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    CopyDir(FortuneDir(), dir_.path());
    index_ = nlohmann::json::parse(ReadAll(dir_.File("model.safetensors.index.json")));
  }
  void WriteIndex() { WriteAll(dir_.File("model.safetensors.index.json"), index_.dump(2)); }

  TempDir dir_;
  nlohmann::json index_;
};

TEST_F(ShardedErrorTest, CopyLoads) { EXPECT_NE(MustLoad(dir_.path()), nullptr); }

TEST_F(ShardedErrorTest, MissingShard) {
  std::filesystem::remove(dir_.File("model-00002-of-00002.safetensors"));
  EXPECT_THAT(LoadError(dir_.path()),
              HasSubstr(dir_.File("model.safetensors.index.json") + ": shard 'model-00002-of-00002.safetensors' "
                                                                    "(listed for tensor '"));
  EXPECT_THAT(LoadError(dir_.path()), HasSubstr("not found at " + dir_.File("model-00002-of-00002.safetensors")));
}

TEST_F(ShardedErrorTest, IndexNamesTensorAbsentFromShard) {
  index_["weight_map"]["model.layers.0.self_attn.q_norm.weight"] = "model-00001-of-00002.safetensors";
  WriteIndex();
  EXPECT_THAT(LoadError(dir_.path()),
              HasSubstr(dir_.File("model.safetensors.index.json") +
                        ": tensor 'model.layers.0.self_attn.q_norm.weight' is listed in shard "
                        "'model-00001-of-00002.safetensors' but absent from " +
                        dir_.File("model-00001-of-00002.safetensors")));
}

TEST_F(ShardedErrorTest, TensorMissingFromIndex) {
  index_["weight_map"].erase("model.layers.2.block_sparse_moe.experts.5.w3.weight");
  WriteIndex();
  EXPECT_THAT(LoadError(dir_.path()),
              HasSubstr(dir_.File("model.safetensors.index.json") +
                        ": tensor 'model.layers.2.block_sparse_moe.experts.5.w3.weight' is missing (expected shape "
                        "[256, 128])"));
}

TEST_F(ShardedErrorTest, MalformedIndex) {
  WriteAll(dir_.File("model.safetensors.index.json"), "{\"weight_map\": [");
  EXPECT_THAT(LoadError(dir_.path()), HasSubstr("model.safetensors.index.json: invalid JSON"));
  index_["weight_map"] = {1, 2};
  WriteIndex();
  EXPECT_THAT(LoadError(dir_.path()), HasSubstr(": field 'weight_map' must be an object"));
  index_ = nlohmann::json::parse(ReadAll(FortuneDir() + "/model.safetensors.index.json"));
  index_["weight_map"]["lm_head.weight"] = "../model-00001-of-00002.safetensors";
  WriteIndex();
  EXPECT_THAT(LoadError(dir_.path()), HasSubstr("which is not a path inside the checkpoint directory"));
  index_["weight_map"]["lm_head.weight"] = 7;
  WriteIndex();
  EXPECT_THAT(LoadError(dir_.path()), HasSubstr("weight_map entry for tensor 'lm_head.weight' must be a shard file name"));
}

TEST_F(ShardedErrorTest, CorruptShardNamesTheShard) {
  const std::string shard = dir_.File("model-00002-of-00002.safetensors");
  std::string bytes = ReadAll(shard);
  WriteAll(shard, bytes.substr(0, bytes.size() / 2));
  EXPECT_THAT(LoadError(dir_.path()), HasSubstr(shard + ": tensor '"));
  EXPECT_THAT(LoadError(dir_.path()), HasSubstr("outside data section"));
}

}  // namespace
}  // namespace moed
