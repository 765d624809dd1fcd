// StepIo: packing of the step's index arrays and sampling params, and the one upload / one download.
#include "engine/backend/cuda/step_io.h"

#include <algorithm>
#include <cstring>

#include "engine/backend/cuda/cuda_check.h"
#include "engine/common/status_macros.h"

namespace moed::cuda {
namespace {

size_t Align16(size_t n) { return (n + 15) & ~static_cast<size_t>(15); }

}  // namespace

absl::Status StepIo::Upload(const StepPlan& plan, const std::vector<DeviceSamplingParams>& params,
                            cudaStream_t stream) {
  const size_t T = plan.ids.size(), R = plan.out_rows.size(), B = plan.block_tables.size();
  const size_t P = plan.prefill_tiles.size(), D = plan.decode_rows.size();
  size_t off = 0;
  const size_t o_ids = off;
  off = Align16(off + T * sizeof(int32_t));
  const size_t o_pos = off;
  off = Align16(off + T * sizeof(int32_t));
  const size_t o_kv = off;
  off = Align16(off + T * sizeof(int64_t));
  const size_t o_tab = off;
  off = Align16(off + T * sizeof(int32_t));
  const size_t o_out = off;
  off = Align16(off + R * sizeof(int32_t));
  const size_t o_par = off;
  off = Align16(off + R * sizeof(DeviceSamplingParams));
  const size_t o_tiles = off;
  off = Align16(off + P * sizeof(PrefillTile));
  const size_t o_drows = off;
  off = Align16(off + D * sizeof(int32_t));
  const size_t o_bt = off;
  off = Align16(off + B * sizeof(int32_t));
  const size_t bytes = std::max<size_t>(off, 16);
  MOED_RETURN_IF_ERROR(host_in_.Reserve(bytes, "step inputs (host)"));
  // Grown by half again when short: block tables lengthen step by step, and every move of the device block costs
  // the captured graphs (they keep its address).
  if (dev_in_.bytes() < bytes) MOED_RETURN_IF_ERROR(dev_in_.Reserve(bytes + bytes / 2, "step inputs"));
  char* h = host_in_.as<char>();
  auto put = [&](size_t o, const void* src, size_t n) {
    if (n > 0) std::memcpy(h + o, src, n);
  };
  put(o_ids, plan.ids.data(), T * sizeof(int32_t));
  put(o_pos, plan.positions.data(), T * sizeof(int32_t));
  put(o_kv, plan.kv_rows.data(), T * sizeof(int64_t));
  put(o_tab, plan.table_offsets.data(), T * sizeof(int32_t));
  put(o_out, plan.out_rows.data(), R * sizeof(int32_t));
  put(o_par, params.data(), std::min(R, params.size()) * sizeof(DeviceSamplingParams));
  put(o_tiles, plan.prefill_tiles.data(), P * sizeof(PrefillTile));
  put(o_drows, plan.decode_rows.data(), D * sizeof(int32_t));
  put(o_bt, plan.block_tables.data(), B * sizeof(int32_t));
  char* d = dev_in_.as<char>();
  in_.ids = reinterpret_cast<const int32_t*>(d + o_ids);
  in_.positions = reinterpret_cast<const int32_t*>(d + o_pos);
  in_.kv_rows = reinterpret_cast<const int64_t*>(d + o_kv);
  in_.table_offsets = reinterpret_cast<const int32_t*>(d + o_tab);
  in_.out_rows = reinterpret_cast<const int32_t*>(d + o_out);
  in_.params = reinterpret_cast<const DeviceSamplingParams*>(d + o_par);
  in_.prefill_tiles = reinterpret_cast<const PrefillTile*>(d + o_tiles);
  in_.decode_rows = reinterpret_cast<const int32_t*>(d + o_drows);
  in_.block_tables = reinterpret_cast<const int32_t*>(d + o_bt);
  return CudaStatus(cudaMemcpyAsync(d, h, off, cudaMemcpyHostToDevice, stream), "upload of the step inputs");
}

absl::Status StepIo::ReserveOutputs(int out_rows, int64_t count_entries) {
  const size_t R = std::max(out_rows, 1);
  tokens_off_ = 0;
  logprobs_off_ = Align16(R * sizeof(int32_t));
  counts_off_ = Align16(logprobs_off_ + R * sizeof(float));
  out_bytes_ = Align16(counts_off_ + static_cast<size_t>(std::max<int64_t>(count_entries, 1)) * sizeof(int32_t));
  MOED_RETURN_IF_ERROR(host_out_.Reserve(out_bytes_, "step outputs (host)"));
  MOED_RETURN_IF_ERROR(dev_out_.Reserve(out_bytes_, "step outputs"));
  char* d = dev_out_.as<char>();
  out_.tokens = reinterpret_cast<int32_t*>(d + tokens_off_);
  out_.logprobs = reinterpret_cast<float*>(d + logprobs_off_);
  out_.counts = reinterpret_cast<int32_t*>(d + counts_off_);
  return absl::OkStatus();
}

absl::Status StepIo::Download(cudaStream_t stream) {
  return CudaStatus(cudaMemcpyAsync(host_out_.as<void>(), dev_out_.get(), out_bytes_, cudaMemcpyDeviceToHost, stream),
                    "download of the step outputs");
}

}  // namespace moed::cuda
