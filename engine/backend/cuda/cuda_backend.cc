// CudaBackend: one forward step over a mixed prefill/decode batch, layer by layer on one stream (the shared expert
// of a MoE layer on a second one, side_stream.h).
#include "engine/backend/cuda/cuda_backend.h"

#include <algorithm>
#include <cmath>
#include <thread>

#include "absl/strings/str_format.h"
#include "engine/backend/cuda/attention.h"
#include "engine/backend/cuda/cached_moe_layer.h"
#include "engine/backend/cuda/cublas_gemm.h"
#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/cuda_weights.h"
#include "engine/backend/cuda/decode_graphs.h"
#include "engine/backend/cuda/device_buffer.h"
#include "engine/backend/cuda/flash_decode.h"
#include "engine/backend/cuda/flash_prefill.h"
#include "engine/backend/cuda/embedding.h"
#include "engine/backend/cuda/host/backend_options.h"
#include "engine/backend/cuda/host/expert_host_tier.h"
#include "engine/backend/cuda/host/rope_table.h"
#include "engine/backend/cuda/host/step_plan.h"
#include "engine/backend/cuda/moe_layer.h"
#include "engine/backend/cuda/permute.h"
#include "engine/backend/cuda/qk_rope.h"
#include "engine/backend/cuda/rmsnorm.h"
#include "engine/backend/cuda/router.h"
#include "engine/backend/cuda/sampling.h"
#include "engine/backend/cuda/side_stream.h"
#include "engine/backend/cuda/step_io.h"
#include "engine/cache/slot_sizing.h"
#include "engine/common/status_macros.h"
#include "engine/moe/router.h"

namespace moed {
namespace {

using cuda::bf16;
using cuda::DeviceBuffer;

// Host→device copy of a vector into a grow-only device buffer (asynchronous on `stream`; `v` must outlive it —
// the step synchronises before returning).
template <typename T>
absl::Status Upload(const std::vector<T>& v, DeviceBuffer* dst, cudaStream_t stream, const char* what) {
  MOED_RETURN_IF_ERROR(dst->Reserve(std::max<size_t>(v.size(), 1) * sizeof(T), what));
  if (v.empty()) return absl::OkStatus();
  return cuda::CudaStatus(cudaMemcpyAsync(dst->get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, stream),
                          what);
}

// The CUDA kernels implement GQA attention with rotate-half RoPE (default type), softmax greedy routing and a
// gated (qwen2_moe) shared expert. Any other kind of the model definition is refused by name — never run as
// something else.
absl::Status CheckSupportedKinds(const ModelSpec& s) {
  const AttentionSpec& a = s.attention;
  auto refuse = [&](const std::string& what) {
    return absl::UnimplementedError(absl::StrFormat(
        "cuda backend: %s (model_type '%s') is not implemented on the GPU yet; use --backend cpu", what,
        std::string(FamilyName(s.family))));
  };
  if (a.kind == AttentionKind::kMla) return refuse("MLA attention (latent KV cache)");
  if (a.rope.type != RopeType::kDefault) return refuse("RoPE scaling other than 'default' (linear, dynamic, yarn)");
  if (a.rope.interleave || a.rope.dim != a.head_dim || a.qk_head_dim != a.v_head_dim) {
    return refuse("partial or interleaved RoPE / distinct q·k and v head sizes");
  }
  if (s.num_routed_experts() > 0) {
    const RouterSpec& r = s.router;
    if (r.scoring != RouterScoring::kSoftmax) return refuse("sigmoid router scoring");
    if (r.method != TopKMethod::kGreedy) return refuse("group-limited / noaux_tc top-k routing");
    if (r.selection_bias) return refuse("a router selection bias (e_score_correction_bias)");
    if (r.routed_scaling_factor != 1.0f) return refuse("routed_scaling_factor != 1");
    if (s.shared_experts.count > 0 && !s.shared_experts.gated) return refuse("ungated shared experts");
  }
  return absl::OkStatus();
}

class CudaBackend final : public Backend {
 public:
  CudaBackend(std::shared_ptr<const Model> model, const BackendOptions& options)
      : model_(std::move(model)), options_(options) {}

  absl::Status Init() {
    const ModelSpec& s = model_->spec;
    if (s.attention.head_dim > 256 || s.attention.head_dim % 2 != 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("cuda backend: head_dim %d unsupported (even, ≤ 256)", s.attention.head_dim));
    }
    if (s.num_experts > cuda::kMaxExperts) {
      return absl::InvalidArgumentError(
          absl::StrFormat("cuda backend: %d experts unsupported (≤ %d)", s.num_experts, cuda::kMaxExperts));
    }
    MOED_CUDA_RETURN_IF_ERROR(cudaSetDevice(0));
    MOED_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_holder_.stream, cudaStreamNonBlocking));
    stream_ = stream_holder_.stream;
    MOED_ASSIGN_OR_RETURN(cublas_, cuda::CublasHandle::Create(stream_));
    // A fixed cuBLAS workspace: captured graphs must not see cuBLAS allocate one.
    MOED_RETURN_IF_ERROR(cublas_ws_.Reserve(kCublasWorkspaceBytes, "cuBLAS workspace"));
    MOED_CUBLAS_RETURN_IF_ERROR(cublasSetWorkspace(cublas_.get(), cublas_ws_.get(), kCublasWorkspaceBytes));
    int device = 0;
    MOED_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
    MOED_CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
    moe_shape_.hidden = s.hidden_size;
    moe_shape_.num_experts = s.num_experts;
    moe_shape_.top_k = s.top_k;
    moe_shape_.ffn = s.moe_intermediate_size;
    moe_shape_.normalize = s.router.norm_topk_prob;
    moe_shape_.shared_ffn = s.shared_experts.intermediate_size;
    // The shared expert runs on a second stream, overlapping the routed experts (same kernels, same bits).
    if (s.num_experts > 0 && moe_shape_.shared_ffn > 0) {
      MOED_ASSIGN_OR_RETURN(side_, cuda::SideStream::Create(kCublasWorkspaceBytes));
      moe_ws_.side = side_.get();
    }
    // The grouped path when asked for and the shape allows it (16-byte rows); else the per-expert reference.
    grouped_moe_ = options_.cuda_moe == "grouped" && s.num_experts > 0 && cuda::GroupedMoeSupported(moe_shape_);
    MOED_RETURN_IF_ERROR(UploadModel());
    if (grouped_moe_ && host_tier_ == nullptr) {
      expert_tables_.resize(s.num_layers);
      expert_ptrs_.resize(s.num_layers);
      for (int l = 0; l < s.num_layers; ++l) {
        if (!s.layer_is_moe[l]) continue;
        MOED_RETURN_IF_ERROR(cuda::BuildExpertPointers(weights_->layers[l], s.num_experts, stream_,
                                                       &expert_tables_[l], &expert_ptrs_[l]));
      }
    }
    const std::vector<float> inv_freq = cuda::RopeInvFreqTable(s);  // the CPU backend's values, bit for bit
    MOED_RETURN_IF_ERROR(Upload(inv_freq, &inv_freq_, stream_, "RoPE inverse frequencies"));
    return cuda::CudaStatus(cudaStreamSynchronize(stream_), "upload of the RoPE table");
  }

  std::string_view name() const override { return "cuda"; }
  const ModelSpec& spec() const override { return model_->spec; }

  int64_t KvBytesPerBlock(int block_size) const override {
    const ModelSpec& s = model_->spec;
    return s.kv_cache_floats_per_token() * block_size * static_cast<int64_t>(sizeof(bf16));
  }

  absl::Status InitKvCache(const KvCacheConfig& config) override {
    if (config.num_blocks <= 0 || config.block_size <= 0) {
      return absl::InvalidArgumentError(absl::StrFormat("KV cache: num_blocks %d and block_size %d must be > 0",
                                                        config.num_blocks, config.block_size));
    }
    cached_.reset();  // its slots are sized from what the KV cache leaves
    kv_config_ = KvCacheConfig{};
    graphs_.Clear();  // they hold the old cache's per-layer addresses and block size
    const size_t bytes = static_cast<size_t>(KvBytesPerBlock(config.block_size)) * config.num_blocks;
    MOED_RETURN_IF_ERROR(kv_.Reserve(bytes, "paged KV cache"));
    // Zeroed, as the CPU backend's: a position read before it is written reads zeros on both.
    MOED_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(kv_.get(), 0, bytes, stream_));
    MOED_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    if (host_tier_ != nullptr) MOED_RETURN_IF_ERROR(CreateExpertCache());
    kv_config_ = config;
    return absl::OkStatus();
  }

  absl::Status Step(const StepBatch& batch, StepOutput* out) override;

 private:
  // K (or V when `v`) cache of `layer`: (num_blocks*block_size, kv_dim) bf16.
  bf16* KvLayer(int layer, bool v) const {
    const int64_t per =
        static_cast<int64_t>(kv_config_.num_blocks) * kv_config_.block_size * model_->spec.attention.kv_dim();
    return kv_.as<bf16>() + (2 * static_cast<int64_t>(layer) + (v ? 1 : 0)) * per;
  }
  static constexpr size_t kCublasWorkspaceBytes = 32u << 20;
  // Device memory the expert slots leave free for the activations and workspaces a step reserves on first use
  // (grow-only; a 2048-token Mixtral prefill chunk takes about 0.6 GiB).
  static constexpr int64_t kActivationHeadroom = int64_t{1} << 30;
  // Uploads the weights: everything (refused with the cache flags to set when the routed experts do not fit), or,
  // with the expert cache on, all but the routed experts, which go to the host tier.
  absl::Status UploadModel();
  // The slot pool and cache over the host tier, sized from the device memory left (cache/slot_sizing.h).
  absl::Status CreateExpertCache();
  // With the cache on and prefetch asked for: after layer l, layer l+1's router on the hidden state, copies started.
  absl::Status PrefetchNext(int l, int tokens);
  // decode_rows: the rows flash-decoding computes (all rows, or those outside the prefill tiles).
  absl::Status ReserveActivations(int tokens, int decode_rows, int out_rows, int max_logprobs);
  absl::Status RunLayer(int l, const cuda::StepPlan& plan, const StepBatch& batch, int64_t capacity, StepOutput* out);
  absl::Status RunPlan(const cuda::StepPlan& plan, const StepBatch& batch, StepOutput* out);
  // Every launch of one step (embedding … sampling) and nothing else: no copies, no synchronisation on the grouped
  // path, so a decode step can be captured as a graph. `out` is written only by the per-expert MoE path.
  absl::Status Forward(const cuda::StepPlan& plan, const StepBatch& batch, int max_logprobs, StepOutput* out);
  absl::Status Collect(const cuda::StepPlan& plan, const StepBatch& batch, int max_logprobs, StepOutput* out);
  // A step a graph may replay: decode rows only (one token per sequence), each sampling without logits, logprobs
  // or routing, no MOED_CUDA_CHECK, and no host synchronisation inside (grouped MoE or no MoE layer).
  bool Graphable(const cuda::StepPlan& plan, const StepBatch& batch) const;

  // Destroyed last (declared first): every buffer and the cuBLAS handle are released before the stream.
  struct StreamHolder {
    cudaStream_t stream = nullptr;
    ~StreamHolder() {
      if (stream != nullptr) (void)cudaStreamDestroy(stream);
    }
  } stream_holder_;
  std::shared_ptr<const Model> model_;
  BackendOptions options_;
  cudaStream_t stream_ = nullptr;
  cuda::CublasHandle cublas_;
  std::unique_ptr<cuda::SideStream> side_;  // models with a shared expert: where it runs (moe_ws_.side)
  std::unique_ptr<cuda::DeviceWeights> weights_;
  cuda::LaunchChecker check_;  // MOED_CUDA_CHECK=1: synchronise and check after every launch
  DeviceBuffer cublas_ws_;
  int sm_count_ = 1;
  cuda::MoeShape moe_shape_;
  bool grouped_moe_ = false;                      // BackendOptions::cuda_moe == grouped and supported
  std::vector<DeviceBuffer> expert_tables_;       // (layers) grouped path: device expert pointer arrays
  std::vector<cuda::ExpertPointers> expert_ptrs_;
  // The hot-expert cache (expert_cache_slots/bytes > 0): routed experts in host_tier_, resident ones in cached_'s
  // slots (created by InitKvCache). Both null when off.
  std::unique_ptr<cuda::ExpertHostTier> host_tier_;
  std::unique_ptr<cuda::CachedMoe> cached_;
  cuda::StepIo io_;                               // one upload, one download per step
  DeviceBuffer step_experts_;                     // (layers, rows, top_k) grouped path: every step's expert ids
  DeviceBuffer step_weights_;                     // (layers, rows, top_k) grouped path: their router weights
  DeviceBuffer flash_ws_;                         // flash-decoding partial results
  int flash_splits_ = 1;
  cuda::DecodeGraphs graphs_;
  KvCacheConfig kv_config_;    // num_blocks == 0 until InitKvCache succeeds
  DeviceBuffer kv_;
  DeviceBuffer inv_freq_;      // (head_dim / 2) fp32 RoPE table
  // Activations: residual/delta (rows, hidden) fp32; xn (rows, hidden) bf16; qkv (rows, q+2kv) fp32;
  // q (rows, q_dim) fp32; attn (rows, q_dim) bf16; dense FFN scratch.
  DeviceBuffer residual_, delta_, xn_, qkv_, q_, attn_, ffn_gate_up_, ffn_h_;
  // Output rows: xr (rows, hidden) bf16; logits (rows, vocab) fp32; sampling params and results.
  DeviceBuffer xr_, logits_, d_top_ids_, d_top_lp_;
  cuda::MoeWorkspace moe_ws_;
  cuda::MoeCounts moe_counts_;
  std::vector<int32_t> experts_host_;  // (rows, top_k) of the current MoE layer, when routing is reported
  std::vector<float> weights_host_;    // (rows, top_k), when per-token routing is reported
  bool delta_pending_ = false;  // delta_ holds a block output not yet added to residual_
};

absl::Status CudaBackend::ReserveActivations(int tokens, int decode_rows, int out_rows, int max_logprobs) {
  const ModelSpec& s = model_->spec;
  const size_t T = std::max(tokens, 1), H = s.hidden_size, QKV = s.attention.q_dim() + 2 * s.attention.kv_dim();
  MOED_RETURN_IF_ERROR(residual_.Reserve(T * H * sizeof(float), "residual stream"));
  MOED_RETURN_IF_ERROR(delta_.Reserve(T * H * sizeof(float), "block outputs"));
  MOED_RETURN_IF_ERROR(xn_.Reserve(T * H * sizeof(bf16), "normalised activations"));
  MOED_RETURN_IF_ERROR(qkv_.Reserve(T * QKV * sizeof(float), "qkv projections"));
  MOED_RETURN_IF_ERROR(q_.Reserve(T * s.attention.q_dim() * sizeof(float), "rotated queries"));
  MOED_RETURN_IF_ERROR(attn_.Reserve(T * s.attention.q_dim() * sizeof(bf16), "attention outputs"));
  if (s.dense_intermediate_size > 0) {
    MOED_RETURN_IF_ERROR(ffn_gate_up_.Reserve(T * 2 * s.dense_intermediate_size * sizeof(bf16), "dense FFN"));
    MOED_RETURN_IF_ERROR(ffn_h_.Reserve(T * s.dense_intermediate_size * sizeof(bf16), "dense FFN"));
  }
  if (options_.cuda_attention == "flash") {
    flash_splits_ = cuda::FlashDecodeSplits(decode_rows, s.attention.num_kv_heads, sm_count_);
    MOED_RETURN_IF_ERROR(flash_ws_.Reserve(
        cuda::FlashDecodeWorkspaceBytes(decode_rows, s.attention.num_heads, s.attention.head_dim, flash_splits_),
        "flash-decoding partials"));
  }
  const size_t R = std::max(out_rows, 1), V = s.vocab_size, top_n = R * std::max(max_logprobs, 1);
  MOED_RETURN_IF_ERROR(xr_.Reserve(R * H * sizeof(bf16), "output row activations"));
  MOED_RETURN_IF_ERROR(logits_.Reserve(R * V * sizeof(float), "logits"));
  MOED_RETURN_IF_ERROR(d_top_ids_.Reserve(top_n * sizeof(int32_t), "top logprob ids"));
  MOED_RETURN_IF_ERROR(d_top_lp_.Reserve(top_n * sizeof(float), "top logprobs"));
  if (grouped_moe_) {
    const int64_t E = s.num_experts;
    MOED_RETURN_IF_ERROR(moe_ws_.Reserve(moe_shape_, tokens));
    MOED_RETURN_IF_ERROR(io_.ReserveOutputs(out_rows, static_cast<int64_t>(s.num_layers) * 2 * E));
    const size_t assignments = static_cast<size_t>(s.num_layers) * T * s.top_k;
    MOED_RETURN_IF_ERROR(step_experts_.Reserve(assignments * sizeof(int32_t), "per-layer expert ids"));
    MOED_RETURN_IF_ERROR(step_weights_.Reserve(assignments * sizeof(float), "per-layer router weights"));
  } else {
    MOED_RETURN_IF_ERROR(io_.ReserveOutputs(out_rows, 0));
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::RunLayer(int l, const cuda::StepPlan& plan, const StepBatch& batch, int64_t capacity,
                                   StepOutput* out) {
  const ModelSpec& s = model_->spec;
  const cuda::DeviceLayer& w = weights_->layers[l];
  const cuda::StepInputs& in = io_.in();
  const int T = plan.rows, H = s.hidden_size;
  float* residual = residual_.as<float>();
  float* delta = delta_.as<float>();
  bf16* xn = xn_.as<bf16>();

  MOED_RETURN_IF_ERROR(check_.After(cuda::LaunchAddRmsNorm(residual, delta_pending_ ? delta : nullptr, T, H,
                                                          w.input_norm, s.rms_norm_eps, xn, stream_),
                                    stream_, "input RMSNorm"));
  MOED_RETURN_IF_ERROR(check_.After(
      cuda::GemmXWt(cublas_, xn, T, H, w.q_proj, s.attention.q_dim() + 2 * s.attention.kv_dim(), qkv_.get(),
                    cuda::OutType::kF32),
      stream_,
      "qkv GEMM"));
  cuda::QkRopeArgs r;
  r.qkv = qkv_.as<float>();
  r.q_bias = w.q_bias;
  r.k_bias = w.k_bias;
  r.v_bias = w.v_bias;
  r.norm = static_cast<cuda::QkNormKind>(static_cast<int>(s.attention.qk_norm));
  r.q_norm = w.q_norm;
  r.k_norm = w.k_norm;
  r.eps = s.rms_norm_eps;
  r.inv_freq = inv_freq_.as<float>();
  r.positions = in.positions;
  r.kv_rows = in.kv_rows;
  r.tokens = T;
  r.num_heads = s.attention.num_heads;
  r.num_kv_heads = s.attention.num_kv_heads;
  r.head_dim = s.attention.head_dim;
  r.q_out = q_.as<float>();
  r.k_cache = KvLayer(l, false);
  r.v_cache = KvLayer(l, true);
  MOED_RETURN_IF_ERROR(check_.After(cuda::LaunchQkNormRope(r, stream_), stream_, "q/k norm + RoPE + KV write"));

  cuda::PagedAttentionArgs a;
  a.q = q_.as<float>();
  a.k_cache = r.k_cache;
  a.v_cache = r.v_cache;
  a.positions = r.positions;
  a.block_tables = in.block_tables;
  a.table_offsets = in.table_offsets;
  a.tokens = T;
  a.num_heads = s.attention.num_heads;
  a.num_kv_heads = s.attention.num_kv_heads;
  a.head_dim = s.attention.head_dim;
  a.block_size = kv_config_.block_size;
  a.sliding_window = s.attention.sliding_window;
  a.scale = 1.0f / std::sqrt(static_cast<float>(s.attention.head_dim));
  a.out = attn_.as<bf16>();
  if (options_.cuda_attention == "flash") {
    // Prefill chunks on the tensor-core tiles; the other rows (all of them in a decode step) by flash-decoding.
    if (!plan.prefill_tiles.empty()) {
      MOED_RETURN_IF_ERROR(check_.After(
          cuda::LaunchFlashPrefill(a, in.prefill_tiles, static_cast<int>(plan.prefill_tiles.size()), stream_),
          stream_, "flash prefill attention"));
      a.rows = in.decode_rows;
      a.tokens = static_cast<int>(plan.decode_rows.size());
    }
    MOED_RETURN_IF_ERROR(check_.After(cuda::LaunchFlashDecode(a, flash_splits_, flash_ws_.get(), stream_), stream_,
                                      "flash-decoding attention"));
  } else {
    MOED_RETURN_IF_ERROR(check_.After(cuda::LaunchPagedAttention(a, stream_), stream_, "paged attention"));
  }
  MOED_RETURN_IF_ERROR(check_.After(
      cuda::GemmXWt(cublas_, a.out, T, s.attention.q_dim(), w.o_proj, H, delta, cuda::OutType::kF32), stream_,
      "o_proj GEMM"));
  MOED_RETURN_IF_ERROR(check_.After(
      cuda::LaunchAddRmsNorm(residual, delta, T, H, w.post_attn_norm, s.rms_norm_eps, xn, stream_), stream_,
      "post-attention RMSNorm"));
  delta_pending_ = true;

  if (!s.layer_is_moe[l]) {
    return check_.After(
        cuda::RunFfn(cublas_, stream_, w.dense_mlp, H, xn, T, ffn_gate_up_.as<bf16>(), ffn_h_.as<bf16>(), delta, &check_),
        stream_, "dense FFN");
  }
  const int E = s.num_experts;
  if (grouped_moe_) {
    cuda::GroupedMoeOutputs outs;
    outs.counts = io_.dev_out().counts + static_cast<int64_t>(l) * 2 * E;
    // Expert ids and router weights always land in the step's buffers (read back by Collect when a sequence wants
    // routing), so a captured decode graph is the same whatever the step asks for.
    outs.experts = step_experts_.as<int32_t>() + static_cast<int64_t>(l) * T * s.top_k;
    outs.weights = step_weights_.as<float>() + static_cast<int64_t>(l) * T * s.top_k;
    if (cached_ != nullptr) {
      return cached_->RunLayer(cublas_, stream_, moe_shape_, l, w, xn, T, capacity, delta, &moe_ws_, outs, sm_count_,
                               &check_);
    }
    return cuda::RunMoeGrouped(cublas_, stream_, moe_shape_, w, expert_ptrs_[l], xn, T, capacity, delta, &moe_ws_,
                               outs, sm_count_, cuda::GroupedKernel::kAuto, &check_);
  }
  MOED_RETURN_IF_ERROR(cuda::RunMoe(cublas_, stream_, moe_shape_, w, xn, T, capacity, delta, &moe_ws_, &moe_counts_,
                                    plan.any_routing || plan.any_token_routing ? &experts_host_ : nullptr,
                                    plan.any_token_routing ? &weights_host_ : nullptr, &check_));
  for (int e = 0; e < E; ++e) {
    out->routed[static_cast<int64_t>(l) * E + e] += moe_counts_.routed[e];
    out->dropped[static_cast<int64_t>(l) * E + e] += moe_counts_.routed[e] - moe_counts_.kept[e];
  }
  if (!plan.any_routing && !plan.any_token_routing) return absl::OkStatus();
  for (int t = 0; t < T; ++t) {
    const int si = plan.row_seq[t];
    SequenceResult& res = out->results[si];
    for (int k = 0; batch.seqs[si].want_routing && k < s.top_k; ++k) {
      ++res.routing[static_cast<int64_t>(l) * E + experts_host_[t * s.top_k + k]];
    }
    if (!batch.seqs[si].want_token_routing) continue;
    const size_t at = (static_cast<size_t>(plan.row_in_seq[t]) * s.num_layers + l) * s.top_k;
    std::copy_n(experts_host_.begin() + static_cast<size_t>(t) * s.top_k, s.top_k, res.token_experts.begin() + at);
    std::copy_n(weights_host_.begin() + static_cast<size_t>(t) * s.top_k, s.top_k, res.token_weights.begin() + at);
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::Forward(const cuda::StepPlan& plan, const StepBatch& batch, int max_logprobs,
                                  StepOutput* out) {
  const ModelSpec& s = model_->spec;
  const cuda::StepInputs& in = io_.in();
  const int T = plan.rows, H = s.hidden_size, V = s.vocab_size, R = static_cast<int>(plan.out_rows.size());
  MOED_RETURN_IF_ERROR(check_.After(
      cuda::LaunchEmbedding(in.ids, T, weights_->embed, H, residual_.as<float>(), stream_), stream_, "embedding"));
  delta_pending_ = false;
  // As the CPU backend: the capacity of a layer counts this step's rows × top_k assignments.
  const int64_t capacity = s.top_k > 0 ? ExpertCapacity(options_.moe_capacity_factor, static_cast<int64_t>(T) * s.top_k,
                                                        s.num_experts)
                                       : 0;
  for (int l = 0; l < s.num_layers; ++l) {
    absl::Status st = RunLayer(l, plan, batch, capacity, out);
    if (st.ok()) st = PrefetchNext(l, T);
    if (!st.ok()) return absl::Status(st.code(), absl::StrFormat("layer %d: %s", l, st.message()));
  }
  MOED_RETURN_IF_ERROR(check_.After(
      cuda::LaunchAddRmsNorm(residual_.as<float>(), delta_pending_ ? delta_.as<float>() : nullptr, T, H,
                             weights_->final_norm, s.rms_norm_eps, xn_.as<bf16>(), stream_),
      stream_, "final RMSNorm"));
  delta_pending_ = false;
  if (R == 0) return absl::OkStatus();
  MOED_RETURN_IF_ERROR(check_.After(cuda::LaunchGatherRows(xn_.as<bf16>(), in.out_rows, R, H, xr_.as<bf16>(), stream_),
                                    stream_, "gather of the output rows"));
  MOED_RETURN_IF_ERROR(check_.After(
      cuda::GemmXWt(cublas_, xr_.as<bf16>(), R, H, weights_->lm_head, V, logits_.as<float>(), cuda::OutType::kF32),
      stream_, "lm_head GEMM"));
  return check_.After(cuda::LaunchSample(logits_.as<float>(), R, V, in.params, max_logprobs, io_.dev_out().tokens,
                                         io_.dev_out().logprobs, d_top_ids_.as<int32_t>(), d_top_lp_.as<float>(),
                                         stream_,
                                         options_.cuda_sampling == "bisect" ? cuda::SampleSelect::kBisect
                                                                            : cuda::SampleSelect::kRadix),
                      stream_, "sampling");
}

bool CudaBackend::Graphable(const cuda::StepPlan& plan, const StepBatch& batch) const {
  if (!options_.cuda_graphs || check_.enabled() || cached_ != nullptr) return false;  // the cache syncs per layer
  if (model_->spec.num_experts > 0 && !grouped_moe_) return false;
  if (plan.out_rows.size() != static_cast<size_t>(plan.rows)) return false;
  for (const SequenceStep& q : batch.seqs) {
    if (q.num_tokens != 1 || !q.sample || q.want_logits || q.sampling.logprobs > 0) return false;
  }
  return true;
}

absl::Status CudaBackend::Step(const StepBatch& batch, StepOutput* out) {
  if (kv_config_.num_blocks == 0) return absl::FailedPreconditionError("cuda backend: Step before InitKvCache");
  const ModelSpec& s = model_->spec;
  cuda::StepPlan plan;
  MOED_RETURN_IF_ERROR(cuda::BuildStepPlan(batch, s, kv_config_.num_blocks, kv_config_.block_size, &plan));
  const int E = std::max(0, s.num_experts);
  const int64_t LE = static_cast<int64_t>(s.num_layers) * E;
  out->results.assign(batch.seqs.size(), SequenceResult());
  out->routed.assign(LE, 0);
  out->dropped.assign(LE, 0);
  out->expert_cache = cache::ExpertCacheStats{};
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    out->results[i].seq_id = batch.seqs[i].seq_id;
    if (batch.seqs[i].want_routing) out->results[i].routing.assign(LE, 0);
    if (batch.seqs[i].want_token_routing) {
      const size_t n = static_cast<size_t>(batch.seqs[i].num_tokens) * s.num_layers * std::max(0, s.top_k);
      out->results[i].token_experts.assign(n, -1);
      out->results[i].token_weights.assign(n, 0.0f);
    }
  }
  if (plan.rows > 0) {
    const AttentionSpec& at = s.attention;
    if (options_.cuda_attention == "flash" && cuda::FlashPrefillSupported(at.num_heads, at.num_kv_heads, at.head_dim)) {
      cuda::PlanFlashPrefill(plan.row_seq, plan.positions, plan.table_offsets, at.sliding_window, &plan.prefill_tiles,
                             &plan.decode_rows);
    }
  }
  if (cached_ == nullptr) return plan.rows == 0 ? absl::OkStatus() : RunPlan(plan, batch, out);
  cached_->cache().BeginStep();
  const absl::Status st = plan.rows == 0 ? absl::OkStatus() : RunPlan(plan, batch, out);
  out->expert_cache = cached_->cache().TakeStepStats();
  return st;
}

absl::Status CudaBackend::UploadModel() {
  const ModelSpec& s = model_->spec;
  const bool cache_on = (options_.expert_cache_slots > 0 || options_.expert_cache_bytes > 0) &&
                        s.num_routed_experts() > 0;
  if (!cache_on) {
    MOED_ASSIGN_OR_RETURN(const cuda::WeightBytes bytes, cuda::MeasureWeights(*model_));
    size_t free_b = 0, total_b = 0;
    MOED_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_b, &total_b));
    if (bytes.routed > 0) {
      MOED_RETURN_IF_ERROR(cache::RequireResidentExpertsFit(bytes.dense, bytes.routed, static_cast<int64_t>(free_b)));
    }
    MOED_ASSIGN_OR_RETURN(weights_, cuda::UploadWeights(*model_, stream_));
    return absl::OkStatus();
  }
  if (!grouped_moe_) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cuda backend: the hot-expert cache runs on the grouped MoE path (--cuda-moe grouped, hidden %d and "
        "moe_intermediate_size %d multiples of 8); got --cuda-moe %s",
        s.hidden_size, s.moe_intermediate_size, options_.cuda_moe));
  }
  MOED_ASSIGN_OR_RETURN(weights_, cuda::UploadWeights(*model_, stream_, /*routed_on_host=*/true));
  const int threads = options_.num_threads > 0 ? options_.num_threads
                                               : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  MOED_ASSIGN_OR_RETURN(host_tier_, cuda::ExpertHostTier::Build(*model_, threads));
  return absl::OkStatus();
}

absl::Status CudaBackend::CreateExpertCache() {
  size_t free_b = 0, total_b = 0;
  MOED_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_b, &total_b));
  cache::SlotSizingInput in;
  in.slots = options_.expert_cache_slots;
  in.bytes = options_.expert_cache_bytes;
  in.routed_experts = host_tier_->routed_experts();
  in.expert_bytes = (host_tier_->expert_bytes() + 255) / 256 * 256;  // CudaExpertTransfer's slot
  in.free_device_bytes = std::max<int64_t>(0, static_cast<int64_t>(free_b) - kActivationHeadroom);
  absl::StatusOr<int> slots = cache::DeviceSlotCount(in);
  if (!slots.ok()) return absl::Status(slots.status().code(), "cuda backend: " + std::string(slots.status().message()));
  cuda::CachedMoe::Options o;
  o.num_slots = *slots;
  o.policy = options_.expert_cache_policy;
  o.router_zipf = options_.router_zipf;
  MOED_ASSIGN_OR_RETURN(cached_, cuda::CachedMoe::Create(model_->spec, *host_tier_, o, stream_));
  return absl::OkStatus();
}

absl::Status CudaBackend::PrefetchNext(int l, int tokens) {
  const ModelSpec& s = model_->spec;
  if (cached_ == nullptr || !options_.expert_cache_prefetch || l + 1 >= s.num_layers || !s.layer_is_moe[l + 1]) {
    return absl::OkStatus();
  }
  // The hidden state after layer l, normalised as layer l+1's MoE input would be without its attention. The residual
  // add happens here instead of at layer l+1's first norm: the same fp32 sum, so the output is unchanged.
  const cuda::DeviceLayer& next = weights_->layers[l + 1];
  MOED_RETURN_IF_ERROR(check_.After(
      cuda::LaunchAddRmsNorm(residual_.as<float>(), delta_pending_ ? delta_.as<float>() : nullptr, tokens,
                             s.hidden_size, next.post_attn_norm, s.rms_norm_eps, xn_.as<bf16>(), stream_),
      stream_, "prefetch RMSNorm"));
  delta_pending_ = false;
  return cached_->Prefetch(cublas_, stream_, moe_shape_, l + 1, next, xn_.as<bf16>(), tokens, &moe_ws_, &check_)
      .status();
}

// One validated, non-empty step: one upload, the launches (replayed as a graph for decode shapes), one download.
absl::Status CudaBackend::RunPlan(const cuda::StepPlan& plan, const StepBatch& batch, StepOutput* out) {
  const int R = static_cast<int>(plan.out_rows.size());
  std::vector<cuda::DeviceSamplingParams> params(R);
  int max_lp = 0;
  for (int r = 0; r < R; ++r) {
    const SequenceStep& q = batch.seqs[plan.out_row_seq[r]];
    cuda::DeviceSamplingParams& p = params[r];
    if (!q.sample) continue;  // logits only: a greedy pick nobody reads
    p.temperature = q.sampling.temperature;
    p.top_p = q.sampling.top_p;
    p.top_k = q.sampling.top_k;
    p.logprobs = q.sampling.logprobs;
    p.seed = q.sampling.seed;
    p.sample_index = q.sample_index;
    max_lp = std::max(max_lp, p.logprobs);
  }
  MOED_RETURN_IF_ERROR(ReserveActivations(
      plan.rows, plan.prefill_tiles.empty() ? plan.rows : static_cast<int>(plan.decode_rows.size()), R, max_lp));
  MOED_RETURN_IF_ERROR(io_.Upload(plan, params, stream_));
  auto launches = [&]() { return Forward(plan, batch, max_lp, out); };
  if (Graphable(plan, batch)) {
    bool replayed = false;
    MOED_RETURN_IF_ERROR(graphs_.Run(plan.rows, stream_, launches, &replayed));
  } else {
    MOED_RETURN_IF_ERROR(launches());
  }
  return Collect(plan, batch, max_lp, out);
}

// Downloads what the step produced (one copy for tokens, logprobs and expert counts; logits, logprobs and routing
// only when asked for), waits once, and fills `out`.
absl::Status CudaBackend::Collect(const cuda::StepPlan& plan, const StepBatch& batch, int max_lp, StepOutput* out) {
  const ModelSpec& s = model_->spec;
  const int R = static_cast<int>(plan.out_rows.size()), V = s.vocab_size, T = plan.rows;
  MOED_RETURN_IF_ERROR(io_.Download(stream_));
  const size_t top_n = static_cast<size_t>(R) * std::max(max_lp, 1);
  std::vector<int32_t> top_ids;
  std::vector<float> top_lp;
  if (max_lp > 0) {
    top_ids.resize(top_n);
    top_lp.resize(top_n);
    MOED_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(top_ids.data(), d_top_ids_.get(), top_n * sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    MOED_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(top_lp.data(), d_top_lp_.get(), top_n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
  }
  for (int r = 0; r < R; ++r) {
    const int si = plan.out_row_seq[r];
    if (!batch.seqs[si].want_logits) continue;
    out->results[si].logits.resize(V);
    MOED_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(out->results[si].logits.data(),
                                              logits_.as<float>() + static_cast<int64_t>(r) * V, V * sizeof(float),
                                              cudaMemcpyDeviceToHost, stream_));
  }
  std::vector<int32_t> experts;  // (layers, rows, top_k) when a sequence wants routing
  std::vector<float> weights;    // (layers, rows, top_k) when a sequence wants per-token routing
  if (grouped_moe_ && (plan.any_routing || plan.any_token_routing)) {
    experts.resize(static_cast<size_t>(s.num_layers) * T * s.top_k);
    MOED_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(experts.data(), step_experts_.get(), experts.size() * sizeof(int32_t),
                                              cudaMemcpyDeviceToHost, stream_));
  }
  if (grouped_moe_ && plan.any_token_routing) {
    weights.resize(static_cast<size_t>(s.num_layers) * T * s.top_k);
    MOED_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(weights.data(), step_weights_.get(), weights.size() * sizeof(float),
                                              cudaMemcpyDeviceToHost, stream_));
  }
  MOED_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  const int32_t* tokens = io_.host_tokens();
  const float* logprobs = io_.host_logprobs();
  for (int r = 0; r < R; ++r) {
    const int si = plan.out_row_seq[r];
    if (!batch.seqs[si].sample) continue;
    SequenceResult& res = out->results[si];
    res.token = tokens[r];
    res.logprob = logprobs[r];
    const int n = std::min(batch.seqs[si].sampling.logprobs, V);
    for (int i = 0; i < n; ++i) {
      res.top_logprobs.push_back({top_ids[static_cast<size_t>(r) * max_lp + i], top_lp[static_cast<size_t>(r) * max_lp + i]});
    }
    std::sort(res.top_logprobs.begin(), res.top_logprobs.end(), [](const TokenLogprob& a, const TokenLogprob& b) {
      return a.logprob > b.logprob || (a.logprob == b.logprob && a.token < b.token);
    });
  }
  if (!grouped_moe_) return absl::OkStatus();
  const int E = s.num_experts;
  const int32_t* counts = io_.host_counts();
  for (int l = 0; l < s.num_layers; ++l) {
    if (!s.layer_is_moe[l]) continue;
    const int32_t* c = counts + static_cast<int64_t>(l) * 2 * E;
    for (int e = 0; e < E; ++e) {
      out->routed[static_cast<int64_t>(l) * E + e] += c[e];
      out->dropped[static_cast<int64_t>(l) * E + e] += c[e] - c[E + e];
    }
    if (experts.empty()) continue;
    const size_t layer_at = static_cast<size_t>(l) * T * s.top_k;
    for (int t = 0; t < T; ++t) {
      const int si = plan.row_seq[t];
      SequenceResult& res = out->results[si];
      const int32_t* ex = experts.data() + layer_at + static_cast<size_t>(t) * s.top_k;
      for (int k = 0; batch.seqs[si].want_routing && k < s.top_k; ++k) ++res.routing[static_cast<int64_t>(l) * E + ex[k]];
      if (!batch.seqs[si].want_token_routing) continue;
      const size_t at = (static_cast<size_t>(plan.row_in_seq[t]) * s.num_layers + l) * s.top_k;
      std::copy_n(ex, s.top_k, res.token_experts.begin() + at);
      std::copy_n(weights.data() + layer_at + static_cast<size_t>(t) * s.top_k, s.top_k, res.token_weights.begin() + at);
    }
  }
  return absl::OkStatus();
}
}  // namespace

// The oldest architecture the build targets (CMAKE_CUDA_ARCHITECTURES 80;89;90: A100, L40S/L4, H100/H200). The
// kernels use bf16 tensor cores (WMMA, sm_80+) and nothing Hopper-only.
constexpr int kMinComputeMajor = 8;

CudaDeviceReport CheckCudaDevice() {
  CudaDeviceReport r;
  int driver = 0, runtime = 0;
  (void)cudaDriverGetVersion(&driver);  // 0 when no driver is installed
  (void)cudaRuntimeGetVersion(&runtime);
  const auto version = [](int v) { return absl::StrFormat("%d.%d", v / 1000, (v % 1000) / 10); };
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  (void)cudaGetLastError();
  if (driver == 0 || err == cudaErrorNoDevice || (err == cudaSuccess && count == 0)) {
    r.state = CudaDeviceState::kNoDevice;
    r.detail = driver == 0 ? "no CUDA device: no CUDA driver is installed"
                           : absl::StrFormat("no CUDA device: the driver (CUDA %s) sees none", version(driver));
    return r;
  }
  r.state = CudaDeviceState::kUnusable;
  if (err == cudaErrorInsufficientDriver || err == cudaErrorCompatNotSupportedOnDevice) {
    r.detail = absl::StrFormat("CUDA driver/runtime mismatch: the driver supports CUDA %s, this build's runtime is "
                               "CUDA %s (%s)", version(driver), version(runtime), cudaGetErrorName(err));
    return r;
  }
  if (err != cudaSuccess) {
    r.detail = absl::StrFormat("CUDA runtime error asking for devices (driver CUDA %s, runtime CUDA %s): %s: %s",
                               version(driver), version(runtime), cudaGetErrorName(err), cudaGetErrorString(err));
    return r;
  }
  cudaDeviceProp prop;
  const cudaError_t perr = cudaGetDeviceProperties(&prop, 0);
  (void)cudaGetLastError();
  if (perr != cudaSuccess) {
    r.detail = absl::StrFormat("CUDA runtime error reading device 0's properties: %s: %s", cudaGetErrorName(perr),
                               cudaGetErrorString(perr));
    return r;
  }
  if (prop.major < kMinComputeMajor) {
    r.detail = absl::StrFormat(
        "device 0 (%s) has compute capability %d.%d; this build targets sm_80, sm_89 and sm_90 (≥ 8.0)", prop.name,
        prop.major, prop.minor);
    return r;
  }
  r.state = CudaDeviceState::kUsable;
  r.detail = absl::StrFormat("%s, compute capability %d.%d, driver CUDA %s, runtime CUDA %s", prop.name, prop.major,
                             prop.minor, version(driver), version(runtime));
  return r;
}

bool CudaDeviceUsable() { return CheckCudaDevice().state == CudaDeviceState::kUsable; }

absl::StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(std::shared_ptr<const Model> model,
                                                           const BackendOptions& options) {
  if (model == nullptr) return absl::InvalidArgumentError("cuda backend: null model");
  MOED_RETURN_IF_ERROR(CheckSupportedKinds(model->spec));
  MOED_RETURN_IF_ERROR(cuda::ValidateCudaBackendOptions(options));
  const CudaDeviceReport device = CheckCudaDevice();
  if (device.state != CudaDeviceState::kUsable) {
    return absl::UnavailableError(absl::StrFormat("backend 'cuda': %s", device.detail));
  }
  auto backend = std::make_unique<CudaBackend>(std::move(model), options);
  MOED_RETURN_IF_ERROR(backend->Init());
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace moed
