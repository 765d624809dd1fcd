// LoadModel: binds ModelWeights from a checkpoint's hub key names, checking presence and exact shapes.
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/common/str_cat.h"
#include "engine/common/status_macros.h"
#include "engine/model/checkpoint.h"
#include "engine/model/model.h"

namespace moed {
namespace {

using Shape = std::vector<int64_t>;

// Looks tensors up by name and checks their shapes; copies of misaligned tensors go to `storage`.
class WeightBinder {
 public:
  WeightBinder(const Checkpoint& ckpt, std::vector<std::shared_ptr<const void>>& storage)
      : ckpt_(ckpt), storage_(storage) {}

  bool Has(const std::string& name) const { return ckpt_.Find(name).has_value(); }

  absl::StatusOr<TensorView> Get(const std::string& name, const Shape& shape) const {
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

  // `gate`, `up` and `down` projections of one SwiGLU FFN of width `ffn`.
  absl::StatusOr<FfnWeights> Ffn(const std::string& gate, const std::string& up, const std::string& down,
                                 int64_t hidden, int64_t ffn) const {
    FfnWeights w;
    MOED_ASSIGN_OR_RETURN(w.gate, Get(gate, {ffn, hidden}));
    MOED_ASSIGN_OR_RETURN(w.up, Get(up, {ffn, hidden}));
    MOED_ASSIGN_OR_RETURN(w.down, Get(down, {hidden, ffn}));
    return w;
  }

 private:
  const Checkpoint& ckpt_;
  std::vector<std::shared_ptr<const void>>& storage_;
};

// Rows [row0, row0 + rows) of matrix `m` of a stacked (E, R, C) tensor, as an (rows, C) view.
TensorView Slice(const TensorView& t, int64_t e, int64_t row0, int64_t rows, std::string_view part) {
  TensorView v;
  v.name = Concat(t.name, "[", e, "].", part);
  v.dtype = t.dtype;
  v.shape = {rows, t.shape[2]};
  const int64_t offset = (e * t.shape[1] + row0) * t.shape[2] * DTypeSize(t.dtype);
  v.data = static_cast<const uint8_t*>(t.data) + offset;
  return v;
}

// Experts of one MoE layer. Per-expert keys `<prefix>experts.<e>.<gate|up|down>.weight`, or the fused
// transformers-5 layout: `<prefix>experts.gate_up_proj` (E, 2*ffn, hidden) with gate in the first ffn
// rows of each expert and up in the next, and `<prefix>experts.down_proj` (E, hidden, ffn).
absl::StatusOr<std::vector<FfnWeights>> BindExperts(const WeightBinder& b, const ModelSpec& spec,
                                                    const std::string& prefix, bool mixtral_names) {
  const int64_t E = spec.num_experts, H = spec.hidden_size, F = spec.moe_intermediate_size;
  std::vector<FfnWeights> experts(E);
  const std::string fused_gate_up = prefix + "experts.gate_up_proj";
  if (!mixtral_names && b.Has(fused_gate_up)) {
    MOED_ASSIGN_OR_RETURN(TensorView gate_up, b.Get(fused_gate_up, {E, 2 * F, H}));
    MOED_ASSIGN_OR_RETURN(TensorView down, b.Get(prefix + "experts.down_proj", {E, H, F}));
    for (int64_t e = 0; e < E; ++e) {
      experts[e].gate = Slice(gate_up, e, 0, F, "gate");
      experts[e].up = Slice(gate_up, e, F, F, "up");
      experts[e].down = Slice(down, e, 0, H, "down");
    }
    return experts;
  }
  for (int64_t e = 0; e < E; ++e) {
    const std::string p = Concat(prefix, "experts.", e, ".");
    if (mixtral_names) {
      MOED_ASSIGN_OR_RETURN(experts[e], b.Ffn(p + "w1.weight", p + "w3.weight", p + "w2.weight", H, F));
    } else {
      MOED_ASSIGN_OR_RETURN(experts[e],
                            b.Ffn(p + "gate_proj.weight", p + "up_proj.weight", p + "down_proj.weight", H, F));
    }
  }
  return experts;
}

absl::Status BindAttention(const WeightBinder& b, const ModelSpec& spec, const std::string& p, LayerWeights& w) {
  const int64_t H = spec.hidden_size, Q = spec.q_dim(), KV = spec.kv_dim();
  MOED_ASSIGN_OR_RETURN(w.input_norm, b.Get(p + "input_layernorm.weight", {H}));
  MOED_ASSIGN_OR_RETURN(w.post_attn_norm, b.Get(p + "post_attention_layernorm.weight", {H}));
  MOED_ASSIGN_OR_RETURN(w.q_proj, b.Get(p + "self_attn.q_proj.weight", {Q, H}));
  MOED_ASSIGN_OR_RETURN(w.k_proj, b.Get(p + "self_attn.k_proj.weight", {KV, H}));
  MOED_ASSIGN_OR_RETURN(w.v_proj, b.Get(p + "self_attn.v_proj.weight", {KV, H}));
  MOED_ASSIGN_OR_RETURN(w.o_proj, b.Get(p + "self_attn.o_proj.weight", {H, Q}));
  if (spec.qkv_bias) {
    MOED_ASSIGN_OR_RETURN(w.q_bias, b.Get(p + "self_attn.q_proj.bias", {Q}));
    MOED_ASSIGN_OR_RETURN(w.k_bias, b.Get(p + "self_attn.k_proj.bias", {KV}));
    MOED_ASSIGN_OR_RETURN(w.v_bias, b.Get(p + "self_attn.v_proj.bias", {KV}));
  }
  if (spec.qk_norm == QkNorm::kNone) return absl::OkStatus();
  const bool per_head = spec.qk_norm == QkNorm::kPerHead;
  MOED_ASSIGN_OR_RETURN(w.q_norm, b.Get(p + "self_attn.q_norm.weight", {per_head ? spec.head_dim : Q}));
  MOED_ASSIGN_OR_RETURN(w.k_norm, b.Get(p + "self_attn.k_norm.weight", {per_head ? spec.head_dim : KV}));
  return absl::OkStatus();
}

absl::Status BindFfn(const WeightBinder& b, const ModelSpec& spec, int layer, const std::string& p, LayerWeights& w) {
  const int64_t H = spec.hidden_size, E = spec.num_experts;
  if (!spec.layer_is_moe[layer]) {
    MOED_ASSIGN_OR_RETURN(w.dense_mlp, b.Ffn(p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight",
                                             p + "mlp.down_proj.weight", H, spec.dense_intermediate_size));
    return absl::OkStatus();
  }
  // Mixtral hub checkpoints use block_sparse_moe.* with w1/w3/w2; transformers 5 may write mlp.*.
  const bool mixtral_names = spec.family == Family::kMixtral && !b.Has(p + "mlp.gate.weight");
  const std::string moe = mixtral_names ? p + "block_sparse_moe." : p + "mlp.";
  MOED_ASSIGN_OR_RETURN(w.router, b.Get(moe + "gate.weight", {E, H}));
  MOED_ASSIGN_OR_RETURN(w.experts, BindExperts(b, spec, moe, mixtral_names));
  if (spec.shared_expert_intermediate_size > 0) {
    const std::string s = moe + "shared_expert.";
    MOED_ASSIGN_OR_RETURN(w.shared_expert, b.Ffn(s + "gate_proj.weight", s + "up_proj.weight", s + "down_proj.weight",
                                                 H, spec.shared_expert_intermediate_size));
    MOED_ASSIGN_OR_RETURN(w.shared_expert_gate, b.Get(moe + "shared_expert_gate.weight", {1, H}));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Model>> LoadModel(const std::string& model_dir) {
  auto model = std::make_shared<Model>();
  model->source = model_dir;
  MOED_ASSIGN_OR_RETURN(model->spec, LoadModelSpec(model_dir));
  MOED_ASSIGN_OR_RETURN(Checkpoint ckpt, Checkpoint::Open(model_dir));
  model->storage = ckpt.Mappings();

  const ModelSpec& spec = model->spec;
  const WeightBinder b(ckpt, model->storage);
  const int64_t V = spec.vocab_size, H = spec.hidden_size;
  ModelWeights& w = model->weights;
  MOED_ASSIGN_OR_RETURN(w.embed, b.Get("model.embed_tokens.weight", {V, H}));
  MOED_ASSIGN_OR_RETURN(w.final_norm, b.Get("model.norm.weight", {H}));
  if (spec.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    MOED_ASSIGN_OR_RETURN(w.lm_head, b.Get("lm_head.weight", {V, H}));
  }
  w.layers.resize(spec.num_layers);
  for (int l = 0; l < spec.num_layers; ++l) {
    const std::string p = Concat("model.layers.", l, ".");
    MOED_RETURN_IF_ERROR(BindAttention(b, spec, p, w.layers[l]));
    MOED_RETURN_IF_ERROR(BindFfn(b, spec, l, p, w.layers[l]));
  }
  return std::shared_ptr<const Model>(std::move(model));
}

}  // namespace moed
