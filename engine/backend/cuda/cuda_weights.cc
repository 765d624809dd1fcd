// Weight upload: a planning pass sizes the arena, a second pass copies (pinned, on the backend's stream) or
// generates each tensor into it.
#include "engine/backend/cuda/cuda_weights.h"

#include <algorithm>
#include <cstring>
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
constexpr size_t kStagingChunk = size_t{64} << 20;  // bytes per pinned staging buffer (two of them)

// Host→device copies of the weights on the backend's stream, through two pinned staging buffers used in turn:
// the host fills one (converting to bf16) while the previous chunk's copy is in flight. Tensors that are adjacent in
// the arena share a chunk (a chunk covers a contiguous arena range, alignment gaps included, so small tensors go in
// large copies). Owns its buffers; waits for its copies before they are freed.
class StagedUploader {
 public:
  StagedUploader(char* arena, cudaStream_t stream, size_t chunk) : arena_(arena), stream_(stream), chunk_(chunk) {}
  ~StagedUploader() {
    (void)cudaStreamSynchronize(stream_);  // no copy may read a staging buffer after it is freed
    for (cudaEvent_t e : done_) {
      if (e != nullptr) (void)cudaEventDestroy(e);
    }
  }
  StagedUploader(const StagedUploader&) = delete;
  StagedUploader& operator=(const StagedUploader&) = delete;

  // Copies `t` (present, `numel` elements) to arena offset `offset` (bytes).
  absl::Status Add(const TensorView& t, int64_t numel, int64_t offset) {
    const size_t bytes = static_cast<size_t>(numel) * sizeof(bf16);
    size_t done = 0;  // bytes of the tensor staged so far
    while (done < bytes) {
      const size_t at = static_cast<size_t>(offset) + done;
      if (used_ > 0 && (at < start_ || at - start_ >= chunk_)) MOED_RETURN_IF_ERROR(Flush());
      if (used_ == 0) {
        MOED_RETURN_IF_ERROR(Begin());
        start_ = at;
      }
      const size_t room = chunk_ - (at - start_);
      const size_t n = std::min(room, bytes - done);
      uint16_t* dst = reinterpret_cast<uint16_t*>(buf_[cur_].as<char>() + (at - start_));
      const int64_t first = static_cast<int64_t>(done / sizeof(bf16)), count = static_cast<int64_t>(n / sizeof(bf16));
      if (t.dtype == DType::kBF16) {
        std::memcpy(dst, static_cast<const char*>(t.data) + done, n);
      } else {
        for (int64_t i = 0; i < count; ++i) dst[i] = FloatToBf16(t.at(first + i));
      }
      used_ = at - start_ + n;
      done += n;
    }
    return absl::OkStatus();
  }

  // Copies what is staged. Call before anything else writes the arena on the stream (a synthetic fill inside the
  // current chunk's range would be overwritten by the chunk's gap bytes) and at the end.
  absl::Status Flush() {
    if (used_ == 0) return absl::OkStatus();
    MOED_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(arena_ + start_, buf_[cur_].as<char>(), used_, cudaMemcpyHostToDevice, stream_));
    MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(done_[cur_], stream_));
    cur_ ^= 1;
    used_ = 0;
    return absl::OkStatus();
  }

 private:
  // Makes buf_[cur_] writable: allocated, and its previous copy finished.
  absl::Status Begin() {
    if (done_[cur_] == nullptr) {
      MOED_CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&done_[cur_], cudaEventDisableTiming));
      MOED_CUDA_RETURN_IF_ERROR(cudaEventRecord(done_[cur_], stream_));
    }
    MOED_RETURN_IF_ERROR(buf_[cur_].Reserve(chunk_, "weight upload staging"));
    return CudaStatus(cudaEventSynchronize(done_[cur_]), "weight upload staging reuse");
  }

  char* arena_;
  cudaStream_t stream_;
  size_t chunk_;
  PinnedBuffer buf_[2];
  cudaEvent_t done_[2] = {nullptr, nullptr};
  int cur_ = 0;
  size_t start_ = 0;  // arena offset of the staged chunk
  size_t used_ = 0;   // bytes staged in buf_[cur_]
};

// Places tensors in the arena. With base == nullptr it only measures; otherwise it copies through `uploader`.
class Placer {
 public:
  Placer(const Model& model, char* base, cudaStream_t stream, StagedUploader* uploader)
      : model_(model), base_(base), stream_(stream), uploader_(uploader) {}

  // Places `t` (which must have `numel` elements when present or synthetic). `align`: start a new 256-byte-aligned
  // slot (false: directly after the previous tensor, for concatenations).
  absl::StatusOr<const bf16*> Place(const TensorView& t, int64_t numel, bool align = true) {
    if (t.present() && t.numel() != numel) {
      return absl::InvalidArgumentError(absl::StrFormat("tensor '%s': %d elements, expected %d", t.name, t.numel(),
                                                        numel));
    }
    if (align) offset_ = (offset_ + kAlign - 1) / kAlign * kAlign;
    const int64_t at = offset_;
    offset_ += numel * static_cast<int64_t>(sizeof(bf16));
    if (base_ == nullptr) return static_cast<const bf16*>(nullptr);
    MOED_RETURN_IF_ERROR(Fill(t, numel, at));
    return reinterpret_cast<const bf16*>(base_ + at);
  }

  // Optional tensors: absent and not synthetic-generated → null.
  absl::StatusOr<const bf16*> PlaceOptional(const TensorView& t, int64_t numel) {
    if (!t.present() && t.name.empty()) return static_cast<const bf16*>(nullptr);
    return Place(t, numel);
  }

  int64_t bytes() const { return offset_; }

 private:
  absl::Status Fill(const TensorView& t, int64_t numel, int64_t at) {
    if (t.present()) return uploader_->Add(t, numel, at);
    if (!absl::StartsWith(model_.source, "synthetic:")) {
      return absl::NotFoundError(absl::StrFormat("model '%s': weight '%s' is missing", model_.source,
                                                 t.name.empty() ? "(unnamed)" : t.name));
    }
    MOED_ASSIGN_OR_RETURN(const SyntheticFill f, SyntheticTensorFill(model_, t));
    MOED_RETURN_IF_ERROR(uploader_->Flush());
    return CudaStatus(LaunchSyntheticFill(reinterpret_cast<bf16*>(base_ + at), numel, f.seed, f.scale, stream_),
                      "synthetic fill of " + t.name);
  }

  const Model& model_;
  char* base_;
  cudaStream_t stream_;
  StagedUploader* uploader_;
  int64_t offset_ = 0;
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
    const int64_t qd = s.q_dim(), kvd = s.kv_dim();
    MOED_ASSIGN_OR_RETURN(d.input_norm, p.Place(lw.input_norm, H));
    MOED_ASSIGN_OR_RETURN(d.qkv, p.Place(lw.q_proj, qd * H));
    MOED_RETURN_IF_ERROR(p.Place(lw.k_proj, kvd * H, false).status());
    MOED_RETURN_IF_ERROR(p.Place(lw.v_proj, kvd * H, false).status());
    MOED_ASSIGN_OR_RETURN(d.o_proj, p.Place(lw.o_proj, H * qd));
    MOED_ASSIGN_OR_RETURN(d.post_attn_norm, p.Place(lw.post_attn_norm, H));
    if (s.qkv_bias) {
      MOED_ASSIGN_OR_RETURN(d.q_bias, p.Place(lw.q_bias, qd));
      MOED_ASSIGN_OR_RETURN(d.k_bias, p.Place(lw.k_bias, kvd));
      MOED_ASSIGN_OR_RETURN(d.v_bias, p.Place(lw.v_bias, kvd));
    }
    if (s.qk_norm != QkNorm::kNone) {
      const bool full = s.qk_norm == QkNorm::kFull;
      MOED_ASSIGN_OR_RETURN(d.q_norm, p.Place(lw.q_norm, full ? qd : s.head_dim));
      MOED_ASSIGN_OR_RETURN(d.k_norm, p.Place(lw.k_norm, full ? kvd : s.head_dim));
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
    if (s.shared_expert_intermediate_size > 0) {
      MOED_ASSIGN_OR_RETURN(d.shared_expert, PlaceFfn(p, lw.shared_expert, H, s.shared_expert_intermediate_size));
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
  Placer measure(model, nullptr, stream, nullptr);
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
  StagedUploader uploader(w->arena.as<char>(), stream, std::min<size_t>(kStagingChunk, w->bytes));
  Placer copy(model, w->arena.as<char>(), stream, &uploader);
  MOED_RETURN_IF_ERROR(PlaceAll(copy, model, w.get()));
  MOED_RETURN_IF_ERROR(uploader.Flush());
  MOED_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return w;
}

}  // namespace moed::cuda
