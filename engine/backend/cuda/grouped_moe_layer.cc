// The device-side grouped MoE block (RunMoeGrouped): launches only, no host synchronisation.
#include <algorithm>
#include <vector>

#include "absl/strings/str_format.h"
#include "engine/backend/cuda/host/moe_schedule.h"
#include "engine/backend/cuda/host/tc_gemm_plan.h"
#include "engine/backend/cuda/moe_layer.h"
#include "engine/backend/cuda/permute.h"
#include "engine/backend/cuda/router.h"
#include "engine/common/status_macros.h"

namespace moed::cuda {
namespace {

const LaunchChecker kNoCheck(false);
constexpr int kMaxSplits = 8;  // host/moe_schedule.h PlanGemv

}  // namespace

bool GroupedMoeSupported(const MoeShape& s) { return s.hidden % 8 == 0 && s.ffn % 8 == 0; }

absl::Status BuildExpertPointers(const DeviceLayer& w, int num_experts, cudaStream_t stream, DeviceBuffer* table,
                                 ExpertPointers* out) {
  std::vector<const bf16*> host(2 * static_cast<size_t>(num_experts));
  for (int e = 0; e < num_experts; ++e) {
    host[e] = w.experts[e].gate;  // gate rows then up rows (cuda_weights.h)
    host[num_experts + e] = w.experts[e].down;
  }
  MOED_RETURN_IF_ERROR(table->Reserve(std::max<size_t>(host.size(), 1) * sizeof(bf16*), "expert pointer table"));
  MOED_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(table->get(), host.data(), host.size() * sizeof(bf16*),
                                            cudaMemcpyHostToDevice, stream));
  MOED_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  out->gate_up = table->as<const bf16*>();
  out->down = table->as<const bf16*>() + num_experts;
  return absl::OkStatus();
}

absl::Status RunMoeGrouped(const CublasHandle& cublas, cudaStream_t stream, const MoeShape& s, const DeviceLayer& w,
                           const ExpertPointers& ptrs, const bf16* x, int tokens, int64_t capacity, float* out,
                           MoeWorkspace* ws, const GroupedMoeOutputs& outs, int sm_count, GroupedKernel kernel,
                           const LaunchChecker* check) {
  if (tokens == 0) return absl::OkStatus();
  if (!GroupedMoeSupported(s)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("grouped MoE: hidden %d and ffn %d must be multiples of 8", s.hidden, s.ffn));
  }
  const LaunchChecker& c = check != nullptr ? *check : kNoCheck;
  const int E = s.num_experts, A = tokens * s.top_k, H = s.hidden, F = s.ffn;
  const bool gemv = kernel == GroupedKernel::kGemv || (kernel == GroupedKernel::kAuto && UseGemv(tokens, s.top_k, E));
  MOED_RETURN_IF_ERROR(ws->Reserve(s, tokens));
  MOED_RETURN_IF_ERROR(ws->tile_prefix.Reserve((E + 1) * sizeof(int32_t), "expert tile schedule"));
  MOED_RETURN_IF_ERROR(ws->active.Reserve((E + 1) * sizeof(int32_t), "active experts"));
  MOED_RETURN_IF_ERROR(ws->partial.Reserve(static_cast<size_t>(gemv ? kMaxSplits : 1) * A * H * sizeof(float),
                                           "expert partial sums"));

  float* logits = ws->logits.as<float>();
  MOED_RETURN_IF_ERROR(
      c.After(GemmXWt(cublas, x, tokens, H, w.router, E, logits, OutType::kF32), stream, "router GEMM"));
  int32_t* experts = outs.experts != nullptr ? outs.experts : ws->experts.as<int32_t>();
  float* weights = outs.weights != nullptr ? outs.weights : ws->weights.as<float>();
  MOED_RETURN_IF_ERROR(c.After(LaunchRouterTopK(logits, tokens, E, s.top_k, s.normalize, experts, weights, stream),
                               stream, "router top-k"));
  PermuteArgs pa;
  pa.experts = experts;
  pa.assignments = A;
  pa.top_k = s.top_k;
  pa.num_experts = E;
  pa.capacity = capacity;
  pa.counts = outs.counts != nullptr ? outs.counts : ws->meta.as<int32_t>();
  pa.offsets = ws->meta.as<int32_t>() + 2 * E;
  pa.row_token = ws->row_token.as<int32_t>();
  pa.assign_row = ws->assign_row.as<int32_t>();
  pa.tile_rows = kernel == GroupedKernel::kWmma ? kMmaTileRows : TcTileRows(tokens, s.top_k, E);
  pa.tile_prefix = ws->tile_prefix.as<int32_t>();
  pa.active = ws->active.as<int32_t>();
  MOED_RETURN_IF_ERROR(c.After(LaunchPermute(pa, stream), stream, "expert permutation"));

  const float* shared_out = nullptr;
  const float* shared_gate = nullptr;
  MOED_RETURN_IF_ERROR(
      QueueSharedExpert(cublas, stream, s, w, x, tokens, ws, check, &shared_out, &shared_gate));

  ExpertSchedule sched;
  sched.offsets = pa.offsets;
  sched.tile_prefix = pa.tile_prefix;
  sched.active = pa.active;
  sched.row_token = pa.row_token;
  sched.num_experts = E;
  sched.tile_rows = pa.tile_rows;
  bf16* hbuf = ws->h.as<bf16>();
  float* partial = ws->partial.as<float>();
  int splits = 1;
  if (gemv) {
    MOED_RETURN_IF_ERROR(c.After(LaunchGroupedGateUpGemv(sched, ptrs, x, H, F, A, hbuf, stream), stream,
                                 "grouped gate_up GEMV + SwiGLU"));
    MOED_RETURN_IF_ERROR(c.After(LaunchGroupedDownGemv(sched, ptrs, hbuf, H, F, A, sm_count, partial, &splits, stream),
                                 stream, "grouped down GEMV"));
  } else if (kernel == GroupedKernel::kWmma) {
    MOED_RETURN_IF_ERROR(c.After(LaunchGroupedGateUpWmma(sched, ptrs, x, H, F, A, hbuf, stream), stream,
                                 "grouped gate_up WMMA + SwiGLU"));
    MOED_RETURN_IF_ERROR(
        c.After(LaunchGroupedDownWmma(sched, ptrs, hbuf, H, F, A, partial, stream), stream, "grouped down WMMA"));
  } else {
    MOED_RETURN_IF_ERROR(c.After(LaunchGroupedGateUpMma(sched, ptrs, x, H, F, A, hbuf, stream), stream,
                                 "grouped gate_up MMA + SwiGLU"));
    MOED_RETURN_IF_ERROR(
        c.After(LaunchGroupedDownMma(sched, ptrs, hbuf, H, F, A, partial, stream), stream, "grouped down MMA"));
  }
  MOED_RETURN_IF_ERROR(JoinSharedExpert(stream, ws));
  return c.After(LaunchCombine(partial, splits, A, pa.assign_row, weights, tokens, s.top_k, H, shared_out,
                               shared_gate, out, stream),
                 stream, "expert combine");
}

}  // namespace moed::cuda
