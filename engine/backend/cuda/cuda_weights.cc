// Weight upload: a planning pass sizes the arena, a second pass copies (pinned, on the backend's stream) or
// generates each tensor into it.
#include "engine/backend/cuda/cuda_weights.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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

// Lays out (base == nullptr) or uploads the whole model into `w`, layer tensors in ForEachLayerWeight's order: a
// tensor that follows_previous (k and v after q, up after gate) is placed right after it, so q|k|v and gate|up are
// each one matrix for one GEMM.
// routed_on_host: the routed experts are left out (null pointers; the expert cache's host tier holds them).
absl::Status PlaceAll(Placer& p, const Model& m, DeviceWeights* w, bool routed_on_host) {
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
  w->layers.assign(s.num_layers, DeviceLayer{});
  auto place = [&p, routed_on_host](const TensorView& src, const bf16*& dst, const WeightSlot& slot) -> absl::Status {
    if (routed_on_host && absl::StrContains(slot.what, ".experts.")) {
      dst = nullptr;
      return absl::OkStatus();
    }
    int64_t numel = 1;
    for (int64_t d : slot.shape) numel *= d;
    MOED_ASSIGN_OR_RETURN(dst, p.Place(src, numel, /*align=*/!slot.follows_previous));
    return absl::OkStatus();
  };
  for (int l = 0; l < s.num_layers; ++l) {
    MOED_RETURN_IF_ERROR(ForEachLayerWeight(s, l, m.weights.layers[l], w->layers[l], place));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<WeightBytes> MeasureWeights(const Model& model) {
  WeightBytes b;
  DeviceWeights scratch;
  Placer all(model, nullptr, nullptr, nullptr);
  MOED_RETURN_IF_ERROR(PlaceAll(all, model, &scratch, /*routed_on_host=*/false));
  Placer dense(model, nullptr, nullptr, nullptr);
  MOED_RETURN_IF_ERROR(PlaceAll(dense, model, &scratch, /*routed_on_host=*/true));
  b.dense = dense.bytes();
  b.routed = all.bytes() - dense.bytes();
  return b;
}

absl::StatusOr<std::unique_ptr<DeviceWeights>> UploadWeights(const Model& model, cudaStream_t stream,
                                                             bool routed_on_host) {
  if (static_cast<int>(model.spec.layer_is_moe.size()) != model.spec.num_layers ||
      static_cast<int>(model.weights.layers.size()) != model.spec.num_layers) {
    return absl::InvalidArgumentError(absl::StrFormat("model '%s': %d layer weights / %d layer kinds for %d layers",
                                                      model.source, model.weights.layers.size(),
                                                      model.spec.layer_is_moe.size(), model.spec.num_layers));
  }
  auto w = std::make_unique<DeviceWeights>();
  Placer measure(model, nullptr, stream, nullptr);
  MOED_RETURN_IF_ERROR(PlaceAll(measure, model, w.get(), routed_on_host));
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
  MOED_RETURN_IF_ERROR(PlaceAll(copy, model, w.get(), routed_on_host));
  MOED_RETURN_IF_ERROR(uploader.Flush());
  MOED_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return w;
}

}  // namespace moed::cuda
