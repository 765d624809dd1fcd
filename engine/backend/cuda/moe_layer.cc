// MoE block orchestration (host side): launches, one D2H of the per-expert counts, per-expert cuBLAS GEMMs.
#include "engine/backend/cuda/moe_layer.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/permute.h"
#include "engine/backend/cuda/router.h"
#include "engine/common/status_macros.h"

namespace moed::cuda {
namespace {

const LaunchChecker kNoCheck(false);

}  // namespace

absl::Status MoeWorkspace::Reserve(const MoeShape& s, int tokens) {
  const size_t T = std::max(tokens, 1), A = T * s.top_k, E = s.num_experts, H = s.hidden, F = s.ffn;
  MOED_RETURN_IF_ERROR(logits.Reserve(T * E * sizeof(float), "router logits"));
  MOED_RETURN_IF_ERROR(experts.Reserve(A * sizeof(int32_t), "router experts"));
  MOED_RETURN_IF_ERROR(weights.Reserve(A * sizeof(float), "router weights"));
  MOED_RETURN_IF_ERROR(meta.Reserve((3 * E + 1) * sizeof(int32_t), "expert counts"));
  MOED_RETURN_IF_ERROR(row_token.Reserve(A * sizeof(int32_t), "permutation"));
  MOED_RETURN_IF_ERROR(assign_row.Reserve(A * sizeof(int32_t), "permutation"));
  MOED_RETURN_IF_ERROR(xs.Reserve(A * H * sizeof(bf16), "permuted activations"));
  MOED_RETURN_IF_ERROR(gate_up.Reserve(A * 2 * F * sizeof(bf16), "expert gate/up activations"));
  MOED_RETURN_IF_ERROR(h.Reserve(A * F * sizeof(bf16), "expert hidden activations"));
  MOED_RETURN_IF_ERROR(ys.Reserve(A * H * sizeof(float), "expert outputs"));
  MOED_RETURN_IF_ERROR(host_meta.Reserve((3 * E + 1) * sizeof(int32_t), "expert counts (host)"));
  if (s.shared_ffn > 0) {
    const size_t SF = s.shared_ffn;
    MOED_RETURN_IF_ERROR(shared_gate_up.Reserve(T * 2 * SF * sizeof(bf16), "shared expert gate/up"));
    MOED_RETURN_IF_ERROR(shared_h.Reserve(T * SF * sizeof(bf16), "shared expert hidden"));
    MOED_RETURN_IF_ERROR(shared_out.Reserve(T * H * sizeof(float), "shared expert output"));
    MOED_RETURN_IF_ERROR(shared_gate.Reserve(T * sizeof(float), "shared expert gate"));
  }
  return absl::OkStatus();
}

absl::Status RunFfn(const CublasHandle& cublas, cudaStream_t stream, const DeviceFfn& f, int hidden, const bf16* x,
                    int tokens, bf16* gate_up, bf16* h, float* out, const LaunchChecker* check) {
  const LaunchChecker& c = check != nullptr ? *check : kNoCheck;
  MOED_RETURN_IF_ERROR(
      c.After(GemmXWt(cublas, x, tokens, hidden, f.gate, 2 * f.width, gate_up, OutType::kBF16), stream,
              "gate_up GEMM"));
  MOED_RETURN_IF_ERROR(c.After(LaunchSwiGlu(gate_up, tokens, f.width, h, stream), stream, "SwiGLU"));
  return c.After(GemmXWt(cublas, h, tokens, f.width, f.down, hidden, out, OutType::kF32), stream, "down GEMM");
}

absl::Status QueueSharedExpert(const CublasHandle& cublas, cudaStream_t stream, const MoeShape& s,
                               const DeviceLayer& w, const bf16* x, int tokens, MoeWorkspace* ws,
                               const LaunchChecker* check, const float** shared_out, const float** shared_gate) {
  *shared_out = nullptr;
  *shared_gate = nullptr;
  if (s.shared_ffn <= 0) return absl::OkStatus();
  const LaunchChecker& c = check != nullptr ? *check : kNoCheck;
  const CublasHandle& h = ws->side != nullptr ? ws->side->cublas() : cublas;
  cudaStream_t st = ws->side != nullptr ? ws->side->stream() : stream;
  if (ws->side != nullptr) {
    MOED_RETURN_IF_ERROR(ws->side->Fork(stream));
    ws->side_pending = true;
  }
  MOED_RETURN_IF_ERROR(c.After(RunFfn(h, st, w.shared_expert, s.hidden, x, tokens, ws->shared_gate_up.as<bf16>(),
                                      ws->shared_h.as<bf16>(), ws->shared_out.as<float>(), check),
                               st, "shared expert"));
  *shared_out = ws->shared_out.as<float>();
  if (w.shared_expert_gate == nullptr) return absl::OkStatus();
  MOED_RETURN_IF_ERROR(c.After(
      GemmXWt(h, x, tokens, s.hidden, w.shared_expert_gate, 1, ws->shared_gate.as<float>(), OutType::kF32), st,
      "shared expert gate GEMM"));
  *shared_gate = ws->shared_gate.as<float>();
  return absl::OkStatus();
}

absl::Status JoinSharedExpert(cudaStream_t stream, MoeWorkspace* ws) {
  if (!ws->side_pending) return absl::OkStatus();
  ws->side_pending = false;
  return ws->side->Join(stream);
}

absl::Status RunMoe(const CublasHandle& cublas, cudaStream_t stream, const MoeShape& s, const DeviceLayer& w,
                    const bf16* x, int tokens, int64_t capacity, float* out, MoeWorkspace* ws, MoeCounts* counts,
                    std::vector<int32_t>* experts_out, std::vector<float>* weights_out,
                    const LaunchChecker* check) {
  if (tokens == 0) return absl::OkStatus();
  const LaunchChecker& c = check != nullptr ? *check : kNoCheck;
  MOED_RETURN_IF_ERROR(ws->Reserve(s, tokens));
  const int E = s.num_experts, A = tokens * s.top_k, H = s.hidden, F = s.ffn;
  float* logits = ws->logits.as<float>();
  MOED_RETURN_IF_ERROR(
      c.After(GemmXWt(cublas, x, tokens, H, w.router, E, logits, OutType::kF32), stream, "router GEMM"));
  int32_t* experts = ws->experts.as<int32_t>();
  float* weights = ws->weights.as<float>();
  MOED_RETURN_IF_ERROR(
      c.After(LaunchRouterTopK(logits, tokens, E, s.top_k, s.normalize, experts, weights, stream), stream,
              "router top-k"));

  PermuteArgs pa;
  pa.experts = experts;
  pa.assignments = A;
  pa.top_k = s.top_k;
  pa.num_experts = E;
  pa.capacity = capacity;
  pa.counts = ws->meta.as<int32_t>();
  pa.offsets = pa.counts + 2 * E;
  pa.row_token = ws->row_token.as<int32_t>();
  pa.assign_row = ws->assign_row.as<int32_t>();
  MOED_RETURN_IF_ERROR(c.After(LaunchPermute(pa, stream), stream, "expert permutation"));
  int32_t* host = ws->host_meta.as<int32_t>();
  MOED_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(host, pa.counts, (3 * E + 1) * sizeof(int32_t), cudaMemcpyDeviceToHost, stream));

  // The shared expert does not depend on routing: queue it before waiting for the counts.
  const float* shared_out = nullptr;
  const float* shared_gate = nullptr;
  MOED_RETURN_IF_ERROR(
      QueueSharedExpert(cublas, stream, s, w, x, tokens, ws, check, &shared_out, &shared_gate));
  if (experts_out != nullptr) {
    experts_out->resize(A);
    MOED_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(experts_out->data(), experts, A * sizeof(int32_t), cudaMemcpyDeviceToHost, stream));
  }
  if (weights_out != nullptr) {
    weights_out->resize(A);
    MOED_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(weights_out->data(), weights, A * sizeof(float), cudaMemcpyDeviceToHost, stream));
  }
  MOED_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  const int32_t* kept = host + E;
  const int32_t* offsets = host + 2 * E;
  if (counts != nullptr) {
    counts->routed.assign(host, host + E);
    counts->kept.assign(kept, kept + E);
  }
  const int rows = offsets[E];

  bf16* xs = ws->xs.as<bf16>();
  bf16* gate_up = ws->gate_up.as<bf16>();
  bf16* hbuf = ws->h.as<bf16>();
  float* ys = ws->ys.as<float>();
  MOED_RETURN_IF_ERROR(c.After(LaunchGatherRows(x, pa.row_token, rows, H, xs, stream), stream, "expert row gather"));
  for (int e = 0; e < E; ++e) {
    if (kept[e] == 0) continue;
    const int64_t o = offsets[e];
    MOED_RETURN_IF_ERROR(c.After(GemmXWt(cublas, xs + o * H, kept[e], H, w.experts[e].gate, 2 * F,
                                         gate_up + o * 2 * F, OutType::kBF16),
                                 stream, "expert gate_up GEMM"));
  }
  MOED_RETURN_IF_ERROR(c.After(LaunchSwiGlu(gate_up, rows, F, hbuf, stream), stream, "expert SwiGLU"));
  for (int e = 0; e < E; ++e) {
    if (kept[e] == 0) continue;
    const int64_t o = offsets[e];
    MOED_RETURN_IF_ERROR(c.After(
        GemmXWt(cublas, hbuf + o * F, kept[e], F, w.experts[e].down, H, ys + o * H, OutType::kF32), stream,
        "expert down GEMM"));
  }
  MOED_RETURN_IF_ERROR(JoinSharedExpert(stream, ws));
  return c.After(
      LaunchUnpermute(ys, pa.assign_row, weights, tokens, s.top_k, H, shared_out, shared_gate, out, stream), stream,
      "expert un-permutation");
}

}  // namespace moed::cuda
