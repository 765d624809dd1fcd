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
  s.num_heads = 32;
  s.num_kv_heads = 8;
  s.head_dim = 128;
  s.max_position_embeddings = 32768;
  s.rms_norm_eps = 1e-5f;
  s.rope_theta = 1e6f;
  s.num_experts = 8;
  s.top_k = 2;
  s.norm_topk_prob = true;
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
  s.num_heads = 16;
  s.num_kv_heads = 16;
  s.head_dim = 128;
  s.max_position_embeddings = 4096;
  s.rms_norm_eps = 1e-5f;
  s.rope_theta = 10000.0f;
  s.num_experts = 64;
  s.top_k = 8;
  s.norm_topk_prob = false;
  s.moe_intermediate_size = 1024;
  s.qk_norm = QkNorm::kFull;
  s.eos_token_ids = {50279};
  return s;
}

ModelSpec Qwen3_30bA3b() {
  ModelSpec s;
  s.family = Family::kQwen3Moe;
  s.vocab_size = 151936;
  s.hidden_size = 2048;
  s.num_layers = 48;
  s.num_heads = 32;
  s.num_kv_heads = 4;
  s.head_dim = 128;
  s.max_position_embeddings = 40960;
  s.rms_norm_eps = 1e-6f;
  s.rope_theta = 1e6f;
  s.num_experts = 128;
  s.top_k = 8;
  s.norm_topk_prob = true;
  s.moe_intermediate_size = 768;
  s.qk_norm = QkNorm::kPerHead;
  s.eos_token_ids = {151645};
  return s;
}

// Keeps family, experts, top-k, q/k norm and the GQA ratio; shrinks everything else.
ModelSpec Shrink(ModelSpec s) {
  const int ratio = s.num_heads / s.num_kv_heads;
  s.num_kv_heads = ratio >= 8 ? 1 : 2;
  s.num_heads = s.num_kv_heads * ratio;
  s.head_dim = 16;
  s.hidden_size = 128;
  s.num_layers = 2;
  s.moe_intermediate_size = 64;
  s.vocab_size = 512;
  s.max_position_embeddings = 2048;
  s.eos_token_ids = {2};
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

  TensorView Ones(std::string name, int64_t n) {
    TensorView t = Shell(std::move(name), {n});
    auto buf = std::make_shared<std::vector<uint16_t>>(n, FloatToBf16(1.0f));
    t.data = buf->data();
    model_->storage.push_back(std::move(buf));
    return t;
  }

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
    lw.q_proj = b.Random(p + "self_attn.q_proj.weight", {s.q_dim(), H}, all);
    lw.k_proj = b.Random(p + "self_attn.k_proj.weight", {s.kv_dim(), H}, all);
    lw.v_proj = b.Random(p + "self_attn.v_proj.weight", {s.kv_dim(), H}, all);
    lw.o_proj = b.Random(p + "self_attn.o_proj.weight", {H, s.q_dim()}, all);
    if (s.qk_norm == QkNorm::kPerHead) {
      lw.q_norm = b.Ones(p + "self_attn.q_norm.weight", s.head_dim);
      lw.k_norm = b.Ones(p + "self_attn.k_norm.weight", s.head_dim);
    } else if (s.qk_norm == QkNorm::kFull) {
      lw.q_norm = b.Ones(p + "self_attn.q_norm.weight", s.q_dim());
      lw.k_norm = b.Ones(p + "self_attn.k_norm.weight", s.kv_dim());
    }
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    lw.router = b.Random(moe + "gate.weight", {s.num_experts, H}, /*host=*/true, opt.router_skew);
    for (int e = 0; e < s.num_experts; ++e) {
      const std::string ep = absl::StrCat(moe, "experts.", e, ".");
      FfnWeights f;
      f.gate = b.Random(ep + (mixtral ? "w1.weight" : "gate_proj.weight"), {F, H}, all);
      f.up = b.Random(ep + (mixtral ? "w3.weight" : "up_proj.weight"), {F, H}, all);
      f.down = b.Random(ep + (mixtral ? "w2.weight" : "down_proj.weight"), {H, F}, all);
      lw.experts.push_back(std::move(f));
    }
    m->weights.layers.push_back(std::move(lw));
  }
}

}  // namespace

std::vector<std::string> SyntheticModelNames() { return {"mixtral-8x7b", "olmoe-1b-7b", "qwen3-30b-a3b"}; }

absl::StatusOr<ModelSpec> SyntheticModelSpec(std::string_view full_name, bool small) {
  const absl::string_view name = absl::StripPrefix(absl::string_view(full_name.data(), full_name.size()), kPrefix);
  ModelSpec s;
  if (name == "mixtral-8x7b") {
    s = Mixtral8x7b();
  } else if (name == "olmoe-1b-7b") {
    s = Olmoe1b7b();
  } else if (name == "qwen3-30b-a3b") {
    s = Qwen3_30bA3b();
  } else {
    return absl::NotFoundError(absl::StrFormat("unknown synthetic model '%s' (known: %s)", std::string(name),
                                               absl::StrJoin(SyntheticModelNames(), ", ")));
  }
  if (small) s = Shrink(s);
  s.layer_is_moe.assign(s.num_layers, true);
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
