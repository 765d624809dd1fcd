// The per-step inputs and outputs of the CUDA backend in one pinned host block and one device block each: one
// upload and one download per step (the CUDA-graph replay reads and writes fixed device addresses).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "engine/backend/cuda/device_buffer.h"
#include "engine/backend/cuda/host/step_plan.h"
#include "engine/backend/cuda/sampling.h"

namespace moed::cuda {

// Device views of one step's inputs (inside StepIo's device block). Shapes as in StepPlan.
struct StepInputs {
  const int32_t* ids = nullptr;            // (rows)
  const int32_t* positions = nullptr;      // (rows)
  const int64_t* kv_rows = nullptr;        // (rows)
  const int32_t* table_offsets = nullptr;  // (rows)
  const int32_t* out_rows = nullptr;       // (out rows)
  const DeviceSamplingParams* params = nullptr;  // (out rows)
  const PrefillTile* prefill_tiles = nullptr;  // (prefill tiles), flash attention of prefill chunks
  const int32_t* decode_rows = nullptr;        // (decode rows), the rows left to flash-decoding beside the tiles
  const int32_t* block_tables = nullptr;   // (entries), last: its size varies between steps of one shape
};

// Device views of one step's small outputs (inside StepIo's device output block), downloaded in one copy.
struct StepOutputs {
  int32_t* tokens = nullptr;    // (out rows)
  float* logprobs = nullptr;    // (out rows)
  int32_t* counts = nullptr;    // (layers, 2 * experts): routed | kept per expert, grouped MoE layers only
};

// Owns the blocks; not thread-safe (the engine thread). Grow-only: addresses change only when a step needs more
// room (DeviceBuffer::AllocationEpoch then moves, and captured graphs are rebuilt).
class StepIo {
 public:
  // Packs plan + params into the pinned block and copies it to the device on `stream` (one cudaMemcpyAsync).
  // The pinned block must not be rewritten before the stream passes the copy: the next Upload follows the previous
  // step's synchronisation.
  absl::Status Upload(const StepPlan& plan, const std::vector<DeviceSamplingParams>& params, cudaStream_t stream);
  // Reserves the output block for `out_rows` rows and `count_entries` counts.
  absl::Status ReserveOutputs(int out_rows, int64_t count_entries);
  // Copies the output block to the pinned host block on `stream` (one cudaMemcpyAsync); read after a sync.
  absl::Status Download(cudaStream_t stream);

  const StepInputs& in() const { return in_; }
  const StepOutputs& dev_out() const { return out_; }
  // Host copies after Download + sync.
  const int32_t* host_tokens() const { return host_out_.as<int32_t>() + (tokens_off_ / sizeof(int32_t)); }
  const float* host_logprobs() const { return reinterpret_cast<const float*>(host_out_.as<char>() + logprobs_off_); }
  const int32_t* host_counts() const {
    return reinterpret_cast<const int32_t*>(host_out_.as<char>() + counts_off_);
  }

 private:
  PinnedBuffer host_in_, host_out_;
  DeviceBuffer dev_in_, dev_out_;
  StepInputs in_;
  StepOutputs out_;
  size_t tokens_off_ = 0, logprobs_off_ = 0, counts_off_ = 0, out_bytes_ = 0;
};

}  // namespace moed::cuda
