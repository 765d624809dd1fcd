// FastPath: weight views and checks at start-up (through ForEachLayerWeight), then attention (fast linear +
// vectorised paged attention) and MoE / dense MLP (RunFfnJobs) per layer, and the lm_head.
#include "engine/backend/cpu/fast_path.h"

#include <cmath>
#include <string>

#include "absl/strings/str_format.h"
#include "engine/backend/cpu/kernels/attention_fast.h"
#include "engine/backend/cpu/ops.h"
#include "engine/common/status_macros.h"
#include "engine/moe/router.h"

namespace moed::cpu {
namespace {

// A view of `t`, checked to hold the `shape` the spec needs ((n) vectors become 1 × n).
absl::StatusOr<WeightMatrix> Matrix(const TensorView& t, const std::vector<int64_t>& shape, const std::string& what) {
  const int64_t rows = shape.size() == 2 ? shape[0] : 1;
  const int64_t cols = shape.back();
  if (!t.present()) return absl::InvalidArgumentError(absl::StrFormat("weight %s (%s) is missing", what, t.name));
  if (t.numel() != rows * cols) {
    return absl::InvalidArgumentError(absl::StrFormat("weight %s (%s) has %d elements, expected %d × %d", what,
                                                      t.name, t.numel(), rows, cols));
  }
  return WeightMatrix{t.data, t.dtype, rows, cols};
}

std::vector<float> Widen(const WeightMatrix& m) {
  std::vector<float> out;
  if (!m.present()) return out;
  out.resize(m.rows * m.cols);
  for (int64_t i = 0; i < m.rows * m.cols; ++i) out[i] = LoadAsFloat(m.data, m.dtype, i);
  return out;
}

const float* Ptr(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }

}  // namespace

KernelConfig FastKernelConfig() { return {ActiveIsa(), /*bf16_dot_min_rows=*/0}; }
KernelConfig Bf16ExpertKernelConfig() { return {ActiveIsa(), /*bf16_dot_min_rows=*/1}; }

absl::StatusOr<std::unique_ptr<FastPath>> FastPath::Create(std::shared_ptr<const Model> model, const KernelConfig& cfg,
                                                           const KernelConfig& expert_cfg) {
  const ModelSpec& s = model->spec;
  const AttentionSpec& a = s.attention;
  if (static_cast<int>(model->weights.layers.size()) != s.num_layers ||
      static_cast<int>(s.layer_is_moe.size()) != s.num_layers) {
    return absl::InvalidArgumentError(absl::StrFormat("%s: %d layer weight sets and %d layer kinds, spec says %d",
                                                      model->source, model->weights.layers.size(),
                                                      s.layer_is_moe.size(), s.num_layers));
  }
  const int64_t H = s.hidden_size;
  std::unique_ptr<FastPath> fp(new FastPath(model, cfg, expert_cfg));
  const ModelWeights& w = model->weights;
  MOED_ASSIGN_OR_RETURN(fp->embed_, Matrix(w.embed, {s.vocab_size, H}, "embed_tokens"));
  MOED_ASSIGN_OR_RETURN(fp->lm_head_, Matrix(w.lm_head.present() ? w.lm_head : w.embed, {s.vocab_size, H}, "lm_head"));
  MOED_ASSIGN_OR_RETURN(WeightMatrix final_norm, Matrix(w.final_norm, {H}, "norm"));
  fp->final_norm_ = Widen(final_norm);
  fp->layers_.resize(s.num_layers);
  auto bind = [](const TensorView& src, WeightMatrix& dst, const WeightSlot& slot) -> absl::Status {
    MOED_ASSIGN_OR_RETURN(dst, Matrix(src, slot.shape, slot.what));
    return absl::OkStatus();
  };
  for (int l = 0; l < s.num_layers; ++l) {
    Layer& L = fp->layers_[l];
    L.fast = a.kind == AttentionKind::kGqa;
    if (!L.fast) continue;
    MOED_RETURN_IF_ERROR(ForEachLayerWeight(s, l, w.layers[l], L.w, bind));
    L.input_norm = Widen(L.w.input_norm);
    L.post_attn_norm = Widen(L.w.post_attn_norm);
    L.q_bias = Widen(L.w.q_bias);
    L.k_bias = Widen(L.w.k_bias);
    L.v_bias = Widen(L.w.v_bias);
    L.q_norm = Widen(L.w.q_norm);
    L.k_norm = Widen(L.w.k_norm);
    L.router_bias = Widen(L.w.router_bias);
    L.shared_gate = Widen(L.w.shared_expert_gate);
  }
  return fp;
}

void FastPath::Embed(int32_t id, float* dst) const {
  const int64_t h = embed_.cols;
  for (int64_t i = 0; i < h; ++i) dst[i] = LoadAsFloat(embed_.data, embed_.dtype, static_cast<int64_t>(id) * h + i);
}

void FastPath::RunMlp(int l, int64_t rows, const float* h, float capacity_factor, float* x, StepOutput* out,
                      std::vector<int32_t>& row_experts, std::vector<float>& weights, ThreadPool* pool) const {
  const ModelSpec& s = model_->spec;
  const Layer& L = layers_[l];
  const int64_t hidden = s.hidden_size;
  std::vector<float> y(rows * hidden, 0.0f);
  if (s.mlp_kind(l) == MlpKind::kDense) {
    RunFfnJobs(cfg_, {FfnJob{&L.w.dense_mlp, h, rows, y.data()}}, hidden, pool);
  } else {
    const int E = s.num_experts, k = s.top_k;
    std::vector<float> logits(rows * E);
    weights.resize(rows * k);
    row_experts.resize(rows * k);
    std::vector<uint8_t> kept(rows * k);
    // The router keeps x in fp32 like every fast product: top-k picks match the reference's but for near-ties.
    Linear(cfg_, h, rows, L.w.router, nullptr, logits.data(), nullptr);
    RouteTopK(logits.data(), static_cast<int>(rows), E, k, s.router, Ptr(L.router_bias), row_experts.data(),
              weights.data());
    const int64_t capacity = ExpertCapacity(capacity_factor, rows * k, E);
    ApplyCapacity(row_experts.data(), rows * k, E, capacity, kept.data(), out->routed.data() + l * E,
                  out->dropped.data() + l * E);
    RunRoutedExpertsFast(expert_cfg_, L.w.experts, h, static_cast<int>(rows), hidden, row_experts.data(),
                         weights.data(), kept.data(), k, y.data(), pool);
    if (L.w.shared_expert.width > 0) {
      std::vector<float> shared(rows * hidden);
      RunFfnJobs(cfg_, {FfnJob{&L.w.shared_expert, h, rows, shared.data()}}, hidden, pool);
      AddSharedExpert(h, shared.data(), s.shared_experts.gated ? L.shared_gate.data() : nullptr, rows, hidden,
                      y.data());
    }
  }
  for (int64_t i = 0; i < rows * hidden; ++i) x[i] += y[i];
}

void FastPath::RunLayer(int l, const std::vector<QueryRow>& rows, const KvLayerView& kv,
                        const std::vector<float>& inv_freq, float capacity_factor, std::vector<float>& x,
                        StepOutput* out, std::vector<int32_t>& row_experts, std::vector<float>& row_weights,
                        ThreadPool* pool) const {
  const ModelSpec& s = model_->spec;
  const AttentionSpec& a = s.attention;
  const Layer& L = layers_[l];
  const int64_t n = static_cast<int64_t>(rows.size());
  const int64_t hidden = s.hidden_size, qd = a.q_dim(), kvd = a.kv_dim();
  const float eps = s.rms_norm_eps;

  std::vector<float> h(n * hidden), q(n * qd), k(n * kvd), v(n * kvd), attn(n * a.o_dim());
  RmsNormTo(x.data(), n, hidden, L.input_norm.data(), eps, h.data());
  Linear(cfg_, h.data(), n, L.w.q_proj, Ptr(L.q_bias), q.data(), pool);
  Linear(cfg_, h.data(), n, L.w.k_proj, Ptr(L.k_bias), k.data(), pool);
  Linear(cfg_, h.data(), n, L.w.v_proj, Ptr(L.v_bias), v.data(), pool);
  NormAndRotateQk(a, L.q_norm.data(), L.k_norm.data(), eps, inv_freq, rows, q.data(), k.data());
  WriteKv(kv, rows, k.data(), v.data());
  PagedAttentionFast(cfg_.isa, kv, rows, q.data(), a.num_heads, a.sliding_window, a.softmax_scale, attn.data(), pool);
  std::vector<float> o(n * hidden);
  Linear(cfg_, attn.data(), n, L.w.o_proj, nullptr, o.data(), pool);
  for (int64_t i = 0; i < n * hidden; ++i) x[i] += o[i];

  RmsNormTo(x.data(), n, hidden, L.post_attn_norm.data(), eps, h.data());
  RunMlp(l, n, h.data(), capacity_factor, x.data(), out, row_experts, row_weights, pool);
}

void FastPath::Logits(float* last, int64_t m, float* logits, ThreadPool* pool) const {
  RmsNorm(last, m, embed_.cols, final_norm_.data(), model_->spec.rms_norm_eps);
  Linear(cfg_, last, m, lm_head_, nullptr, logits, pool);
}

}  // namespace moed::cpu
