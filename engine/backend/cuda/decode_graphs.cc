// DecodeGraphs: capture (thread-local mode), instantiate, replay, and invalidation by allocation epoch.
#include "engine/backend/cuda/decode_graphs.h"

#include "engine/backend/cuda/cuda_check.h"
#include "engine/backend/cuda/device_buffer.h"
#include "engine/common/status_macros.h"

#include <atomic>

namespace moed::cuda {
namespace {

std::atomic<uint64_t> g_replays{0};

}  // namespace

uint64_t DecodeGraphReplays() { return g_replays.load(std::memory_order_relaxed); }

DecodeGraphs::~DecodeGraphs() { Clear(); }

void DecodeGraphs::Clear() {
  for (auto& [rows, e] : graphs_) {
    if (e.exec != nullptr) (void)cudaGraphExecDestroy(e.exec);
  }
  graphs_.clear();
}

absl::Status DecodeGraphs::Run(int rows, cudaStream_t stream, const std::function<absl::Status()>& launches,
                               bool* replayed) {
  *replayed = false;
  const uint64_t epoch = DeviceBuffer::AllocationEpoch();
  auto it = graphs_.find(rows);
  if (it != graphs_.end() && it->second.epoch != epoch) {
    (void)cudaGraphExecDestroy(it->second.exec);
    graphs_.erase(it);
    it = graphs_.end();
  }
  if (it == graphs_.end()) {
    const auto warm = eager_.find(rows);
    const auto failed = failed_.find(rows);
    const bool try_capture =
        warm != eager_.end() && warm->second == epoch && (failed == failed_.end() || failed->second != epoch);
    if (!try_capture) {
      MOED_RETURN_IF_ERROR(launches());
      eager_[rows] = DeviceBuffer::AllocationEpoch();
      return absl::OkStatus();
    }
    MOED_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    const absl::Status st = launches();
    cudaGraph_t graph = nullptr;
    const cudaError_t end = cudaStreamEndCapture(stream, &graph);
    cudaGraphExec_t exec = nullptr;
    cudaError_t inst = cudaErrorUnknown;
    if (st.ok() && end == cudaSuccess && DeviceBuffer::AllocationEpoch() == epoch) {
      inst = cudaGraphInstantiate(&exec, graph, 0);
    }
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    if (inst != cudaSuccess) {
      (void)cudaGetLastError();  // a capture error is not sticky; clear it and run eagerly
      failed_[rows] = epoch;
      MOED_RETURN_IF_ERROR(launches());
      eager_[rows] = DeviceBuffer::AllocationEpoch();
      return absl::OkStatus();
    }
    it = graphs_.emplace(rows, Entry{exec, epoch}).first;
  }
  MOED_CUDA_RETURN_IF_ERROR(cudaGraphLaunch(it->second.exec, stream));
  *replayed = true;
  g_replays.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

}  // namespace moed::cuda
