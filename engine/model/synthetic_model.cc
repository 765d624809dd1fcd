// Synthetic model specs and weights (see synthetic_model.h for the generation rule).
#include "engine/model/synthetic_model.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "engine/model/dtype.h"
#include "engine/model/rope.h"

namespace moed {
namespace {

constexpr absl::string_view kPrefix = "synthetic:";

uint64_t Fnv1a(absl::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

ModelSpec Mixtral8x7b() {
  ModelSpec s;
  s.family = Family::kMixtral;
  s.vocab_size = 32000;
  s.hidden_size = 4096;
  s.num_layers = 32;
  s.attention.num_heads = 32;
  s.attention.num_kv_heads = 8;
  s.attention.head_dim = 128;
  s.max_position_embeddings = 32768;
  s.rms_norm_eps = 1e-5f;
  s.attention.rope.theta = 1e6f;
  s.num_experts = 8;
  s.top_k = 2;
  s.router.norm_topk_prob = true;
  s.moe_intermediate_size = 14336;
  s.bos_token_id = 1;
  s.eos_token_ids = {2};
  return s;
}

ModelSpec Olmoe1b7b() {
  ModelSpec s;
  s.family = Family::kOlmoe;
  s.vocab_size = 50304;
  s.hidden_size = 2048;
  s.num_layers = 16;
  s.attention.num_heads = 16;
  s.attention.num_kv_heads = 16;
  s.attention.head_dim = 128;
  s.max_position_embeddings = 4096;
  s.rms_norm_eps = 1e-5f;
  s.attention.rope.theta = 10000.0f;
  s.num_experts = 64;
  s.top_k = 8;
  s.router.norm_topk_prob = false;
  s.moe_intermediate_size = 1024;
  s.attention.qk_norm = QkNorm::kFull;
  s.eos_token_ids = {50279};
  return s;
}

ModelSpec Qwen3_30bA3b() {
  ModelSpec s;
  s.family = Family::kQwen3Moe;
  s.vocab_size = 151936;
  s.hidden_size = 2048;
  s.num_layers = 48;
  s.attention.num_heads = 32;
  s.attention.num_kv_heads = 4;
  s.attention.head_dim = 128;
  s.max_position_embeddings = 40960;
  s.rms_norm_eps = 1e-6f;
  s.attention.rope.theta = 1e6f;
  s.num_experts = 128;
  s.top_k = 8;
  s.router.norm_topk_prob = true;
  s.moe_intermediate_size = 768;
  s.attention.qk_norm = QkNorm::kPerHead;
  s.eos_token_ids = {151645};
  return s;
}

// MLA attention with YaRN as DeepSeek-V2/V3 ship it (rope 64, nope 128, v 128, latent 512, factor 40).
void DeepseekAttention(ModelSpec& s, int heads, int q_lora_rank, float mscale) {
  AttentionSpec& a = s.attention;
  a.kind = AttentionKind::kMla;
  a.num_heads = a.num_kv_heads = heads;
  a.q_lora_rank = q_lora_rank;
  a.kv_lora_rank = 512;
  a.v_head_dim = 128;
  a.qk_head_dim = a.head_dim = 128 + 64;
  a.rope = RopeSpec{.type = RopeType::kYarn, .theta = 10000.0f, .dim = 64, .interleave = true, .factor = 40.0f,
                    .original_max_position = 4096, .mscale = mscale, .mscale_all_dim = mscale};
  s.max_position_embeddings = 163840;
  s.rms_norm_eps = 1e-6f;
}

ModelSpec DeepseekV2Lite() {
  ModelSpec s;
  s.family = Family::kDeepseekV2;
  s.vocab_size = 102400;
  s.hidden_size = 2048;
  s.num_layers = 27;
  DeepseekAttention(s, 16, /*q_lora_rank=*/0, 0.707f);
  s.num_experts = 64;
  s.top_k = 6;
  s.moe_intermediate_size = 1408;
  s.dense_intermediate_size = 10944;
  s.shared_experts = {2, 2 * 1408, /*gated=*/false};
  s.router.norm_topk_prob = false;
  s.layer_is_moe.assign(s.num_layers, true);
  s.layer_is_moe[0] = false;  // first_k_dense_replace 1
  s.bos_token_id = 100000;
  s.eos_token_ids = {100001};
  return s;
}

// DeepSeek-V3's shape with 4 of its 61 layers (2 dense, then 2 MoE of 256 experts): ~51 GB of bf16 weights.
ModelSpec DeepseekV3FourLayers() {
  ModelSpec s;
  s.family = Family::kDeepseekV3;
  s.vocab_size = 129280;
  s.hidden_size = 7168;
  s.num_layers = 4;
  DeepseekAttention(s, 128, /*q_lora_rank=*/1536, 1.0f);
  s.num_experts = 256;
  s.top_k = 8;
  s.moe_intermediate_size = 2048;
  s.dense_intermediate_size = 18432;
  s.shared_experts = {1, 2048, /*gated=*/false};
  s.router = RouterSpec{.scoring = RouterScoring::kSigmoid, .method = TopKMethod::kNoauxTc, .num_groups = 8,
                        .topk_groups = 4, .norm_topk_prob = true, .routed_scaling_factor = 2.5f,
                        .selection_bias = true};
  s.layer_is_moe = {false, false, true, true};
  s.bos_token_id = 0;
  s.eos_token_ids = {1};
  return s;
}

// Keeps family, experts, top-k, q/k norm and the GQA ratio; shrinks everything else.
ModelSpec Shrink(ModelSpec s) {
  AttentionSpec& a = s.attention;
  if (a.kind == AttentionKind::kMla) {
    a.num_heads = a.num_kv_heads = 4;
    if (a.q_lora_rank > 0) a.q_lora_rank = 48;
    a.kv_lora_rank = 32;
    a.v_head_dim = 16;
    a.qk_head_dim = a.head_dim = 32;
    a.rope.dim = 16;
    a.rope.original_max_position = 256;
    s.shared_experts.intermediate_size = s.shared_experts.count * 64;
    s.dense_intermediate_size = 128;
    s.layer_is_moe = {false, true};
  } else {
    const int ratio = a.num_heads / a.num_kv_heads;
    a.num_kv_heads = ratio >= 8 ? 1 : 2;
    a.num_heads = a.num_kv_heads * ratio;
    a.head_dim = 16;
  }
  s.hidden_size = 128;
  s.num_layers = 2;
  s.moe_intermediate_size = 64;
  s.vocab_size = 512;
  s.max_position_embeddings = 2048;
  s.eos_token_ids = {2};
  if (s.bos_token_id) s.bos_token_id = 1;
  return s;
}

// Builds the views of a model; `fill` decides which tensors get host bytes.
class Builder {
 public:
  Builder(Model* model, const SyntheticOptions& opt) : model_(model), opt_(opt) {}

  // A bf16 tensor filled by the synthetic rule when `host` (else left absent, for the device).
  TensorView Random(std::string name, std::vector<int64_t> shape, bool host, float row_skew = 0.0f) {
    TensorView t = Shell(std::move(name), std::move(shape));
    if (!host) return t;
    const SyntheticFill f = FillOf(*model_, t);
    auto buf = std::make_shared<std::vector<uint16_t>>(t.numel());
    const int64_t cols = t.shape.size() == 2 ? t.shape[1] : t.numel();
    for (int64_t i = 0; i < t.numel(); ++i) {
      float v = f.scale * (2.0f * SyntheticUniform(f.seed, i) - 1.0f);
      if (row_skew > 0.0f) v *= std::exp(-row_skew * static_cast<float>(i / cols) / static_cast<float>(t.shape[0]));
      (*buf)[i] = FloatToBf16(v);
    }
    t.data = buf->data();
    model_->storage.push_back(std::move(buf));
    return t;
  }

  TensorView Ones(std::string name, int64_t n, float value = 1.0f) {
    TensorView t = Shell(std::move(name), {n});
    auto buf = std::make_shared<std::vector<uint16_t>>(n, FloatToBf16(value));
    t.data = buf->data();
    model_->storage.push_back(std::move(buf));
    return t;
  }

  TensorView Zeros(std::string name, int64_t n) { return Ones(std::move(name), n, 0.0f); }

  static SyntheticFill FillOf(const Model& m, const TensorView& t);

 private:
  static TensorView Shell(std::string name, std::vector<int64_t> shape) {
    TensorView t;
    t.name = std::move(name);
    t.dtype = DType::kBF16;
    t.shape = std::move(shape);
    return t;
  }
  Model* model_;
  const SyntheticOptions& opt_;
};

uint64_t SeedOfSource(absl::string_view source) {
  const size_t at = source.rfind(";seed=");
  uint64_t seed = 0;
  if (at == absl::string_view::npos || !absl::SimpleAtoi(source.substr(at + 6), &seed)) return 0;
  return seed;
}

SyntheticFill Builder::FillOf(const Model& m, const TensorView& t) {
  SyntheticFill f;
  f.seed = Fnv1a(t.name) ^ (SeedOfSource(m.source) * 0xd1b54a32d192ed03ull);
  const bool embedding = absl::StrContains(t.name, "embed_tokens");
  f.scale = embedding || t.shape.size() != 2 ? 1.0f : std::sqrt(3.0f / static_cast<float>(t.shape[1]));
  return f;
}

void BuildWeights(Model* m, const SyntheticOptions& opt) {
  const ModelSpec& s = m->spec;
  Builder b(m, opt);
  const bool all = opt.materialize;
  const int64_t H = s.hidden_size, F = s.moe_intermediate_size;
  m->weights.embed = b.Random("model.embed_tokens.weight", {s.vocab_size, H}, all);
  m->weights.final_norm = b.Ones("model.norm.weight", H);
  m->weights.lm_head = b.Random("lm_head.weight", {s.vocab_size, H}, all);
  const bool mixtral = s.family == Family::kMixtral;
  for (int l = 0; l < s.num_layers; ++l) {
    const std::string p = absl::StrCat("model.layers.", l, ".");
    LayerWeights lw;
    lw.input_norm = b.Ones(p + "input_layernorm.weight", H);
    lw.post_attn_norm = b.Ones(p + "post_attention_layernorm.weight", H);
    const AttentionSpec& a = s.attention;
    if (a.kind == AttentionKind::kMla) {
      const std::string sa = p + "self_attn.";
      const int64_t C = a.kv_lora_rank;
      if (a.q_lora_rank > 0) {
        lw.q_a_proj = b.Random(sa + "q_a_proj.weight", {a.q_lora_rank, H}, all);
        lw.q_a_norm = b.Ones(sa + "q_a_layernorm.weight", a.q_lora_rank);
        lw.q_b_proj = b.Random(sa + "q_b_proj.weight", {a.q_dim(), a.q_lora_rank}, all);
      } else {
        lw.q_proj = b.Random(sa + "q_proj.weight", {a.q_dim(), H}, all);
      }
      lw.kv_a_proj = b.Random(sa + "kv_a_proj_with_mqa.weight", {C + a.rope.dim, H}, all);
      lw.kv_a_norm = b.Ones(sa + "kv_a_layernorm.weight", C);
      const int64_t kv_b_rows = static_cast<int64_t>(a.num_heads) * (a.nope_dim() + a.v_head_dim);
      lw.kv_b_proj = b.Random(sa + "kv_b_proj.weight", {kv_b_rows, C}, all);
    } else {
      lw.q_proj = b.Random(p + "self_attn.q_proj.weight", {a.q_dim(), H}, all);
      lw.k_proj = b.Random(p + "self_attn.k_proj.weight", {a.kv_dim(), H}, all);
      lw.v_proj = b.Random(p + "self_attn.v_proj.weight", {a.kv_dim(), H}, all);
    }
    lw.o_proj = b.Random(p + "self_attn.o_proj.weight", {H, a.o_dim()}, all);
    if (a.qk_norm == QkNorm::kPerHead) {
      lw.q_norm = b.Ones(p + "self_attn.q_norm.weight", a.head_dim);
      lw.k_norm = b.Ones(p + "self_attn.k_norm.weight", a.head_dim);
    } else if (a.qk_norm == QkNorm::kFull) {
      lw.q_norm = b.Ones(p + "self_attn.q_norm.weight", a.q_dim());
      lw.k_norm = b.Ones(p + "self_attn.k_norm.weight", a.kv_dim());
    }
    auto ffn = [&](const std::string& ep, int64_t width) {
      FfnWeights f;
      f.width = static_cast<int>(width);
      f.gate = b.Random(ep + (mixtral ? "w1.weight" : "gate_proj.weight"), {width, H}, all);
      f.up = b.Random(ep + (mixtral ? "w3.weight" : "up_proj.weight"), {width, H}, all);
      f.down = b.Random(ep + (mixtral ? "w2.weight" : "down_proj.weight"), {H, width}, all);
      return f;
    };
    if (!s.layer_is_moe[l]) {
      lw.dense_mlp = ffn(p + "mlp.", s.dense_intermediate_size);
      m->weights.layers.push_back(std::move(lw));
      continue;
    }
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    lw.router = b.Random(moe + "gate.weight", {s.num_experts, H}, /*host=*/true, opt.router_skew);
    if (s.router.selection_bias) lw.router_bias = b.Zeros(moe + "gate.e_score_correction_bias", s.num_experts);
    for (int e = 0; e < s.num_experts; ++e) lw.experts.push_back(ffn(absl::StrCat(moe, "experts.", e, "."), F));
    if (s.shared_experts.count > 0) lw.shared_expert = ffn(moe + "shared_experts.", s.shared_experts.intermediate_size);
    m->weights.layers.push_back(std::move(lw));
  }
}

}  // namespace

std::vector<std::string> SyntheticModelNames() {
  return {"mixtral-8x7b", "olmoe-1b-7b", "qwen3-30b-a3b", "deepseek-v2-lite", "deepseek-v3-4l"};
}

absl::StatusOr<ModelSpec> SyntheticModelSpec(std::string_view full_name, bool small) {
  const absl::string_view name = absl::StripPrefix(absl::string_view(full_name.data(), full_name.size()), kPrefix);
  ModelSpec s;
  if (name == "mixtral-8x7b") {
    s = Mixtral8x7b();
  } else if (name == "olmoe-1b-7b") {
    s = Olmoe1b7b();
  } else if (name == "qwen3-30b-a3b") {
    s = Qwen3_30bA3b();
  } else if (name == "deepseek-v2-lite") {
    s = DeepseekV2Lite();
  } else if (name == "deepseek-v3-4l") {
    s = DeepseekV3FourLayers();
  } else {
    return absl::NotFoundError(absl::StrFormat("unknown synthetic model '%s' (known: %s)", std::string(name),
                                               absl::StrJoin(SyntheticModelNames(), ", ")));
  }
  if (small) s = Shrink(s);
  if (s.layer_is_moe.empty()) s.layer_is_moe.assign(s.num_layers, true);
  AttentionSpec& a = s.attention;
  if (a.kind == AttentionKind::kGqa) {
    a.qk_head_dim = a.v_head_dim = a.head_dim;
    a.rope.dim = a.head_dim;
  }
  a.softmax_scale = 1.0f / std::sqrt(static_cast<float>(a.qk_head_dim));
  if (a.rope.type == RopeType::kYarn) {  // as the DeepSeek config parser derives them
    const float m = YarnMscale(a.rope.factor, a.rope.mscale_all_dim);
    a.rope.attention_factor = YarnMscale(a.rope.factor, a.rope.mscale) / m;
    a.softmax_scale *= m * m;
  }
  return s;
}

absl::StatusOr<std::shared_ptr<const Model>> CreateSyntheticModel(std::string_view full_name,
                                                                  const SyntheticOptions& options) {
  if (!(options.router_skew >= 0.0f) || !std::isfinite(options.router_skew)) {
    return absl::InvalidArgumentError(absl::StrFormat("router_skew must be finite and ≥ 0, got %g", options.router_skew));
  }
  const absl::string_view name = absl::StripPrefix(absl::string_view(full_name.data(), full_name.size()), kPrefix);
  auto spec = SyntheticModelSpec(full_name, options.small);
  if (!spec.ok()) return spec.status();
  if (options.num_layers < 0 || options.num_layers > spec->num_layers) {
    return absl::InvalidArgumentError(absl::StrFormat("synthetic model '%s': num_layers %d outside [0, %d]",
                                                      std::string(name), options.num_layers, spec->num_layers));
  }
  if (options.num_layers > 0) {
    spec->num_layers = options.num_layers;
    spec->layer_is_moe.resize(options.num_layers);
  }
  auto model = std::make_shared<Model>();
  model->spec = *std::move(spec);
  model->source = absl::StrCat(kPrefix, name, options.small ? "-small" : "", ";seed=", options.seed);
  BuildWeights(model.get(), options);
  return std::shared_ptr<const Model>(std::move(model));
}

absl::StatusOr<SyntheticFill> SyntheticTensorFill(const Model& model, const TensorView& t) {
  if (!absl::StartsWith(model.source, kPrefix)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("tensor '%s': model '%s' is not synthetic, so it has no generation rule", t.name, model.source));
  }
  return Builder::FillOf(model, t);
}

}  // namespace moed
