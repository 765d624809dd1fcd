// DeepSeek-V2 / V2-Lite / V3: MLA attention (optional q LoRA, compressed KV + shared rope key), YaRN, fine-grained
// routed experts plus fused shared experts, dense first layers. V2 routes softmax greedy or group_limited_greedy;
// V3 sigmoid noaux_tc with a selection bias. Hub tensor names: self_attn.{q_proj | q_a_proj, q_a_layernorm, q_b_proj},
// kv_a_proj_with_mqa, kv_a_layernorm, kv_b_proj, o_proj; mlp.gate(.e_score_correction_bias), mlp.experts.N.*,
// mlp.shared_experts.*.
#include <cmath>

#include "engine/common/status_macros.h"
#include "engine/common/str_cat.h"
#include "engine/model/config_fields.h"
#include "engine/model/families/family.h"
#include "engine/model/rope.h"

namespace moed {
namespace {

using config::PositiveInt;
using config::PositiveIntOr;

bool IsV3(const ModelSpec& spec) { return spec.family == Family::kDeepseekV3; }

absl::Status ParseMla(const JsonFields& cfg, std::string_view source, double default_theta, ModelSpec& spec) {
  AttentionSpec& a = spec.attention;
  a.kind = AttentionKind::kMla;
  MOED_ASSIGN_OR_RETURN(a.num_heads, PositiveInt(cfg, "num_attention_heads"));
  a.num_kv_heads = a.num_heads;
  MOED_ASSIGN_OR_RETURN(a.q_lora_rank, config::NonNegativeIntOr(cfg, "q_lora_rank", 0));  // null → q_proj
  MOED_ASSIGN_OR_RETURN(a.kv_lora_rank, PositiveInt(cfg, "kv_lora_rank"));
  MOED_ASSIGN_OR_RETURN(int nope, config::NonNegativeIntOr(cfg, "qk_nope_head_dim", -1));
  if (nope < 0) return cfg.FieldError("qk_nope_head_dim", "is missing");
  MOED_ASSIGN_OR_RETURN(int rope_dim, PositiveInt(cfg, "qk_rope_head_dim"));
  if (rope_dim % 2 != 0) return cfg.FieldError("qk_rope_head_dim", Concat("is ", rope_dim, "; RoPE needs it even"));
  MOED_ASSIGN_OR_RETURN(a.v_head_dim, PositiveInt(cfg, "v_head_dim"));
  a.qk_head_dim = a.head_dim = nope + rope_dim;
  MOED_RETURN_IF_ERROR(family::RejectAttentionBias(cfg));
  MOED_ASSIGN_OR_RETURN(a.rope, ParseRopeSpec(cfg, source, default_theta, rope_dim, spec.max_position_embeddings));
  // V2 rotates (2i, 2i+1) pairs (complex form) always; V3 when rope_interleave (default true).
  a.rope.interleave = true;
  if (IsV3(spec)) {
    MOED_ASSIGN_OR_RETURN(a.rope.interleave, cfg.BoolOr("rope_interleave", true));
  }
  a.softmax_scale = 1.0f / std::sqrt(static_cast<float>(a.qk_head_dim));
  // With scaled RoPE the softmax is sharpened by yarn's mscale(factor, mscale_all_dim)² (transformers and the hub).
  if (a.rope.type != RopeType::kDefault && a.rope.mscale_all_dim != 0) {
    const float m = YarnMscale(a.rope.factor, a.rope.mscale_all_dim);
    a.softmax_scale = a.softmax_scale * m * m;
  }
  return absl::OkStatus();
}

absl::Status ParseRouter(const JsonFields& cfg, ModelSpec& spec) {
  RouterSpec& r = spec.router;
  MOED_ASSIGN_OR_RETURN(std::optional<std::string> scoring, cfg.OptionalString("scoring_func"));
  const std::string want_scoring = IsV3(spec) ? "sigmoid" : "softmax";
  if (scoring && *scoring != want_scoring) {
    return cfg.FieldError("scoring_func", Concat("is '", *scoring, "': ", FamilyName(spec.family), " routes with '",
                                                 want_scoring, "' only"),
                          absl::StatusCode::kUnimplemented);
  }
  r.scoring = IsV3(spec) ? RouterScoring::kSigmoid : RouterScoring::kSoftmax;
  MOED_ASSIGN_OR_RETURN(std::optional<std::string> method, cfg.OptionalString("topk_method"));
  if (IsV3(spec)) {
    if (method && *method != "noaux_tc") {
      return cfg.FieldError("topk_method", Concat("is '", *method, "': deepseek_v3 routes with 'noaux_tc' only"),
                            absl::StatusCode::kUnimplemented);
    }
    r.method = TopKMethod::kNoauxTc;
    r.selection_bias = true;
  } else if (!method || *method == "greedy") {
    r.method = TopKMethod::kGreedy;
  } else if (*method == "group_limited_greedy") {
    r.method = TopKMethod::kGroupLimitedGreedy;
  } else {
    return cfg.FieldError("topk_method", Concat("is '", *method, "': deepseek_v2 supports 'greedy' and "
                                                "'group_limited_greedy'"),
                          absl::StatusCode::kUnimplemented);
  }
  if (r.method != TopKMethod::kGreedy) {
    MOED_ASSIGN_OR_RETURN(r.num_groups, PositiveIntOr(cfg, "n_group", IsV3(spec) ? 8 : 1, config::kMaxExperts));
    MOED_ASSIGN_OR_RETURN(r.topk_groups, PositiveIntOr(cfg, "topk_group", IsV3(spec) ? 4 : 1, config::kMaxExperts));
    if (spec.num_experts % r.num_groups != 0) {
      return cfg.FieldError("n_group", Concat("(", r.num_groups, ") must divide n_routed_experts (",
                                              spec.num_experts, ")"));
    }
    if (r.topk_groups > r.num_groups) {
      return cfg.FieldError("topk_group", Concat("(", r.topk_groups, ") must not exceed n_group (", r.num_groups, ")"));
    }
    const int per_group = spec.num_experts / r.num_groups;
    if (r.method == TopKMethod::kNoauxTc && per_group < 2) {
      return cfg.FieldError("n_group", "leaves fewer than 2 experts per group; noaux_tc ranks groups by their top 2");
    }
    if (spec.top_k > r.topk_groups * per_group) {
      return cfg.FieldError("num_experts_per_tok", Concat("(", spec.top_k, ") exceeds the experts of topk_group (",
                                                          r.topk_groups, ") groups of ", per_group));
    }
  }
  // transformers' V2 scales by routed_scaling_factor and never renormalises; V3 renormalises when norm_topk_prob.
  r.norm_topk_prob = false;
  if (IsV3(spec)) {
    MOED_ASSIGN_OR_RETURN(r.norm_topk_prob, cfg.BoolOr("norm_topk_prob", true));
  }
  MOED_ASSIGN_OR_RETURN(double scale, config::PositiveNumberOr(cfg, "routed_scaling_factor", IsV3(spec) ? 2.5 : 1.0));
  r.routed_scaling_factor = static_cast<float>(scale);
  return absl::OkStatus();
}

absl::Status Parse(const JsonFields& cfg, std::string_view source, ModelSpec& spec) {
  MOED_RETURN_IF_ERROR(ParseMla(cfg, source, FamilyDefOf(spec.family).default_rope_theta, spec));
  MOED_RETURN_IF_ERROR(family::ParseExperts(cfg, "n_routed_experts", {"n_routed_experts"}, spec));
  MOED_ASSIGN_OR_RETURN(spec.moe_intermediate_size, PositiveInt(cfg, "moe_intermediate_size"));
  MOED_ASSIGN_OR_RETURN(spec.dense_intermediate_size, PositiveInt(cfg, "intermediate_size"));
  MOED_ASSIGN_OR_RETURN(int shared, config::NonNegativeIntOr(cfg, "n_shared_experts", 0, config::kMaxExperts));
  if (shared > 0) {
    spec.shared_experts = {shared, shared * spec.moe_intermediate_size, /*gated=*/false};
    if (static_cast<int64_t>(shared) * spec.moe_intermediate_size > config::kMaxDim) {
      return cfg.FieldError("n_shared_experts", "times moe_intermediate_size is above the supported width");
    }
  }
  MOED_RETURN_IF_ERROR(ParseRouter(cfg, spec));
  // Dense layers: the first first_k_dense_replace, then every layer l with l % moe_layer_freq != 0 (hub code).
  MOED_ASSIGN_OR_RETURN(int first_dense, config::NonNegativeIntOr(cfg, "first_k_dense_replace", 0, config::kMaxLayers));
  MOED_ASSIGN_OR_RETURN(int freq, PositiveIntOr(cfg, "moe_layer_freq", 1, config::kMaxLayers));
  spec.layer_is_moe.assign(spec.num_layers, false);
  for (int l = 0; l < spec.num_layers; ++l) spec.layer_is_moe[l] = l >= first_dense && l % freq == 0;
  return absl::OkStatus();
}

absl::Status BindLayer(const WeightBinder& b, const ModelSpec& spec, int l, const std::string& p, LayerWeights& w) {
  const AttentionSpec& a = spec.attention;
  const int64_t H = spec.hidden_size, Q = a.q_dim(), C = a.kv_lora_rank;
  const std::string s = p + "self_attn.";
  for (const char* proj : {"q_a_proj", "q_proj", "kv_a_proj_with_mqa", "o_proj"}) {
    if (b.Has(Concat(s, proj, ".weight_scale_inv"))) {
      return absl::UnimplementedError(Concat("tensor '", s, proj, ".weight_scale_inv': FP8 block-scaled checkpoints "
                                             "are not supported; convert the weights to bf16 first"));
    }
  }
  if (a.q_lora_rank > 0) {
    MOED_ASSIGN_OR_RETURN(w.q_a_proj, b.Get(s + "q_a_proj.weight", {a.q_lora_rank, H}));
    MOED_ASSIGN_OR_RETURN(w.q_a_norm, b.Get(s + "q_a_layernorm.weight", {a.q_lora_rank}));
    MOED_ASSIGN_OR_RETURN(w.q_b_proj, b.Get(s + "q_b_proj.weight", {Q, a.q_lora_rank}));
  } else {
    MOED_ASSIGN_OR_RETURN(w.q_proj, b.Get(s + "q_proj.weight", {Q, H}));
  }
  MOED_ASSIGN_OR_RETURN(w.kv_a_proj, b.Get(s + "kv_a_proj_with_mqa.weight", {C + a.rope.dim, H}));
  MOED_ASSIGN_OR_RETURN(w.kv_a_norm, b.Get(s + "kv_a_layernorm.weight", {C}));
  const int64_t kv_b_rows = static_cast<int64_t>(a.num_heads) * (a.nope_dim() + a.v_head_dim);
  MOED_ASSIGN_OR_RETURN(w.kv_b_proj, b.Get(s + "kv_b_proj.weight", {kv_b_rows, C}));
  MOED_ASSIGN_OR_RETURN(w.o_proj, b.Get(s + "o_proj.weight", {H, a.o_dim()}));

  const std::string m = p + "mlp.";
  if (!spec.layer_is_moe[l]) {
    MOED_ASSIGN_OR_RETURN(w.dense_mlp, b.Ffn(m, H, spec.dense_intermediate_size));
    return absl::OkStatus();
  }
  MOED_ASSIGN_OR_RETURN(w.router, b.Get(m + "gate.weight", {spec.num_experts, H}));
  if (spec.router.selection_bias) {
    MOED_ASSIGN_OR_RETURN(w.router_bias, b.Get(m + "gate.e_score_correction_bias", {spec.num_experts}));
  }
  MOED_ASSIGN_OR_RETURN(w.experts, BindExperts(b, spec, m, /*mixtral_names=*/false));
  if (spec.shared_experts.count > 0) {
    MOED_ASSIGN_OR_RETURN(w.shared_expert, b.Ffn(m + "shared_experts.", H, spec.shared_experts.intermediate_size));
  }
  return absl::OkStatus();
}

}  // namespace

const FamilyDef kDeepseekV2Family = {Family::kDeepseekV2, "deepseek_v2", 1e4, 1e-6, Parse, BindLayer};
const FamilyDef kDeepseekV3Family = {Family::kDeepseekV3, "deepseek_v3", 1e4, 1e-6, Parse, BindLayer};

}  // namespace moed
