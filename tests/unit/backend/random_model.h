// Test helper: a small random-weight Model built in memory (bf16 weights owned by Model::storage) per family.
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/model/model.h"

namespace moed::test_models {

struct RandomModelOptions {
  Family family = Family::kMixtral;
  int vocab = 96;
  int hidden = 32;
  int layers = 2;
  int heads = 4;
  int kv_heads = 2;
  int head_dim = 8;
  int experts = 8;
  int top_k = 2;
  int ffn = 24;
  int shared_ffn = 0;          // > 0: qwen2_moe-style shared expert with a sigmoid gate
  bool dense_first_layer = false;
  int sliding_window = 0;
  uint32_t seed = 1;
};

// Builds the model; weights are N(0, 0.2²) in bf16, norms around 1.
inline std::shared_ptr<const Model> MakeRandomModel(const RandomModelOptions& o) {
  auto model = std::make_shared<Model>();
  ModelSpec& s = model->spec;
  s.family = o.family;
  s.vocab_size = o.vocab;
  s.hidden_size = o.hidden;
  s.num_layers = o.layers;
  AttentionSpec& a = s.attention;
  a.num_heads = o.heads;
  a.num_kv_heads = o.kv_heads;
  a.head_dim = a.qk_head_dim = a.v_head_dim = o.head_dim;
  a.softmax_scale = 1.0f / std::sqrt(static_cast<float>(o.head_dim));
  a.rope.theta = 10000.0f;
  a.rope.dim = o.head_dim;
  a.sliding_window = o.sliding_window;
  s.max_position_embeddings = 256;
  s.rms_norm_eps = 1e-5f;
  s.num_experts = o.experts;
  s.top_k = o.top_k;
  s.router.norm_topk_prob = o.family == Family::kMixtral || o.family == Family::kQwen3Moe;
  s.moe_intermediate_size = o.ffn;
  if (o.shared_ffn > 0) s.shared_experts = {1, o.shared_ffn, /*gated=*/true};
  s.dense_intermediate_size = o.ffn * 2;
  s.layer_is_moe.assign(o.layers, true);
  if (o.dense_first_layer) s.layer_is_moe[0] = false;
  a.qkv_bias = o.family == Family::kQwen2Moe;
  a.qk_norm = o.family == Family::kQwen3Moe ? QkNorm::kPerHead
              : o.family == Family::kOlmoe  ? QkNorm::kFull
                                            : QkNorm::kNone;
  s.eos_token_ids = {2};
  model->source = "random:test";

  std::mt19937 rng(o.seed);
  auto make = [&](const std::string& name, std::vector<int64_t> shape, float mean, float stddev) {
    std::normal_distribution<float> dist(mean, stddev);
    auto buf = std::make_shared<std::vector<uint16_t>>();
    TensorView t;
    t.name = name;
    t.dtype = DType::kBF16;
    t.shape = std::move(shape);
    buf->resize(t.numel());
    for (auto& v : *buf) v = FloatToBf16(dist(rng));
    t.data = buf->data();
    model->storage.push_back(buf);
    return t;
  };
  auto make_ffn = [&](const std::string& name, int width) {
    FfnWeights f;
    f.width = width;
    f.gate = make(name + ".gate", {width, o.hidden}, 0, 0.2f);
    f.up = make(name + ".up", {width, o.hidden}, 0, 0.2f);
    f.down = make(name + ".down", {o.hidden, width}, 0, 0.2f);
    return f;
  };
  const int q = o.heads * o.head_dim, kv = o.kv_heads * o.head_dim;
  model->weights.embed = make("embed", {o.vocab, o.hidden}, 0, 1.0f);
  for (int l = 0; l < o.layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    LayerWeights w;
    w.input_norm = make(p + "input_norm", {o.hidden}, 1, 0.1f);
    w.q_proj = make(p + "q", {q, o.hidden}, 0, 0.2f);
    w.k_proj = make(p + "k", {kv, o.hidden}, 0, 0.2f);
    w.v_proj = make(p + "v", {kv, o.hidden}, 0, 0.2f);
    w.o_proj = make(p + "o", {o.hidden, q}, 0, 0.2f);
    if (a.qkv_bias) {
      w.q_bias = make(p + "qb", {q}, 0, 0.2f);
      w.k_bias = make(p + "kb", {kv}, 0, 0.2f);
      w.v_bias = make(p + "vb", {kv}, 0, 0.2f);
    }
    if (a.qk_norm == QkNorm::kPerHead) {
      w.q_norm = make(p + "qn", {o.head_dim}, 1, 0.1f);
      w.k_norm = make(p + "kn", {o.head_dim}, 1, 0.1f);
    } else if (a.qk_norm == QkNorm::kFull) {
      w.q_norm = make(p + "qn", {q}, 1, 0.1f);
      w.k_norm = make(p + "kn", {kv}, 1, 0.1f);
    }
    w.post_attn_norm = make(p + "post_norm", {o.hidden}, 1, 0.1f);
    if (!s.layer_is_moe[l]) {
      w.dense_mlp = make_ffn(p + "mlp", s.dense_intermediate_size);
    } else {
      w.router = make(p + "router", {o.experts, o.hidden}, 0, 0.5f);
      for (int e = 0; e < o.experts; ++e) w.experts.push_back(make_ffn(p + "e" + std::to_string(e), o.ffn));
      if (o.shared_ffn > 0) {
        w.shared_expert = make_ffn(p + "shared", o.shared_ffn);
        w.shared_expert_gate = make(p + "shared_gate", {1, o.hidden}, 0, 0.2f);
      }
    }
    model->weights.layers.push_back(std::move(w));
  }
  model->weights.final_norm = make("norm", {o.hidden}, 1, 0.1f);
  model->weights.lm_head = make("lm_head", {o.vocab, o.hidden}, 0, 0.2f);
  return model;
}

}  // namespace moed::test_models
