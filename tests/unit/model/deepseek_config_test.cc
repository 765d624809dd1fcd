// DeepSeek-V2-Lite / V2 / V3: config parsing in both spellings (MLA shape, routing kinds, dense/MoE pattern, YaRN and
// the softmax scale), the hub tensor names bound by the loader, and the named refusals (FP8, unsupported routing).
#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <utility>

#include "engine/model/model.h"
#include "engine/model/model_spec.h"
#include "engine/model/synthetic_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/unit/model/model_test_util.h"

namespace moed {
namespace {

using ::moed::testing::BuildSafetensors;
using ::moed::testing::CopyDir;
using ::moed::testing::FixtureDir;
using ::moed::testing::RawTensor;
using ::moed::testing::ReadAll;
using ::moed::testing::ReadSafetensors;
using ::moed::testing::TempDir;
using ::moed::testing::WriteAll;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

nlohmann::json Config(const std::string& fixture) {
  return nlohmann::json::parse(ReadAll(FixtureDir(fixture) + "/config.json"));
}

absl::StatusOr<ModelSpec> Parse(const nlohmann::json& j) { return ParseModelConfig(j.dump(), "ds/config.json"); }

void ExpectError(const nlohmann::json& j, absl::StatusCode code, const std::string& needle) {
  absl::StatusOr<ModelSpec> s = Parse(j);
  ASSERT_FALSE(s.ok()) << "accepted: " << j.dump();
  EXPECT_EQ(s.status().code(), code) << s.status();
  EXPECT_THAT(std::string(s.status().message()), HasSubstr(needle));
}

double Mscale(double factor, double m) { return factor <= 1 ? 1.0 : 0.1 * m * std::log(factor) + 1.0; }

TEST(DeepseekConfigTest, V2LiteIsMlaWithoutQLoraGreedySoftmax) {
  absl::StatusOr<ModelSpec> s = LoadModelSpec(FixtureDir("tiny-deepseek-v2-lite"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->family, Family::kDeepseekV2);
  const AttentionSpec& a = s->attention;
  EXPECT_EQ(a.kind, AttentionKind::kMla);
  EXPECT_EQ(a.num_heads, 4);
  EXPECT_EQ(a.q_lora_rank, 0);  // null: q_proj directly
  EXPECT_EQ(a.kv_lora_rank, 32);
  EXPECT_EQ(a.qk_head_dim, 32);
  EXPECT_EQ(a.nope_dim(), 16);
  EXPECT_EQ(a.rope.dim, 16);
  EXPECT_EQ(a.v_head_dim, 24);
  EXPECT_TRUE(a.rope.interleave);  // V2 rotates (2i, 2i+1) pairs
  EXPECT_EQ(a.rope.type, RopeType::kDefault);
  EXPECT_FLOAT_EQ(a.softmax_scale, 1.0f / std::sqrt(32.0f));
  EXPECT_EQ(a.kv_cache_width(), 32 + 16);  // the latent and the rope key, not heads × (k + v)
  EXPECT_EQ(s->router.scoring, RouterScoring::kSoftmax);
  EXPECT_EQ(s->router.method, TopKMethod::kGreedy);
  EXPECT_FALSE(s->router.selection_bias);
  EXPECT_EQ(s->num_experts, 16);
  EXPECT_EQ(s->top_k, 4);
  EXPECT_EQ(s->shared_experts.count, 2);
  EXPECT_EQ(s->shared_experts.intermediate_size, 48);
  EXPECT_FALSE(s->shared_experts.gated);
  EXPECT_THAT(s->layer_is_moe, ElementsAre(false, true, true));  // first_k_dense_replace 1
  EXPECT_EQ(s->dense_intermediate_size, 96);
}

TEST(DeepseekConfigTest, V2GroupLimitedWithYarnInRopeParameters) {
  absl::StatusOr<ModelSpec> s = LoadModelSpec(FixtureDir("tiny-deepseek-v2"));
  ASSERT_TRUE(s.ok()) << s.status();
  const AttentionSpec& a = s->attention;
  EXPECT_EQ(a.q_lora_rank, 48);
  EXPECT_EQ(a.rope.type, RopeType::kYarn);
  EXPECT_FLOAT_EQ(a.rope.factor, 4.0f);
  EXPECT_EQ(a.rope.original_max_position, 512);
  EXPECT_FLOAT_EQ(a.rope.attention_factor, 1.0f);  // mscale == mscale_all_dim
  const double m = Mscale(4.0, 0.707);
  EXPECT_NEAR(a.softmax_scale, m * m / std::sqrt(32.0), 1e-7);
  EXPECT_EQ(s->router.method, TopKMethod::kGroupLimitedGreedy);
  EXPECT_EQ(s->router.num_groups, 4);
  EXPECT_EQ(s->router.topk_groups, 2);
  EXPECT_FALSE(s->router.norm_topk_prob);
  EXPECT_FLOAT_EQ(s->router.routed_scaling_factor, 4.0f);
}

TEST(DeepseekConfigTest, V3SigmoidNoauxTcWithHubRopeScaling) {
  absl::StatusOr<ModelSpec> s = LoadModelSpec(FixtureDir("tiny-deepseek-v3"));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->family, Family::kDeepseekV3);
  const AttentionSpec& a = s->attention;
  EXPECT_TRUE(a.rope.interleave);
  EXPECT_EQ(a.rope.type, RopeType::kYarn);  // rope_scaling.type, the hub's spelling
  EXPECT_NEAR(a.rope.attention_factor, Mscale(4.0, 1.0) / Mscale(4.0, 0.8), 1e-6);
  const double m = Mscale(4.0, 0.8);
  EXPECT_NEAR(a.softmax_scale, m * m / std::sqrt(32.0), 1e-7);
  const RouterSpec& r = s->router;
  EXPECT_EQ(r.scoring, RouterScoring::kSigmoid);
  EXPECT_EQ(r.method, TopKMethod::kNoauxTc);
  EXPECT_TRUE(r.selection_bias);
  EXPECT_TRUE(r.norm_topk_prob);
  EXPECT_FLOAT_EQ(r.routed_scaling_factor, 2.5f);
  EXPECT_EQ(s->shared_experts.count, 1);
  EXPECT_THAT(s->layer_is_moe, ElementsAre(false, true, true));
}

// The same V3 config in transformers 5's spelling parses to the same RoPE.
TEST(DeepseekConfigTest, RopeParametersSpellingEqualsRopeScaling) {
  nlohmann::json j = Config("tiny-deepseek-v3");
  absl::StatusOr<ModelSpec> hub = Parse(j);
  ASSERT_TRUE(hub.ok()) << hub.status();
  nlohmann::json params = j["rope_scaling"];
  params["rope_type"] = params["type"];
  params.erase("type");
  params["rope_theta"] = j["rope_theta"];
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = params;
  absl::StatusOr<ModelSpec> t5 = Parse(j);
  ASSERT_TRUE(t5.ok()) << t5.status();
  EXPECT_EQ(t5->attention.rope.type, hub->attention.rope.type);
  EXPECT_FLOAT_EQ(t5->attention.rope.attention_factor, hub->attention.rope.attention_factor);
  EXPECT_FLOAT_EQ(t5->attention.softmax_scale, hub->attention.softmax_scale);
  EXPECT_EQ(t5->attention.rope.original_max_position, hub->attention.rope.original_max_position);
}

TEST(DeepseekConfigTest, MoeLayerFreqAndRopeInterleaveOff) {
  nlohmann::json j = Config("tiny-deepseek-v3");
  j["num_hidden_layers"] = 6;
  j["first_k_dense_replace"] = 2;
  j["moe_layer_freq"] = 2;
  j["rope_interleave"] = false;
  absl::StatusOr<ModelSpec> s = Parse(j);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->layer_is_moe, ElementsAre(false, false, true, false, true, false));
  EXPECT_FALSE(s->attention.rope.interleave);
}

TEST(DeepseekConfigErrorTest, Fp8CheckpointsAreRefusedByName) {
  nlohmann::json j = Config("tiny-deepseek-v3");
  j["quantization_config"] = {{"activation_scheme", "dynamic"}, {"fmt", "e4m3"}, {"quant_method", "fp8"},
                              {"weight_block_size", {128, 128}}};
  ExpectError(j, absl::StatusCode::kUnimplemented, "field 'quantization_config' names quant_method 'fp8'");
  ExpectError(j, absl::StatusCode::kUnimplemented, "FP8 block-scaled");
}

TEST(DeepseekConfigErrorTest, RoutingAndShapeErrorsNameTheField) {
  nlohmann::json j = Config("tiny-deepseek-v2");
  j["topk_method"] = "noaux_tc";
  ExpectError(j, absl::StatusCode::kUnimplemented, "field 'topk_method' is 'noaux_tc'");
  j = Config("tiny-deepseek-v2");
  j["n_group"] = 3;
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'n_group' (3) must divide n_routed_experts (16)");
  j = Config("tiny-deepseek-v2");
  j["topk_group"] = 5;
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'topk_group' (5) must not exceed n_group (4)");
  j = Config("tiny-deepseek-v2");
  j["topk_group"] = 1;
  j["num_experts_per_tok"] = 5;  // one group of 4 experts cannot give 5
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'num_experts_per_tok' (5) exceeds the experts");
  j = Config("tiny-deepseek-v3");
  j["scoring_func"] = "softmax";
  ExpectError(j, absl::StatusCode::kUnimplemented, "field 'scoring_func' is 'softmax'");
  j = Config("tiny-deepseek-v3");
  j.erase("kv_lora_rank");
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'kv_lora_rank' is missing");
  j = Config("tiny-deepseek-v3");
  j["qk_rope_head_dim"] = 15;
  ExpectError(j, absl::StatusCode::kInvalidArgument, "field 'qk_rope_head_dim' is 15; RoPE needs it even");
  j = Config("tiny-deepseek-v3");
  j["attention_bias"] = true;
  ExpectError(j, absl::StatusCode::kUnimplemented, "field 'attention_bias' is true");
}

// The published hub configs (values as DeepSeek ships them), and the synthetic shapes built after them.
nlohmann::json HubV3Config() {
  return nlohmann::json::parse(R"({
    "model_type": "deepseek_v3", "vocab_size": 129280, "hidden_size": 7168, "intermediate_size": 18432,
    "moe_intermediate_size": 2048, "num_hidden_layers": 61, "num_nextn_predict_layers": 1,
    "num_attention_heads": 128, "num_key_value_heads": 128, "n_shared_experts": 1, "n_routed_experts": 256,
    "ep_size": 1, "routed_scaling_factor": 2.5, "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64,
    "v_head_dim": 128, "qk_nope_head_dim": 128, "topk_method": "noaux_tc", "n_group": 8, "topk_group": 4,
    "num_experts_per_tok": 8, "moe_layer_freq": 1, "first_k_dense_replace": 3, "norm_topk_prob": true,
    "scoring_func": "sigmoid", "hidden_act": "silu", "max_position_embeddings": 163840, "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 1.0, "mscale_all_dim": 1.0,
                     "original_max_position_embeddings": 4096, "type": "yarn"},
    "rope_theta": 10000, "tie_word_embeddings": false, "bos_token_id": 0, "eos_token_id": 1,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128]}})");
}

nlohmann::json HubV2LiteConfig() {
  return nlohmann::json::parse(R"({
    "model_type": "deepseek_v2", "vocab_size": 102400, "hidden_size": 2048, "intermediate_size": 10944,
    "moe_intermediate_size": 1408, "num_hidden_layers": 27, "num_attention_heads": 16, "num_key_value_heads": 16,
    "n_shared_experts": 2, "n_routed_experts": 64, "routed_scaling_factor": 1.0, "kv_lora_rank": 512,
    "q_lora_rank": null, "qk_rope_head_dim": 64, "v_head_dim": 128, "qk_nope_head_dim": 128, "topk_method": "greedy",
    "n_group": 1, "topk_group": 1, "num_experts_per_tok": 6, "moe_layer_freq": 1, "first_k_dense_replace": 1,
    "norm_topk_prob": false, "scoring_func": "softmax", "aux_loss_alpha": 0.001, "seq_aux": true,
    "hidden_act": "silu", "max_position_embeddings": 163840, "rms_norm_eps": 1e-06,
    "rope_scaling": {"beta_fast": 32, "beta_slow": 1, "factor": 40, "mscale": 0.707, "mscale_all_dim": 0.707,
                     "original_max_position_embeddings": 4096, "type": "yarn"},
    "rope_theta": 10000, "tie_word_embeddings": false, "bos_token_id": 100000, "eos_token_id": 100001})");
}

// V3's release is FP8 (refused by name); its bf16 conversion parses, and MLA caches 576 values per token and layer
// (latent 512 + rope key 64) instead of 128 heads × (192 + 128).
TEST(DeepseekConfigTest, HubConfigsAndTheLatentCacheWidth) {
  nlohmann::json v3 = HubV3Config();
  ExpectError(v3, absl::StatusCode::kUnimplemented, "quant_method 'fp8'");
  v3.erase("quantization_config");
  absl::StatusOr<ModelSpec> s = Parse(v3);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->attention.kv_cache_width(), 576);
  EXPECT_EQ(s->num_routed_experts(), 58 * 256);
  EXPECT_EQ(std::count(s->layer_is_moe.begin(), s->layer_is_moe.begin() + 3, true), 0);
  const double m = Mscale(40.0, 1.0);
  EXPECT_NEAR(s->attention.softmax_scale, m * m / std::sqrt(192.0), 1e-7);
  absl::StatusOr<ModelSpec> lite = Parse(HubV2LiteConfig());
  ASSERT_TRUE(lite.ok()) << lite.status();
  EXPECT_EQ(lite->attention.kv_cache_width(), 576);
  EXPECT_EQ(lite->attention.q_lora_rank, 0);
  EXPECT_EQ(lite->num_routed_experts(), 26 * 64);
}

// synthetic:deepseek-v2-lite and synthetic:deepseek-v3-4l are the hub shapes (V3 cut to 4 layers, 2 dense).
TEST(DeepseekConfigTest, SyntheticShapesEqualTheHubConfigs) {
  nlohmann::json v3 = HubV3Config();
  v3.erase("quantization_config");
  v3["num_hidden_layers"] = 4;
  v3["first_k_dense_replace"] = 2;
  for (const auto& [name, json] : {std::pair{"deepseek-v2-lite", HubV2LiteConfig()}, std::pair{"deepseek-v3-4l", v3}}) {
    absl::StatusOr<ModelSpec> hub = Parse(json);
    absl::StatusOr<ModelSpec> syn = SyntheticModelSpec(name, /*small=*/false);
    ASSERT_TRUE(hub.ok() && syn.ok()) << name;
    const AttentionSpec &h = hub->attention, &y = syn->attention;
    EXPECT_EQ(y.kind, h.kind) << name;
    EXPECT_EQ(std::tie(y.num_heads, y.q_lora_rank, y.kv_lora_rank, y.qk_head_dim, y.v_head_dim, y.rope.dim),
              std::tie(h.num_heads, h.q_lora_rank, h.kv_lora_rank, h.qk_head_dim, h.v_head_dim, h.rope.dim))
        << name;
    EXPECT_EQ(y.rope.interleave, h.rope.interleave) << name;
    EXPECT_FLOAT_EQ(y.rope.attention_factor, h.rope.attention_factor) << name;
    EXPECT_FLOAT_EQ(y.softmax_scale, h.softmax_scale) << name;
    EXPECT_EQ(syn->layer_is_moe, hub->layer_is_moe) << name;
    EXPECT_EQ(std::tie(syn->num_experts, syn->top_k, syn->moe_intermediate_size, syn->dense_intermediate_size),
              std::tie(hub->num_experts, hub->top_k, hub->moe_intermediate_size, hub->dense_intermediate_size))
        << name;
    EXPECT_EQ(std::tie(syn->router.scoring, syn->router.method, syn->router.num_groups, syn->router.topk_groups,
                       syn->router.norm_topk_prob, syn->router.selection_bias),
              std::tie(hub->router.scoring, hub->router.method, hub->router.num_groups, hub->router.topk_groups,
                       hub->router.norm_topk_prob, hub->router.selection_bias))
        << name;
    EXPECT_FLOAT_EQ(syn->router.routed_scaling_factor, hub->router.routed_scaling_factor) << name;
    EXPECT_EQ(std::tie(syn->shared_experts.count, syn->shared_experts.intermediate_size),
              std::tie(hub->shared_experts.count, hub->shared_experts.intermediate_size))
        << name;
  }
}

TEST(DeepseekLoadTest, HubTensorNames) {
  absl::StatusOr<std::shared_ptr<const Model>> m = LoadModel(FixtureDir("tiny-deepseek-v3"));
  ASSERT_TRUE(m.ok()) << m.status();
  const LayerWeights& l0 = (*m)->weights.layers[0];
  EXPECT_EQ(l0.q_a_proj.name, "model.layers.0.self_attn.q_a_proj.weight");
  EXPECT_EQ(l0.q_a_norm.name, "model.layers.0.self_attn.q_a_layernorm.weight");
  EXPECT_EQ(l0.kv_a_proj.name, "model.layers.0.self_attn.kv_a_proj_with_mqa.weight");
  EXPECT_EQ(l0.kv_b_proj.shape, (std::vector<int64_t>{4 * (16 + 24), 32}));
  EXPECT_EQ(l0.dense_mlp.gate.name, "model.layers.0.mlp.gate_proj.weight");
  EXPECT_FALSE(l0.router.present());
  const LayerWeights& l2 = (*m)->weights.layers[2];
  EXPECT_EQ(l2.router_bias.name, "model.layers.2.mlp.gate.e_score_correction_bias");
  EXPECT_EQ(l2.router_bias.dtype, DType::kF32);
  EXPECT_EQ(l2.shared_expert.up.name, "model.layers.2.mlp.shared_experts.up_proj.weight");
  ASSERT_EQ(l2.experts.size(), 16u);
  EXPECT_EQ(l2.experts[15].down.name, "model.layers.2.mlp.experts.15.down_proj.weight");
  absl::StatusOr<std::shared_ptr<const Model>> lite = LoadModel(FixtureDir("tiny-deepseek-v2-lite"));
  ASSERT_TRUE(lite.ok()) << lite.status();
  EXPECT_EQ((*lite)->weights.layers[1].q_proj.name, "model.layers.1.self_attn.q_proj.weight");
  EXPECT_FALSE((*lite)->weights.layers[1].q_a_proj.present());
}

TEST(DeepseekLoadTest, WeightScaleInvTensorsAreRefused) {
  TempDir dir;
  CopyDir(FixtureDir("tiny-deepseek-v3"), dir.path());
  std::vector<RawTensor> tensors = ReadSafetensors(FixtureDir("tiny-deepseek-v3") + "/model.safetensors");
  RawTensor scale;
  scale.name = "model.layers.0.self_attn.q_a_proj.weight_scale_inv";
  scale.dtype = "F32";
  scale.shape = {1, 1};
  scale.bytes = std::string(4, '\0');
  tensors.push_back(scale);
  WriteAll(dir.File("model.safetensors"), BuildSafetensors(tensors, 0));
  absl::StatusOr<std::shared_ptr<const Model>> m = LoadModel(dir.path());
  ASSERT_FALSE(m.ok());
  EXPECT_EQ(m.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("tensor 'model.layers.0.self_attn.q_a_proj.weight_scale_inv': FP8 block-scaled checkpoints"));
}

TEST(DeepseekLoadTest, MissingSelectionBiasIsNamed) {
  TempDir dir;
  CopyDir(FixtureDir("tiny-deepseek-v3"), dir.path());
  std::vector<RawTensor> tensors = ReadSafetensors(FixtureDir("tiny-deepseek-v3") + "/model.safetensors");
  std::erase_if(tensors, [](const RawTensor& t) { return t.name == "model.layers.1.mlp.gate.e_score_correction_bias"; });
  WriteAll(dir.File("model.safetensors"), BuildSafetensors(tensors, 0));
  absl::StatusOr<std::shared_ptr<const Model>> m = LoadModel(dir.path());
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()),
              HasSubstr("tensor 'model.layers.1.mlp.gate.e_score_correction_bias' is missing (expected shape [16])"));
}

}  // namespace
}  // namespace moed
