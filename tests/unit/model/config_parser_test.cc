// Tests for ParseModelConfig / LoadModelSpec: the four fixtures, fortune-moe, classic spellings, every error class.
#include <cmath>
#include <string>

#include "engine/model/model_spec.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/model/model_test_util.h"

namespace moed {
namespace {

using ::moed::testing::FixtureDir;
using ::moed::testing::FortuneDir;
using ::moed::testing::ReadAll;
using ::moed::testing::TempDir;
using ::moed::testing::WriteAll;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

nlohmann::json FixtureConfig(const std::string& name) {
  return nlohmann::json::parse(ReadAll(FixtureDir(name) + "/config.json"));
}

absl::StatusOr<ModelSpec> Parse(const nlohmann::json& j) { return ParseModelConfig(j.dump(), "models/x/config.json"); }

// Expects `j` to be rejected with `code` and a message containing `needle`.
void ExpectError(const nlohmann::json& j, absl::StatusCode code, const std::string& needle) {
  absl::StatusOr<ModelSpec> spec = Parse(j);
  ASSERT_FALSE(spec.ok()) << "accepted: " << j.dump();
  EXPECT_EQ(spec.status().code(), code) << spec.status();
  EXPECT_THAT(std::string(spec.status().message()), HasSubstr(needle));
}

TEST(ModelConfigTest, TinyMixtral) {
  absl::StatusOr<ModelSpec> s = LoadModelSpec(FixtureDir("tiny-mixtral"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->family, Family::kMixtral);
  EXPECT_EQ(FamilyName(s->family), "mixtral");
  EXPECT_EQ(s->vocab_size, 1024);
  EXPECT_EQ(s->hidden_size, 64);
  EXPECT_EQ(s->num_layers, 2);
  EXPECT_EQ(s->attention.num_heads, 4);
  EXPECT_EQ(s->attention.num_kv_heads, 2);
  EXPECT_EQ(s->attention.head_dim, 16);  // head_dim: null → hidden / heads
  EXPECT_EQ(s->max_position_embeddings, 512);
  EXPECT_FLOAT_EQ(s->rms_norm_eps, 1e-5f);
  EXPECT_FLOAT_EQ(s->attention.rope.theta, 1e6f);
  EXPECT_EQ(s->attention.sliding_window, 0);
  EXPECT_EQ(s->num_experts, 8);
  EXPECT_EQ(s->top_k, 2);
  EXPECT_TRUE(s->router.norm_topk_prob);
  EXPECT_EQ(s->moe_intermediate_size, 128);
  EXPECT_EQ(s->shared_experts.count, 0);
  EXPECT_THAT(s->layer_is_moe, ElementsAre(true, true));
  EXPECT_FALSE(s->attention.qkv_bias);
  EXPECT_EQ(s->attention.qk_norm, QkNorm::kNone);
  EXPECT_FALSE(s->tie_word_embeddings);
  EXPECT_EQ(s->bos_token_id, 1);
  EXPECT_THAT(s->eos_token_ids, ElementsAre(2));
  EXPECT_EQ(s->attention.q_dim(), 64);
  EXPECT_EQ(s->attention.kv_dim(), 32);
}

TEST(ModelConfigTest, TinyQwen2Moe) {
  absl::StatusOr<ModelSpec> s = LoadModelSpec(FixtureDir("tiny-qwen2-moe"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->family, Family::kQwen2Moe);
  EXPECT_EQ(s->num_experts, 16);
  EXPECT_EQ(s->top_k, 4);
  EXPECT_FALSE(s->router.norm_topk_prob);
  EXPECT_EQ(s->moe_intermediate_size, 32);
  EXPECT_EQ(s->dense_intermediate_size, 128);
  EXPECT_EQ(s->shared_experts.intermediate_size, 96);
  EXPECT_TRUE(s->attention.qkv_bias);
  EXPECT_EQ(s->attention.qk_norm, QkNorm::kNone);
  EXPECT_EQ(s->attention.head_dim, 16);
  EXPECT_FLOAT_EQ(s->attention.rope.theta, 1e6f);
  EXPECT_EQ(s->attention.sliding_window, 0);
  EXPECT_THAT(s->layer_is_moe, ElementsAre(true, true));
  EXPECT_FALSE(s->bos_token_id.has_value());
  EXPECT_THAT(s->eos_token_ids, ElementsAre(0));
}

TEST(ModelConfigTest, TinyQwen3Moe) {
  absl::StatusOr<ModelSpec> s = LoadModelSpec(FixtureDir("tiny-qwen3-moe"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->family, Family::kQwen3Moe);
  EXPECT_EQ(s->num_experts, 32);  // spelled num_local_experts in this transformers-5 config
  EXPECT_EQ(s->top_k, 4);
  EXPECT_TRUE(s->router.norm_topk_prob);
  EXPECT_EQ(s->attention.head_dim, 16);
  EXPECT_EQ(s->attention.qk_norm, QkNorm::kPerHead);
  EXPECT_FALSE(s->attention.qkv_bias);
  EXPECT_EQ(s->moe_intermediate_size, 32);
  EXPECT_EQ(s->shared_experts.count, 0);
}

TEST(ModelConfigTest, TinyOlmoe) {
  absl::StatusOr<ModelSpec> s = LoadModelSpec(FixtureDir("tiny-olmoe"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->family, Family::kOlmoe);
  EXPECT_EQ(s->num_experts, 16);
  EXPECT_EQ(s->top_k, 4);
  EXPECT_FALSE(s->router.norm_topk_prob);
  EXPECT_EQ(s->moe_intermediate_size, 32);
  EXPECT_EQ(s->attention.qk_norm, QkNorm::kFull);
  EXPECT_FLOAT_EQ(s->attention.rope.theta, 1e4f);
  EXPECT_THAT(s->layer_is_moe, ElementsAre(true, true));
  EXPECT_FALSE(s->bos_token_id.has_value());
  EXPECT_THAT(s->eos_token_ids, ElementsAre(0));
}

TEST(ModelConfigTest, FortuneMoe) {
  absl::StatusOr<ModelSpec> s = LoadModelSpec(FortuneDir());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->family, Family::kMixtral);
  EXPECT_EQ(s->vocab_size, 4096);
  EXPECT_EQ(s->hidden_size, 128);
  EXPECT_EQ(s->num_layers, 4);
  EXPECT_EQ(s->attention.head_dim, 32);
  EXPECT_EQ(s->num_experts, 8);
  EXPECT_EQ(s->moe_intermediate_size, 256);
  EXPECT_EQ(s->max_position_embeddings, 1024);
}

// Classic hub spelling: top-level rope_theta, num_experts, no head_dim, rope_scaling null.
TEST(ModelConfigTest, ClassicSpellingFromFile) {
  nlohmann::json j = FixtureConfig("tiny-qwen3-moe");
  j.erase("rope_parameters");
  j.erase("num_local_experts");
  j.erase("head_dim");
  j["rope_theta"] = 5000.0;
  j["num_experts"] = 32;
  j["rope_scaling"] = nullptr;
  TempDir dir;
  WriteAll(dir.File("config.json"), j.dump(2));
  absl::StatusOr<ModelSpec> s = LoadModelSpec(dir.path());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FLOAT_EQ(s->attention.rope.theta, 5000.0f);
  EXPECT_EQ(s->num_experts, 32);
  EXPECT_EQ(s->attention.head_dim, 16);  // 64 / 4
}

TEST(ModelConfigTest, ClassicMixtralAndIntegerTheta) {
  nlohmann::json j = FixtureConfig("tiny-mixtral");
  j.erase("rope_parameters");
  j.erase("head_dim");
  j["rope_theta"] = 1000000;  // an integer is a fine number
  j["sliding_window"] = 4096;
  j["eos_token_id"] = {2, 7};
  j["bos_token_id"] = nullptr;
  j["tie_word_embeddings"] = true;
  absl::StatusOr<ModelSpec> s = Parse(j);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FLOAT_EQ(s->attention.rope.theta, 1e6f);
  EXPECT_EQ(s->attention.sliding_window, 4096);
  EXPECT_THAT(s->eos_token_ids, ElementsAre(2, 7));
  EXPECT_FALSE(s->bos_token_id.has_value());
  EXPECT_TRUE(s->tie_word_embeddings);
}

TEST(ModelConfigTest, MixtralAlwaysRenormalises) {
  nlohmann::json j = FixtureConfig("tiny-mixtral");
  j["norm_topk_prob"] = false;
  absl::StatusOr<ModelSpec> s = Parse(j);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->router.norm_topk_prob);
}

TEST(ModelConfigTest, NullEosGivesNoIds) {
  nlohmann::json j = FixtureConfig("tiny-olmoe");
  j["eos_token_id"] = nullptr;
  absl::StatusOr<ModelSpec> s = Parse(j);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->eos_token_ids.empty());
}

TEST(ModelConfigTest, SparseStepAndMlpOnlyLayers) {
  nlohmann::json j = FixtureConfig("tiny-qwen2-moe");
  j["num_hidden_layers"] = 6;
  j["decoder_sparse_step"] = 2;
  j["mlp_only_layers"] = {3};
  absl::StatusOr<ModelSpec> s = Parse(j);
  ASSERT_TRUE(s.ok()) << s.status();
  // MoE iff not mlp-only and (l+1) % 2 == 0: layers 1 and 5 (3 is mlp-only).
  EXPECT_THAT(s->layer_is_moe, ElementsAre(false, true, false, false, false, true));
  EXPECT_EQ(s->dense_intermediate_size, 128);
}

TEST(ModelConfigTest, DefaultsWhenOptionalFieldsAbsent) {
  nlohmann::json j = FixtureConfig("tiny-qwen3-moe");
  for (const char* k : {"rope_parameters", "norm_topk_prob", "rms_norm_eps", "num_key_value_heads",
                        "decoder_sparse_step", "mlp_only_layers", "attention_bias", "tie_word_embeddings"}) {
    j.erase(k);
  }
  absl::StatusOr<ModelSpec> s = Parse(j);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_FALSE(s->router.norm_topk_prob);  // transformers' default for qwen3_moe
  EXPECT_FLOAT_EQ(s->attention.rope.theta, 1e4f);
  EXPECT_FLOAT_EQ(s->rms_norm_eps, 1e-6f);
  EXPECT_EQ(s->attention.num_kv_heads, 4);
  EXPECT_FALSE(s->tie_word_embeddings);
}

TEST(ModelConfigErrorTest, MissingFieldNamesFieldAndFile) {
  nlohmann::json j = FixtureConfig("tiny-mixtral");
  j.erase("hidden_size");
  ExpectError(j, absl::StatusCode::kInvalidArgument, "models/x/config.json: field 'hidden_size' is missing");
  j = FixtureConfig("tiny-olmoe");
  j.erase("num_experts");
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'num_experts' is missing");
  j = FixtureConfig("tiny-qwen2-moe");
  j.erase("shared_expert_intermediate_size");
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'shared_expert_intermediate_size' is missing");
}

TEST(ModelConfigErrorTest, WrongTypes) {
  nlohmann::json j = FixtureConfig("tiny-mixtral");
  j["hidden_size"] = "64";
  ExpectError(j, absl::StatusCode::kInvalidArgument, "config.json: field 'hidden_size' must be an integer");
  j = FixtureConfig("tiny-mixtral");
  j["num_hidden_layers"] = 2.5;
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'num_hidden_layers' must be an integer");
  j = FixtureConfig("tiny-mixtral");
  j["tie_word_embeddings"] = "no";
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'tie_word_embeddings' must be a boolean");
  j = FixtureConfig("tiny-mixtral");
  j["rope_parameters"]["rope_theta"] = "big";
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'rope_parameters.rope_theta' must be a number");
  j = FixtureConfig("tiny-mixtral");
  j["eos_token_id"] = {2, "x"};
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'eos_token_id' must be a list of integers");
  j = FixtureConfig("tiny-qwen2-moe");
  j["mlp_only_layers"] = 1;
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'mlp_only_layers' must be a list of integers");
}

TEST(ModelConfigErrorTest, UnknownModelTypeListsSupported) {
  nlohmann::json j = FixtureConfig("tiny-mixtral");
  j["model_type"] = "llama";
  ExpectError(j, absl::StatusCode::kUnimplemented,
              "field 'model_type' is 'llama', not one of the supported types: mixtral, qwen2_moe, qwen3_moe, olmoe");
}

TEST(ModelConfigErrorTest, InvalidJsonAndNonObject) {
  absl::StatusOr<ModelSpec> s = ParseModelConfig("{\"hidden_size\": ", "a/config.json");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("a/config.json: invalid JSON"));
  s = ParseModelConfig("[1, 2]", "a/config.json");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("a/config.json: top level must be a JSON object"));
}

TEST(ModelConfigErrorTest, MissingFileIsNotFound) {
  TempDir dir;
  absl::StatusOr<ModelSpec> s = LoadModelSpec(dir.path());
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.status().message()), HasSubstr(dir.path() + "/config.json: cannot open"));
}

TEST(ModelConfigErrorTest, UnsupportedRope) {
  nlohmann::json j = FixtureConfig("tiny-mixtral");
  j["rope_parameters"]["rope_type"] = "longrope";
  ExpectError(j, absl::StatusCode::kUnimplemented, "field 'rope_parameters.rope_type' is 'longrope'");
  j = FixtureConfig("tiny-qwen2-moe");
  j["rope_scaling"] = {{"type", "llama3"}, {"factor", 2.0}};
  ExpectError(j, absl::StatusCode::kUnimplemented, "field 'rope_scaling.type' is 'llama3'");
  j = FixtureConfig("tiny-qwen2-moe");
  j["rope_scaling"] = {{"type", "linear"}};
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'rope_scaling.factor' is missing");
  j = FixtureConfig("tiny-qwen2-moe");
  j["rope_scaling"] = {{"rope_type", "default"}};
  EXPECT_TRUE(Parse(j).ok());
}

// RoPE scaling in both spellings: transformers 5's rope_parameters and the hub's rope_theta + rope_scaling.
TEST(ModelConfigTest, RopeScalingSpellings) {
  nlohmann::json j = FixtureConfig("tiny-mixtral");
  j["rope_parameters"] = {{"rope_type", "yarn"}, {"rope_theta", 5e5}, {"factor", 4.0},
                          {"original_max_position_embeddings", 128}, {"mscale", 0.707}, {"mscale_all_dim", 0.707}};
  absl::StatusOr<ModelSpec> a = Parse(j);
  ASSERT_TRUE(a.ok()) << a.status();
  j.erase("rope_parameters");
  j["rope_theta"] = 5e5;
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 128},
                       {"mscale", 0.707}, {"mscale_all_dim", 0.707}, {"beta_fast", 32}, {"beta_slow", 1}};
  absl::StatusOr<ModelSpec> b = Parse(j);
  ASSERT_TRUE(b.ok()) << b.status();
  for (const ModelSpec* s : {&*a, &*b}) {
    const RopeSpec& r = s->attention.rope;
    EXPECT_EQ(r.type, RopeType::kYarn);
    EXPECT_FLOAT_EQ(r.theta, 5e5f);
    EXPECT_FLOAT_EQ(r.factor, 4.0f);
    EXPECT_EQ(r.original_max_position, 128);
    EXPECT_FLOAT_EQ(r.beta_fast, 32.0f);
    EXPECT_FLOAT_EQ(r.attention_factor, 1.0f);  // mscale == mscale_all_dim
    EXPECT_EQ(r.dim, 16);
  }
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};  // attention factor 0.1 ln(4) + 1
  absl::StatusOr<ModelSpec> c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NEAR(c->attention.rope.attention_factor, 0.1 * std::log(4.0) + 1, 1e-6);
  EXPECT_EQ(c->attention.rope.original_max_position, c->max_position_embeddings);
  j["rope_scaling"] = {{"type", "linear"}, {"factor", 2.0}};
  absl::StatusOr<ModelSpec> d = Parse(j);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->attention.rope.type, RopeType::kLinear);
}

TEST(ModelConfigErrorTest, UnsupportedFeatures) {
  nlohmann::json j = FixtureConfig("tiny-olmoe");
  j["clip_qkv"] = 8.0;
  ExpectError(j, absl::StatusCode::kUnimplemented, "field 'clip_qkv' is 8.0: clipping q/k/v is not supported");
  j = FixtureConfig("tiny-qwen3-moe");
  j["attention_bias"] = true;
  ExpectError(j, absl::StatusCode::kUnimplemented, "field 'attention_bias' is true");
  j = FixtureConfig("tiny-qwen3-moe");
  j["use_sliding_window"] = true;
  ExpectError(j, absl::StatusCode::kUnimplemented, "field 'use_sliding_window' is true");
  j = FixtureConfig("tiny-mixtral");
  j["hidden_act"] = "gelu";
  ExpectError(j, absl::StatusCode::kUnimplemented, "field 'hidden_act' is 'gelu'");
}

TEST(ModelConfigErrorTest, ValidationOfValues) {
  nlohmann::json j = FixtureConfig("tiny-mixtral");
  j["hidden_size"] = 0;
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'hidden_size' must be positive, found 0");
  j = FixtureConfig("tiny-mixtral");
  j["num_key_value_heads"] = 3;
  ExpectError(j, absl::StatusCode::kInvalidArgument,
              "field 'num_attention_heads' (4) must be a multiple of num_key_value_heads (3)");
  j = FixtureConfig("tiny-mixtral");
  j["num_experts_per_tok"] = 9;
  ExpectError(j, absl::StatusCode::kInvalidArgument,
              "field 'num_experts_per_tok' (9) must not exceed the number of experts (8)");
  j = FixtureConfig("tiny-mixtral");
  j["num_experts_per_tok"] = 0;
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'num_experts_per_tok' must be positive");
  j = FixtureConfig("tiny-mixtral");
  j["num_attention_heads"] = 5;
  j["num_key_value_heads"] = 5;
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'hidden_size' (64) must be a multiple of num_attention_heads (5)");
  j = FixtureConfig("tiny-qwen2-moe");
  j["mlp_only_layers"] = {2};
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'mlp_only_layers' names layer 2, outside [0, 2)");
  j = FixtureConfig("tiny-qwen2-moe");
  j["decoder_sparse_step"] = 0;
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'decoder_sparse_step' must be positive");
  j = FixtureConfig("tiny-qwen3-moe");
  j["num_experts"] = 16;  // disagrees with num_local_experts = 32
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'num_experts' is 16 but 'num_local_experts' is 32");
  j = FixtureConfig("tiny-mixtral");
  j["eos_token_id"] = -1;
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'eos_token_id' holds token id -1");
  j = FixtureConfig("tiny-mixtral");
  j["rms_norm_eps"] = 0;
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'rms_norm_eps' must be in (0, 1)");
  j = FixtureConfig("tiny-mixtral");
  j["vocab_size"] = 1ull << 40;
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'vocab_size' is 1099511627776, above the supported maximum");
  j = FixtureConfig("tiny-qwen3-moe");
  j["head_dim"] = 15;
  ExpectError(j, absl::StatusCode::kInvalidArgument, "RoPE needs an even head_dim");
}

}  // namespace
}  // namespace moed
