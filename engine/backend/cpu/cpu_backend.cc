// CpuBackend::Step: embedding → layers (attention over the paged cache, MoE or dense MLP) → final norm →
// lm_head for the rows that need logits → sampling.
#include "engine/backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <new>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "absl/strings/str_format.h"
#include "engine/backend/batch_validation.h"
#include "engine/backend/cpu/experts.h"
#include "engine/backend/cpu/mla_attention.h"
#include "engine/backend/cpu/ops.h"
#include "engine/common/status_macros.h"
#include "engine/model/rope.h"
#include "engine/moe/router.h"
#include "engine/runtime/sampler.h"

namespace moed::cpu {

namespace {

// The CPU backend allocates its per-layer buffers (activations, expert gathers: megabytes each, tens of MB per
// prefill step) afresh at every layer. glibc's defaults hand the largest out as fresh mmaps and return freed memory at
// the heap top to the OS, so every layer paid page faults and zeroing again: 10–25% of a 512-token prefill's CPU time
// (perf: exc_page_fault, clear_page_erms). Blocks up to 32 MiB (glibc's cap) now come from the heap, and up to 1 GiB
// of free heap is kept for the next step. Process-wide, set once; the peak a step needed stays resident.
void KeepFreedMemoryInHeap() {
#if defined(__GLIBC__)
  static const bool done = [] {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    return true;
  }();
  (void)done;
#endif
}

}  // namespace

absl::StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::Create(std::shared_ptr<const Model> model,
                                                               const BackendOptions& options) {
  if (model == nullptr) return absl::InvalidArgumentError("cpu backend: no model");
  if (options.num_threads < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("cpu backend: num_threads must be ≥ 0, got %d",
                                                      options.num_threads));
  }
  if (!(options.moe_capacity_factor >= 0.0f) || !std::isfinite(options.moe_capacity_factor)) {
    return absl::InvalidArgumentError(absl::StrFormat("cpu backend: moe_capacity_factor must be ≥ 0, got %g",
                                                      options.moe_capacity_factor));
  }
  if (options.expert_cache_slots < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("cpu backend: expert_cache_slots must be ≥ 0, got %d",
                                                      options.expert_cache_slots));
  }
  if (options.expert_cache_bytes < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("cpu backend: expert_cache_bytes must be ≥ 0, got %d",
                                                      options.expert_cache_bytes));
  }
  if (options.router_zipf != 0.0f) {
    return absl::InvalidArgumentError(
        "cpu backend: router_zipf (the expert cache benchmark's imposed routing skew) is implemented by the CUDA "
        "backend only");
  }
  if (options.cpu_kernels != "fast" && options.cpu_kernels != "fast-fp32" && options.cpu_kernels != "reference") {
    return absl::InvalidArgumentError(absl::StrFormat(
        "cpu backend: cpu_kernels must be fast, fast-fp32 or reference, got '%s'", options.cpu_kernels));
  }
  // The expert cache's slot pool holds fp32 experts: with it on, every layer runs the reference.
  std::unique_ptr<FastPath> fast;
  if (options.cpu_kernels != "reference" && options.expert_cache_slots == 0 && options.expert_cache_bytes == 0) {
    const KernelConfig experts = options.cpu_kernels == "fast" ? Bf16ExpertKernelConfig() : FastKernelConfig();
    MOED_ASSIGN_OR_RETURN(fast, FastPath::Create(model, FastKernelConfig(), experts));
    KeepFreedMemoryInHeap();
  }
  std::vector<bool> reference_layers(model->spec.num_layers, true);
  if (fast != nullptr) {
    for (int l = 0; l < model->spec.num_layers; ++l) reference_layers[l] = !fast->RunsLayer(l);
  }
  MOED_ASSIGN_OR_RETURN(CpuWeights weights, ConvertWeights(*model, reference_layers, /*ends=*/fast == nullptr));
  std::unique_ptr<CpuBackend> backend(new CpuBackend(std::move(model), std::move(weights), options));
  backend->fast_ = std::move(fast);
  MOED_RETURN_IF_ERROR(backend->InitExpertCache());
  return backend;
}

CpuBackend::CpuBackend(std::shared_ptr<const Model> model, CpuWeights weights, const BackendOptions& options)
    : model_(std::move(model)), w_(std::move(weights)), options_(options), pool_(options.num_threads) {
  inv_freq_ = RopeInvFreq(model_->spec.attention.rope);
}

int64_t CpuBackend::KvBytesPerBlock(int block_size) const {
  return model_->spec.kv_cache_floats_per_token() * block_size * static_cast<int64_t>(sizeof(float));
}

absl::Status CpuBackend::InitKvCache(const KvCacheConfig& config) {
  if (config.num_blocks <= 0 || config.block_size <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "InitKvCache: num_blocks and block_size must be > 0, got %d and %d", config.num_blocks, config.block_size));
  }
  const ModelSpec& s = model_->spec;
  const int64_t floats = static_cast<int64_t>(config.num_blocks) * config.block_size * s.attention.kv_cache_width();
  kv_cache_.clear();
  try {
    kv_cache_.assign(s.num_layers, std::vector<float>(floats, 0.0f));
  } catch (const std::bad_alloc&) {
    kv_cache_.clear();
    return absl::ResourceExhaustedError(absl::StrFormat("InitKvCache: cannot allocate %d blocks (%d bytes)",
                                                        config.num_blocks, KvBytesPerBlock(config.block_size) *
                                                                               static_cast<int64_t>(config.num_blocks)));
  }
  kv_config_ = config;
  return absl::OkStatus();
}

absl::Status CpuBackend::ValidateBatch(const StepBatch& batch) const {
  if (kv_cache_.empty()) return absl::FailedPreconditionError("Step: InitKvCache was not called");
  return ValidateStepBatch(batch, model_->spec, kv_config_.num_blocks, kv_config_.block_size);
}

absl::Status CpuBackend::RunMlp(int l, int64_t rows, const float* h, float* x, StepOutput* out,
                                std::vector<int32_t>& row_experts, std::vector<float>& weights) {
  const ModelSpec& s = model_->spec;
  const CpuLayer& L = w_.layers[l];
  const int hidden = s.hidden_size;
  std::vector<float> y(rows * hidden, 0.0f);
  if (s.mlp_kind(l) == MlpKind::kDense) {
    RunFfn(L.dense_mlp, h, rows, hidden, y.data(), &pool_);
  } else {
    const int E = s.num_experts, k = s.top_k;
    std::vector<float> logits(rows * E);
    weights.resize(rows * k);
    row_experts.resize(rows * k);
    std::vector<uint8_t> kept(rows * k);
    MatMul(h, rows, hidden, L.router.data(), E, nullptr, logits.data(), &pool_);
    const float* bias = L.router_bias.empty() ? nullptr : L.router_bias.data();
    RouteTopK(logits.data(), static_cast<int>(rows), E, k, s.router, bias, row_experts.data(), weights.data());
    const int64_t capacity = ExpertCapacity(options_.moe_capacity_factor, rows * k, E);
    ApplyCapacity(row_experts.data(), rows * k, E, capacity, kept.data(), out->routed.data() + l * E,
                  out->dropped.data() + l * E);
    if (cache_ != nullptr) {
      cache_->RecordRouting(l, absl::MakeConstSpan(out->routed.data() + static_cast<int64_t>(l) * E, E));
      MOED_RETURN_IF_ERROR(RunCachedExperts(l, rows, h, row_experts.data(), weights.data(), kept.data(), y.data()));
    } else {
      RunRoutedExperts(L.experts, h, static_cast<int>(rows), hidden, row_experts.data(), weights.data(),
                       kept.data(), k, y.data(), &pool_);
    }
    if (L.shared_expert.width > 0) {
      std::vector<float> shared(rows * hidden);
      RunFfn(L.shared_expert, h, rows, hidden, shared.data(), &pool_);
      AddSharedExpert(h, shared.data(), s.shared_experts.gated ? L.shared_expert_gate.data() : nullptr, rows,
                      hidden, y.data());
    }
  }
  for (int64_t i = 0; i < rows * hidden; ++i) x[i] += y[i];
  return absl::OkStatus();
}

void CpuBackend::RunGqaAttention(int l, const std::vector<QueryRow>& rows, const float* h, float* out) {
  const ModelSpec& s = model_->spec;
  const AttentionSpec& a = s.attention;
  const CpuLayer& L = w_.layers[l];
  const int64_t n = static_cast<int64_t>(rows.size());
  const int hidden = s.hidden_size, qd = a.q_dim(), kvd = a.kv_dim(), hd = a.head_dim;
  const float eps = s.rms_norm_eps;
  std::vector<float> q(n * qd), k(n * kvd), v(n * kvd);
  MatMul(h, n, hidden, L.q_proj.data(), qd, L.q_bias.empty() ? nullptr : L.q_bias.data(), q.data(), &pool_);
  MatMul(h, n, hidden, L.k_proj.data(), kvd, L.k_bias.empty() ? nullptr : L.k_bias.data(), k.data(), &pool_);
  MatMul(h, n, hidden, L.v_proj.data(), kvd, L.v_bias.empty() ? nullptr : L.v_bias.data(), v.data(), &pool_);
  NormAndRotateQk(a, L.q_norm.data(), L.k_norm.data(), eps, inv_freq_, rows, q.data(), k.data());
  float* cache = kv_cache_[l].data();
  const KvLayerView kv{cache, cache + kvd, kv_config_.block_size, a.num_kv_heads, hd, a.kv_cache_width()};
  WriteKv(kv, rows, k.data(), v.data());
  PagedAttention(kv, rows, q.data(), a.num_heads, a.sliding_window, a.softmax_scale, out, &pool_);
}

absl::Status CpuBackend::RunLayer(int l, const std::vector<QueryRow>& rows, std::vector<float>& x, StepOutput* out,
                                  std::vector<int32_t>& row_experts, std::vector<float>& row_weights) {
  const ModelSpec& s = model_->spec;
  const AttentionSpec& a = s.attention;
  if (fast_ != nullptr && fast_->RunsLayer(l)) {
    float* cache = kv_cache_[l].data();
    const KvLayerView kv{cache, cache + a.kv_dim(), kv_config_.block_size, a.num_kv_heads, a.head_dim,
                         a.kv_cache_width()};
    fast_->RunLayer(l, rows, kv, inv_freq_, options_.moe_capacity_factor, x, out, row_experts, row_weights,
                    &pool_);
    return absl::OkStatus();
  }
  const CpuLayer& L = w_.layers[l];
  const int64_t n = static_cast<int64_t>(rows.size());
  const int hidden = s.hidden_size;
  std::vector<float> h(n * hidden), attn(n * a.o_dim());
  RmsNormTo(x.data(), n, hidden, L.input_norm.data(), s.rms_norm_eps, h.data());
  switch (a.kind) {
    case AttentionKind::kGqa:
      RunGqaAttention(l, rows, h.data(), attn.data());
      break;
    case AttentionKind::kMla: {
      const MlaCacheView cache{kv_cache_[l].data(), kv_config_.block_size, static_cast<int>(a.kv_cache_width())};
      MlaAttention(a, L, s.rms_norm_eps, inv_freq_, cache, rows, h.data(), hidden, attn.data(), &pool_);
      break;
    }
  }
  std::vector<float> o(n * hidden);
  MatMul(attn.data(), n, a.o_dim(), L.o_proj.data(), hidden, nullptr, o.data(), &pool_);
  for (int64_t i = 0; i < n * hidden; ++i) x[i] += o[i];

  RmsNormTo(x.data(), n, hidden, L.post_attn_norm.data(), s.rms_norm_eps, h.data());
  return RunMlp(l, n, h.data(), x.data(), out, row_experts, row_weights);
}

absl::Status CpuBackend::Step(const StepBatch& batch, StepOutput* out) {
  MOED_RETURN_IF_ERROR(ValidateBatch(batch));
  const ModelSpec& s = model_->spec;
  const int hidden = s.hidden_size;
  const int E = std::max(0, s.num_experts);

  // Rows of the step in sequence order; row_seq maps a row back to its batch.seqs index.
  std::vector<QueryRow> rows;
  std::vector<int32_t> row_seq;
  std::vector<int64_t> row_begin;  // (seqs) index of each sequence's first row
  std::vector<float> x;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const SequenceStep& q = batch.seqs[i];
    row_begin.push_back(static_cast<int64_t>(rows.size()));
    for (int32_t t = 0; t < q.num_tokens; ++t) {
      rows.push_back({q.start_pos + t, q.block_table.data()});
      row_seq.push_back(static_cast<int32_t>(i));
      const int32_t id = batch.token_ids[q.token_offset + t];
      if (fast_ != nullptr) {
        x.resize(x.size() + hidden);
        fast_->Embed(id, x.data() + x.size() - hidden);
        continue;
      }
      const float* e = w_.embed.data() + static_cast<int64_t>(id) * hidden;
      x.insert(x.end(), e, e + hidden);
    }
  }
  out->results.assign(batch.seqs.size(), SequenceResult{});
  out->routed.assign(static_cast<size_t>(s.num_layers) * E, 0);
  out->dropped.assign(static_cast<size_t>(s.num_layers) * E, 0);
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    out->results[i].seq_id = batch.seqs[i].seq_id;
    if (batch.seqs[i].want_routing) out->results[i].routing.assign(static_cast<size_t>(s.num_layers) * E, 0);
    if (batch.seqs[i].want_token_routing) {
      const size_t n = static_cast<size_t>(batch.seqs[i].num_tokens) * s.num_layers * s.top_k;
      out->results[i].token_experts.assign(n, -1);
      out->results[i].token_weights.assign(n, 0.0f);
    }
  }
  out->expert_cache = cache::ExpertCacheStats{};
  if (cache_ != nullptr) cache_->BeginStep();
  // The cache's per-step delta goes out on every return below.
  struct TakeCacheStats {
    cache::ExpertCache* cache;
    StepOutput* out;
    ~TakeCacheStats() {
      if (cache != nullptr) out->expert_cache = cache->TakeStepStats();
    }
  } take_cache_stats{cache_.get(), out};
  if (rows.empty()) return absl::OkStatus();

  std::vector<int32_t> row_experts;
  std::vector<float> row_weights;
  for (int l = 0; l < s.num_layers; ++l) {
    row_experts.clear();
    row_weights.clear();
    MOED_RETURN_IF_ERROR(RunLayer(l, rows, x, out, row_experts, row_weights));
    const bool prefetch_next = cache_ != nullptr && options_.expert_cache_prefetch && l + 1 < s.num_layers &&
                               s.mlp_kind(l + 1) == MlpKind::kMoe;
    if (prefetch_next) MOED_RETURN_IF_ERROR(PrefetchLayer(l + 1, x, static_cast<int64_t>(rows.size())));
    if (row_experts.empty()) continue;
    for (size_t r = 0; r < rows.size(); ++r) {
      SequenceResult& res = out->results[row_seq[r]];
      for (int j = 0; !res.routing.empty() && j < s.top_k; ++j) {
        ++res.routing[static_cast<size_t>(l) * E + row_experts[r * s.top_k + j]];
      }
      if (res.token_experts.empty()) continue;
      const int64_t t = static_cast<int64_t>(r) - row_begin[row_seq[r]];  // the row's token within its chunk
      const size_t at = (static_cast<size_t>(t) * s.num_layers + l) * s.top_k;
      std::copy_n(row_experts.begin() + r * s.top_k, s.top_k, res.token_experts.begin() + at);
      std::copy_n(row_weights.begin() + r * s.top_k, s.top_k, res.token_weights.begin() + at);
    }
  }

  // Logits only for the last row of sequences that sample or want them.
  std::vector<int32_t> logit_seqs;
  std::vector<float> last;
  int64_t row_end = 0;
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const SequenceStep& q = batch.seqs[i];
    row_end += q.num_tokens;
    if (!q.sample && !q.want_logits) continue;
    logit_seqs.push_back(static_cast<int32_t>(i));
    last.insert(last.end(), x.begin() + (row_end - 1) * hidden, x.begin() + row_end * hidden);
  }
  if (logit_seqs.empty()) return absl::OkStatus();
  const int64_t m = static_cast<int64_t>(logit_seqs.size());
  std::vector<float> logits(m * s.vocab_size);
  if (fast_ != nullptr) {
    fast_->Logits(last.data(), m, logits.data(), &pool_);
  } else {
    RmsNorm(last.data(), m, hidden, w_.final_norm.data(), s.rms_norm_eps);
    MatMul(last.data(), m, hidden, w_.lm_head.data(), s.vocab_size, nullptr, logits.data(), &pool_);
  }
  for (int64_t j = 0; j < m; ++j) {
    const SequenceStep& q = batch.seqs[logit_seqs[j]];
    SequenceResult& res = out->results[logit_seqs[j]];
    const absl::Span<const float> row(logits.data() + j * s.vocab_size, s.vocab_size);
    if (q.want_logits) res.logits.assign(row.begin(), row.end());
    if (!q.sample) continue;
    SampledToken t = SampleToken(row, q.sampling, q.sample_index);
    res.token = t.token;
    res.logprob = t.logprob;
    res.top_logprobs = std::move(t.top_logprobs);
  }
  return absl::OkStatus();
}

}  // namespace moed::cpu
