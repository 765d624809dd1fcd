// Tensor lookup with shape checks, and the weight bindings shared by several families.
#include "engine/model/weight_binder.h"

#include "absl/status/status.h"
#include "engine/common/status_macros.h"
#include "engine/common/str_cat.h"

namespace moed {
namespace {

// Rows [row0, row0 + rows) of matrix `e` of a stacked (E, R, C) tensor, as an (rows, C) view.
TensorView Slice(const TensorView& t, int64_t e, int64_t row0, int64_t rows, std::string_view part) {
  TensorView v;
  v.name = Concat(t.name, "[", e, "].", part);
  v.dtype = t.dtype;
  v.shape = {rows, t.shape[2]};
  const int64_t offset = (e * t.shape[1] + row0) * t.shape[2] * DTypeSize(t.dtype);
  v.data = static_cast<const uint8_t*>(t.data) + offset;
  return v;
}

}  // namespace

absl::StatusOr<TensorView> WeightBinder::Get(const std::string& name, const Shape& shape) const {
  std::optional<Checkpoint::Located> t = ckpt_.Find(name);
  if (!t) {
    return absl::NotFoundError(Concat(ckpt_.source(), ": tensor '", name, "' is missing (expected shape ",
                                      ShapeString(shape), ")"));
  }
  if (t->entry->shape != shape) {
    return absl::InvalidArgumentError(Concat(t->file->path(), ": tensor '", name, "': expected shape ",
                                             ShapeString(shape), ", found ", ShapeString(t->entry->shape)));
  }
  return ckpt_.View(*t, storage_);
}

absl::StatusOr<FfnWeights> WeightBinder::Ffn(const std::string& gate, const std::string& up, const std::string& down,
                                             int64_t hidden, int64_t ffn) const {
  FfnWeights w;
  w.width = static_cast<int>(ffn);
  MOED_ASSIGN_OR_RETURN(w.gate, Get(gate, {ffn, hidden}));
  MOED_ASSIGN_OR_RETURN(w.up, Get(up, {ffn, hidden}));
  MOED_ASSIGN_OR_RETURN(w.down, Get(down, {hidden, ffn}));
  return w;
}

absl::Status BindLayerNorms(const WeightBinder& b, const ModelSpec& spec, const std::string& p, LayerWeights& w) {
  const int64_t H = spec.hidden_size;
  MOED_ASSIGN_OR_RETURN(w.input_norm, b.Get(p + "input_layernorm.weight", {H}));
  MOED_ASSIGN_OR_RETURN(w.post_attn_norm, b.Get(p + "post_attention_layernorm.weight", {H}));
  return absl::OkStatus();
}

absl::Status BindGqaAttention(const WeightBinder& b, const ModelSpec& spec, const std::string& p, LayerWeights& w) {
  const AttentionSpec& a = spec.attention;
  const int64_t H = spec.hidden_size, Q = a.q_dim(), KV = a.kv_dim();
  MOED_ASSIGN_OR_RETURN(w.q_proj, b.Get(p + "self_attn.q_proj.weight", {Q, H}));
  MOED_ASSIGN_OR_RETURN(w.k_proj, b.Get(p + "self_attn.k_proj.weight", {KV, H}));
  MOED_ASSIGN_OR_RETURN(w.v_proj, b.Get(p + "self_attn.v_proj.weight", {KV, H}));
  MOED_ASSIGN_OR_RETURN(w.o_proj, b.Get(p + "self_attn.o_proj.weight", {H, a.o_dim()}));
  if (a.qkv_bias) {
    MOED_ASSIGN_OR_RETURN(w.q_bias, b.Get(p + "self_attn.q_proj.bias", {Q}));
    MOED_ASSIGN_OR_RETURN(w.k_bias, b.Get(p + "self_attn.k_proj.bias", {KV}));
    MOED_ASSIGN_OR_RETURN(w.v_bias, b.Get(p + "self_attn.v_proj.bias", {KV}));
  }
  if (a.qk_norm == QkNorm::kNone) return absl::OkStatus();
  const bool per_head = a.qk_norm == QkNorm::kPerHead;
  MOED_ASSIGN_OR_RETURN(w.q_norm, b.Get(p + "self_attn.q_norm.weight", {per_head ? a.head_dim : Q}));
  MOED_ASSIGN_OR_RETURN(w.k_norm, b.Get(p + "self_attn.k_norm.weight", {per_head ? a.head_dim : KV}));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<FfnWeights>> BindExperts(const WeightBinder& b, const ModelSpec& spec,
                                                    const std::string& moe, bool mixtral_names) {
  const int64_t E = spec.num_experts, H = spec.hidden_size, F = spec.moe_intermediate_size;
  std::vector<FfnWeights> experts(E);
  const std::string fused_gate_up = moe + "experts.gate_up_proj";
  if (!mixtral_names && b.Has(fused_gate_up)) {
    MOED_ASSIGN_OR_RETURN(TensorView gate_up, b.Get(fused_gate_up, {E, 2 * F, H}));
    MOED_ASSIGN_OR_RETURN(TensorView down, b.Get(moe + "experts.down_proj", {E, H, F}));
    for (int64_t e = 0; e < E; ++e) {
      experts[e].gate = Slice(gate_up, e, 0, F, "gate");
      experts[e].up = Slice(gate_up, e, F, F, "up");
      experts[e].down = Slice(down, e, 0, H, "down");
      experts[e].width = static_cast<int>(F);
    }
    return experts;
  }
  for (int64_t e = 0; e < E; ++e) {
    const std::string p = Concat(moe, "experts.", e, ".");
    if (mixtral_names) {
      MOED_ASSIGN_OR_RETURN(experts[e], b.Ffn(p + "w1.weight", p + "w3.weight", p + "w2.weight", H, F));
    } else {
      MOED_ASSIGN_OR_RETURN(experts[e], b.Ffn(p, H, F));
    }
  }
  return experts;
}

}  // namespace moed
