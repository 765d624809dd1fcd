// Weight upload: a planning pass sizes the arena, a second pass copies or generates each tensor into it.
#include "engine/backend/cuda/cuda_weights.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/synthetic_fill.h"
#include "engine/common/status_macros.h"
#include "engine/model/dtype.h"
#include "engine/model/synthetic_model.h"

namespace moed::cuda {
namespace {

constexpr int64_t kAlign = 256;

// Places tensors in the arena. With base == nullptr it only measures; otherwise it copies.
class Placer {
 public:
  Placer(const Model& model, char* base, cudaStream_t stream) : model_(model), base_(base), stream_(stream) {}

  // Places `t` (which must have `numel` elements when present or synthetic). `align`: start a new 256-byte-aligned
  // slot (false: directly after the previous tensor, for concatenations).
  absl::StatusOr<const bf16*> Place(const TensorView& t, int64_t numel, bool align = true) {
    if (t.present() && t.numel() != numel) {
      return absl::InvalidArgumentError(absl::StrFormat("tensor '%s': %d elements, expected %d", t.name, t.numel(),
                                                        numel));
    }
    if (align) offset_ = (offset_ + kAlign - 1) / kAlign * kAlign;
    bf16* dst = reinterpret_cast<bf16*>(base_ + offset_);
    offset_ += numel * static_cast<int64_t>(sizeof(bf16));
    if (base_ == nullptr) return static_cast<const bf16*>(nullptr);
    MOED_RETURN_IF_ERROR(Fill(t, numel, dst));
    return static_cast<const bf16*>(dst);
  }

  // Optional tensors: absent and not synthetic-generated → null.
  absl::StatusOr<const bf16*> PlaceOptional(const TensorView& t, int64_t numel) {
    if (!t.present() && t.name.empty()) return static_cast<const bf16*>(nullptr);
    return Place(t, numel);
  }

  int64_t bytes() const { return offset_; }

 private:
  absl::Status Fill(const TensorView& t, int64_t numel, bf16* dst) {
    if (!t.present()) {
      if (!absl::StartsWith(model_.source, "synthetic:")) {
        return absl::NotFoundError(absl::StrFormat("model '%s': weight '%s' is missing", model_.source,
                                                   t.name.empty() ? "(unnamed)" : t.name));
      }
      MOED_ASSIGN_OR_RETURN(const SyntheticFill f, SyntheticTensorFill(model_, t));
      return CudaStatus(LaunchSyntheticFill(dst, numel, f.seed, f.scale, stream_), "synthetic fill of " + t.name);
    }
    const void* src = t.data;
    if (t.dtype != DType::kBF16) {
      staging_.resize(numel);
      for (int64_t i = 0; i < numel; ++i) staging_[i] = FloatToBf16(t.at(i));
      src = staging_.data();
    }
    return CudaStatus(cudaMemcpy(dst, src, numel * sizeof(bf16), cudaMemcpyHostToDevice), "upload of " + t.name);
  }

  const Model& model_;
  char* base_;
  cudaStream_t stream_;
  int64_t offset_ = 0;
  std::vector<uint16_t> staging_;
};

absl::StatusOr<DeviceFfn> PlaceFfn(Placer& p, const FfnWeights& f, int64_t hidden, int64_t ffn) {
  DeviceFfn d;
  d.ffn = static_cast<int>(ffn);
  MOED_ASSIGN_OR_RETURN(d.gate_up, p.Place(f.gate, ffn * hidden));
  MOED_ASSIGN_OR_RETURN(const bf16* up, p.Place(f.up, ffn * hidden, /*align=*/false));
  (void)up;
  MOED_ASSIGN_OR_RETURN(d.down, p.Place(f.down, hidden * ffn));
  return d;
}

// Lays out (base == nullptr) or uploads the whole model into `w`.
absl::Status PlaceAll(Placer& p, const Model& m, DeviceWeights* w) {
  const ModelSpec& s = m.spec;
  const int64_t H = s.hidden_size, V = s.vocab_size;
  MOED_ASSIGN_OR_RETURN(w->embed, p.Place(m.weights.embed, V * H));
  MOED_ASSIGN_OR_RETURN(w->final_norm, p.Place(m.weights.final_norm, H));
  const bool tied = m.weights.lm_head.data == m.weights.embed.data && m.weights.embed.present();
  if (tied || (!m.weights.lm_head.present() && m.weights.lm_head.name.empty())) {
    w->lm_head = w->embed;
  } else {
    MOED_ASSIGN_OR_RETURN(w->lm_head, p.Place(m.weights.lm_head, V * H));
  }
  w->layers.resize(s.num_layers);
  for (int l = 0; l < s.num_layers; ++l) {
    const LayerWeights& lw = m.weights.layers[l];
    DeviceLayer& d = w->layers[l];
    const int64_t qd = s.attention.q_dim(), kvd = s.attention.kv_dim();
    MOED_ASSIGN_OR_RETURN(d.input_norm, p.Place(lw.input_norm, H));
    MOED_ASSIGN_OR_RETURN(d.qkv, p.Place(lw.q_proj, qd * H));
    MOED_RETURN_IF_ERROR(p.Place(lw.k_proj, kvd * H, false).status());
    MOED_RETURN_IF_ERROR(p.Place(lw.v_proj, kvd * H, false).status());
    MOED_ASSIGN_OR_RETURN(d.o_proj, p.Place(lw.o_proj, H * qd));
    MOED_ASSIGN_OR_RETURN(d.post_attn_norm, p.Place(lw.post_attn_norm, H));
    if (s.attention.qkv_bias) {
      MOED_ASSIGN_OR_RETURN(d.q_bias, p.Place(lw.q_bias, qd));
      MOED_ASSIGN_OR_RETURN(d.k_bias, p.Place(lw.k_bias, kvd));
      MOED_ASSIGN_OR_RETURN(d.v_bias, p.Place(lw.v_bias, kvd));
    }
    if (s.attention.qk_norm != QkNorm::kNone) {
      const bool full = s.attention.qk_norm == QkNorm::kFull;
      MOED_ASSIGN_OR_RETURN(d.q_norm, p.Place(lw.q_norm, full ? qd : s.attention.head_dim));
      MOED_ASSIGN_OR_RETURN(d.k_norm, p.Place(lw.k_norm, full ? kvd : s.attention.head_dim));
    }
    if (!s.layer_is_moe[l]) {
      MOED_ASSIGN_OR_RETURN(d.dense, PlaceFfn(p, lw.dense_mlp, H, s.dense_intermediate_size));
      continue;
    }
    MOED_ASSIGN_OR_RETURN(d.router, p.Place(lw.router, static_cast<int64_t>(s.num_experts) * H));
    if (static_cast<int>(lw.experts.size()) != s.num_experts) {
      return absl::InvalidArgumentError(absl::StrFormat("layer %d: %d experts, expected %d", l, lw.experts.size(),
                                                        s.num_experts));
    }
    for (const FfnWeights& f : lw.experts) {
      MOED_ASSIGN_OR_RETURN(DeviceFfn e, PlaceFfn(p, f, H, s.moe_intermediate_size));
      d.experts.push_back(e);
    }
    if (s.shared_experts.count > 0) {
      MOED_ASSIGN_OR_RETURN(d.shared_expert, PlaceFfn(p, lw.shared_expert, H, s.shared_experts.intermediate_size));
      MOED_ASSIGN_OR_RETURN(d.shared_expert_gate, p.PlaceOptional(lw.shared_expert_gate, H));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<DeviceWeights>> UploadWeights(const Model& model, cudaStream_t stream) {
  if (static_cast<int>(model.spec.layer_is_moe.size()) != model.spec.num_layers ||
      static_cast<int>(model.weights.layers.size()) != model.spec.num_layers) {
    return absl::InvalidArgumentError(absl::StrFormat("model '%s': %d layer weights / %d layer kinds for %d layers",
                                                      model.source, model.weights.layers.size(),
                                                      model.spec.layer_is_moe.size(), model.spec.num_layers));
  }
  auto w = std::make_unique<DeviceWeights>();
  Placer measure(model, nullptr, stream);
  MOED_RETURN_IF_ERROR(PlaceAll(measure, model, w.get()));
  w->bytes = measure.bytes();
  size_t free_b = 0, total_b = 0;
  MOED_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_b, &total_b));
  if (static_cast<size_t>(w->bytes) > free_b) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "model '%s' needs %.2f GiB of GPU memory for its bf16 weights; %.2f GiB free of %.2f GiB", model.source,
        w->bytes / 1073741824.0, free_b / 1073741824.0, total_b / 1073741824.0));
  }
  MOED_RETURN_IF_ERROR(w->arena.Reserve(w->bytes, "model weights"));
  w->layers.clear();
  Placer copy(model, w->arena.as<char>(), stream);
  MOED_RETURN_IF_ERROR(PlaceAll(copy, model, w.get()));
  MOED_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return w;
}

}  // namespace moed::cuda
