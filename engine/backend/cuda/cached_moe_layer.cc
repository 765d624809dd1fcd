// CachedMoe: one permutation per layer, per-group launches over the cache's slots, one combine.
#include "engine/backend/cuda/cached_moe_layer.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "engine/backend/cuda/host/moe_schedule.h"
#include "engine/backend/cuda/host/tc_gemm_plan.h"
#include "engine/backend/cuda/host/wave_launch.h"
#include "engine/backend/cuda/logit_bias.h"
#include "engine/backend/cuda/permute.h"
#include "engine/backend/cuda/router.h"
#include "engine/cache/wave_planner.h"
#include "engine/cache/zipf_routing.h"
#include "engine/common/status_macros.h"

namespace moed::cuda {
namespace {

const LaunchChecker kNoCheck(false);
constexpr int kMaxSplits = 8;  // host/moe_schedule.h PlanGemv

}  // namespace

absl::StatusOr<std::unique_ptr<CachedMoe>> CachedMoe::Create(const ModelSpec& spec, const ExpertHostTier& tier,
                                                             const Options& options, cudaStream_t stream) {
  std::unique_ptr<CachedMoe> c(new CachedMoe());
  const int E = spec.num_experts;
  c->num_experts_ = E;
  MOED_ASSIGN_OR_RETURN(c->transfer_, CudaExpertTransfer::Create(E, tier.parts(), options.num_slots, stream));
  cache::ExpertCacheConfig config;
  config.num_layers = spec.num_layers;
  config.num_experts = E;
  config.num_slots = options.num_slots;
  config.policy = options.policy;
  MOED_ASSIGN_OR_RETURN(c->cache_, cache::ExpertCache::Create(config, c->transfer_.get()));
  c->record_bytes_ = LaunchRecordBytes(E);
  c->max_records_ = 2 * E;
  const size_t records = static_cast<size_t>(c->max_records_) * c->record_bytes_;
  MOED_RETURN_IF_ERROR(c->host_records_.Reserve(records, "expert cache launch records (host)"));
  MOED_RETURN_IF_ERROR(c->records_.Reserve(records, "expert cache launch records"));
  MOED_RETURN_IF_ERROR(c->host_counts_.Reserve(2 * static_cast<size_t>(E) * sizeof(int32_t), "expert counts (host)"));
  if (options.router_zipf > 0) {
    const std::vector<float> bias =
        cache::ZipfLogitBias(spec.num_layers, E, options.router_zipf, options.router_zipf_seed);
    MOED_RETURN_IF_ERROR(c->bias_.Reserve(bias.size() * sizeof(float), "router Zipf bias"));
    MOED_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(c->bias_.get(), bias.data(), bias.size() * sizeof(float), cudaMemcpyHostToDevice, stream));
    MOED_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  }
  return c;
}

absl::Status CachedMoe::Route(const CublasHandle& cublas, cudaStream_t stream, const MoeShape& s, int l,
                              const DeviceLayer& w, const bf16* x, int tokens, float* logits, int32_t* experts,
                              float* weights, const LaunchChecker& c) {
  const int E = s.num_experts;
  MOED_RETURN_IF_ERROR(
      c.After(GemmXWt(cublas, x, tokens, s.hidden, w.router, E, logits, OutType::kF32), stream, "router GEMM"));
  if (bias_.get() != nullptr) {
    MOED_RETURN_IF_ERROR(c.After(
        LaunchAddLogitBias(logits, tokens, E, bias_.as<float>() + static_cast<int64_t>(l) * E, stream), stream,
        "router Zipf bias"));
  }
  return c.After(LaunchRouterTopK(logits, tokens, E, s.top_k, s.normalize, experts, weights, stream), stream,
                 "router top-k");
}

absl::Status CachedMoe::RunLayer(const CublasHandle& cublas, cudaStream_t stream, const MoeShape& s, int l,
                                 const DeviceLayer& w, const bf16* x, int tokens, int64_t capacity, float* out,
                                 MoeWorkspace* ws, const GroupedMoeOutputs& outs, int sm_count,
                                 const LaunchChecker* check) {
  if (tokens == 0) return absl::OkStatus();
  if (outs.counts == nullptr) return absl::InvalidArgumentError("cached MoE: outs.counts is required");
  const LaunchChecker& c = check != nullptr ? *check : kNoCheck;
  const int E = s.num_experts, A = tokens * s.top_k, H = s.hidden, F = s.ffn;
  // As RunMoeGrouped's kAuto, so both paths run the same kernels on the same tiles.
  const bool gemv = UseGemv(tokens, s.top_k, E);
  const int tile_rows = TcTileRows(tokens, s.top_k, E);
  MOED_RETURN_IF_ERROR(ws->Reserve(s, tokens));
  MOED_RETURN_IF_ERROR(ws->partial.Reserve(static_cast<size_t>(gemv ? kMaxSplits : 1) * A * H * sizeof(float),
                                           "expert partial sums"));
  int32_t* experts = outs.experts != nullptr ? outs.experts : ws->experts.as<int32_t>();
  float* weights = outs.weights != nullptr ? outs.weights : ws->weights.as<float>();
  MOED_RETURN_IF_ERROR(Route(cublas, stream, s, l, w, x, tokens, ws->logits.as<float>(), experts, weights, c));
  PermuteArgs pa;
  pa.experts = experts;
  pa.assignments = A;
  pa.top_k = s.top_k;
  pa.num_experts = E;
  pa.capacity = capacity;
  pa.counts = outs.counts;
  pa.offsets = ws->meta.as<int32_t>() + 2 * E;
  pa.row_token = ws->row_token.as<int32_t>();
  pa.assign_row = ws->assign_row.as<int32_t>();
  MOED_RETURN_IF_ERROR(c.After(LaunchPermute(pa, stream), stream, "expert permutation"));
  int32_t* counts = host_counts_.as<int32_t>();
  MOED_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(counts, pa.counts, 2 * E * sizeof(int32_t), cudaMemcpyDeviceToHost, stream));
  // The shared expert does not depend on routing: queued before the wait for the counts.
  const float* shared_out = nullptr;
  const float* shared_gate = nullptr;
  MOED_RETURN_IF_ERROR(QueueSharedExpert(cublas, stream, s, w, x, tokens, ws, check, &shared_out, &shared_gate));
  MOED_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));

  const int32_t* kept = counts + E;
  std::vector<int64_t> routed(counts, counts + E), used(kept, kept + E);
  cache_->RecordRouting(l, routed);
  cache::WavePlanner planner(cache_.get(), l, used, /*wait_loads=*/false);
  bf16* hbuf = ws->h.as<bf16>();
  float* partial = ws->partial.as<float>();
  int splits = 1, launches = 0;
  std::vector<SlotExpert> group;
  // One launch over the experts of `group` (their slots already waited on): its record, then both projections.
  auto launch = [&]() -> absl::Status {
    if (group.empty()) return absl::OkStatus();
    if (launches >= max_records_) return absl::InternalError("cached MoE: more launch groups than records");
    char* host = host_records_.as<char>() + launches * record_bytes_;
    char* dev = records_.as<char>() + launches * record_bytes_;
    ++launches;
    WriteLaunchRecord(kept, E, group, F, H, tile_rows, host);
    MOED_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dev, host, record_bytes_, cudaMemcpyHostToDevice, stream));
    ExpertPointers ptrs;
    ptrs.gate_up = reinterpret_cast<const bf16* const*>(dev);
    ptrs.down = ptrs.gate_up + E;
    ExpertSchedule sched;
    sched.offsets = pa.offsets;  // the whole layer's: rows keep their places in h and partial
    sched.tile_prefix = reinterpret_cast<const int32_t*>(ptrs.down + E);
    sched.active = sched.tile_prefix + E + 1;
    sched.row_token = pa.row_token;
    sched.num_experts = E;
    sched.tile_rows = tile_rows;
    group.clear();
    if (gemv) {
      MOED_RETURN_IF_ERROR(c.After(LaunchGroupedGateUpGemv(sched, ptrs, x, H, F, A, hbuf, stream), stream,
                                   "grouped gate_up GEMV + SwiGLU (cached)"));
      int got = 1;  // PlanGemv depends on (A, E, H, F, sm_count) only: the same for every group of the layer
      MOED_RETURN_IF_ERROR(c.After(LaunchGroupedDownGemv(sched, ptrs, hbuf, H, F, A, sm_count, partial, &got, stream),
                                   stream, "grouped down GEMV (cached)"));
      splits = got;
      return absl::OkStatus();
    }
    MOED_RETURN_IF_ERROR(c.After(LaunchGroupedGateUpMma(sched, ptrs, x, H, F, A, hbuf, stream), stream,
                                 "grouped gate_up MMA + SwiGLU (cached)"));
    return c.After(LaunchGroupedDownMma(sched, ptrs, hbuf, H, F, A, partial, stream), stream,
                   "grouped down MMA (cached)");
  };
  while (true) {
    MOED_ASSIGN_OR_RETURN(const cache::Wave* wave, planner.Next());
    if (wave == nullptr) break;
    // Hits first (a prefetch may still be landing: their events are waited on too, on the stream), then the misses.
    for (const bool hits : {true, false}) {
      for (const cache::PlannedExpert& p : wave->experts) {
        if (p.hit != hits) continue;
        MOED_RETURN_IF_ERROR(cache_->WaitLoaded(p.slot));
        group.push_back({p.expert, reinterpret_cast<uintptr_t>(transfer_->slot_ptr(p.slot))});
      }
      MOED_RETURN_IF_ERROR(launch());
    }
  }
  // Every kept assignment's partial row was written by exactly one group: one combine in the fixed order.
  MOED_RETURN_IF_ERROR(JoinSharedExpert(stream, ws));
  return c.After(LaunchCombine(partial, splits, A, pa.assign_row, weights, tokens, s.top_k, H, shared_out,
                               shared_gate, out, stream),
                 stream, "expert combine");
}

absl::StatusOr<int> CachedMoe::Prefetch(const CublasHandle& cublas, cudaStream_t stream, const MoeShape& s, int l,
                                        const DeviceLayer& w, const bf16* x, int tokens, MoeWorkspace* ws,
                                        const LaunchChecker* check) {
  if (tokens == 0) return 0;
  const LaunchChecker& c = check != nullptr ? *check : kNoCheck;
  const size_t A = static_cast<size_t>(tokens) * s.top_k;
  MOED_RETURN_IF_ERROR(ws->Reserve(s, tokens));
  MOED_RETURN_IF_ERROR(host_ids_.Reserve(A * sizeof(int32_t), "predicted experts (host)"));
  MOED_RETURN_IF_ERROR(Route(cublas, stream, s, l, w, x, tokens, ws->logits.as<float>(), ws->experts.as<int32_t>(),
                             ws->weights.as<float>(), c));
  int32_t* ids = host_ids_.as<int32_t>();
  MOED_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(ids, ws->experts.get(), A * sizeof(int32_t), cudaMemcpyDeviceToHost, stream));
  MOED_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  return cache::PrefetchExperts(cache_.get(), l, cache::PrefetchOrder(absl::MakeConstSpan(ids, A), s.num_experts));
}

}  // namespace moed::cuda
