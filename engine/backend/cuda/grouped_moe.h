// Grouped expert kernels of the device-side MoE path: every expert's rows in one launch per projection, row ranges
// and weight pointers read from device memory (no host synchronisation). Kernels per projection: a streaming GEMV
// for few rows per expert (decode), tensor-core tiles for many (mma.sync bf16 with a cp.async pipeline, sm_80+,
// grouped_gemm_tc.cu), and the older WMMA tiles kept as their reference; plus the combine.
#pragma once

#include <cstdint>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "engine/backend/cuda/host/moe_schedule.h"

namespace moed::cuda {

// The device-side schedule of one MoE call, written by LaunchPermute (permute.h) and read by the kernels below.
struct ExpertSchedule {
  const int32_t* offsets = nullptr;      // (E+1) first permuted row of each expert; offsets[E] = kept rows
  const int32_t* tile_prefix = nullptr;  // (E+1) tiles of tile_rows rows before each expert
  const int32_t* active = nullptr;       // (E+1) active expert ids ascending, -1 padded; active[E] = count
  const int32_t* row_token = nullptr;    // (rows) source token of each permuted row
  int num_experts = 0;
  int tile_rows = kMmaTileRows;  // rows per tile of tile_prefix (PermuteArgs::tile_rows); see the Mma/Wmma kernels
};

// Weight pointers of one MoE layer on the device: gate_up[e] → (2F, H) gate rows then up rows; down[e] → (H, F).
struct ExpertPointers {
  const __nv_bfloat16* const* gate_up = nullptr;  // (E)
  const __nv_bfloat16* const* down = nullptr;     // (E)
};

// h (rows, F) bf16 = silu(g) · u with [g | u] = x[row_token[r]] · gate_upᵀ of the row's expert, g and u rounded to
// bf16 first (as the per-expert path, whose GEMM writes bf16). x (tokens, H) bf16. H % 8 == 0.
// `assignments` (tokens × top_k) bounds the kept rows: the grids are sized by it, CTAs past the work exit.
cudaError_t LaunchGroupedGateUpGemv(const ExpertSchedule& s, const ExpertPointers& w, const __nv_bfloat16* x, int H,
                                    int F, int assignments, __nv_bfloat16* h, cudaStream_t stream);
// Tensor-core tiles: s.tile_rows must be kTcSmallRows (= kMmaTileRows) or kTcLargeRows (host/tc_gemm_plan.h
// TcTileRows picks), else cudaErrorInvalidValue. The Wmma kernels (the reference) need s.tile_rows == kMmaTileRows.
cudaError_t LaunchGroupedGateUpMma(const ExpertSchedule& s, const ExpertPointers& w, const __nv_bfloat16* x, int H,
                                   int F, int assignments, __nv_bfloat16* h, cudaStream_t stream);
cudaError_t LaunchGroupedGateUpWmma(const ExpertSchedule& s, const ExpertPointers& w, const __nv_bfloat16* x, int H,
                                    int F, int assignments, __nv_bfloat16* h, cudaStream_t stream);

// partial (splits, assignments, H) fp32: partial[s][r] = h[r, K range s] · down[K range s]ᵀ of the row's expert.
// F % 8 == 0. Returns the number of splits used in *splits (1 for the MMA kernel).
cudaError_t LaunchGroupedDownGemv(const ExpertSchedule& s, const ExpertPointers& w, const __nv_bfloat16* h, int H,
                                  int F, int assignments, int sm_count, float* partial, int* splits,
                                  cudaStream_t stream);
cudaError_t LaunchGroupedDownMma(const ExpertSchedule& s, const ExpertPointers& w, const __nv_bfloat16* h, int H,
                                 int F, int assignments, float* partial, cudaStream_t stream);
cudaError_t LaunchGroupedDownWmma(const ExpertSchedule& s, const ExpertPointers& w, const __nv_bfloat16* h, int H,
                                  int F, int assignments, float* partial, cudaStream_t stream);

// out (tokens, H) fp32 = Σ_k weights[t,k] · Σ_s partial[s][assign_row[t,k]] over kept slots (k ascending, then the
// splits ascending: deterministic) + (shared_out ? sigmoid(shared_gate[t]) · shared_out[t] : 0), shared_gate null →
// gate 1. The weighted scatter of the down projection, fused with its split-K reduction. partial is
// (splits, assignments, H), row stride H.
cudaError_t LaunchCombine(const float* partial, int splits, int assignments, const int32_t* assign_row,
                          const float* weights, int tokens, int top_k, int H, const float* shared_out,
                          const float* shared_gate, float* out, cudaStream_t stream);

}  // namespace moed::cuda
