// CUDA graphs of decode steps, one per row count (batch size): the first step of a size runs eagerly and reserves
// every buffer, the second is captured and replayed from then on, until a buffer moves (DeviceBuffer epoch).
#pragma once

#include <cstdint>
#include <functional>
#include <map>

#include <cuda_runtime.h>

#include "absl/status/status.h"

namespace moed::cuda {

// Graph replays in this process so far (all DecodeGraphs; for tests and benches).
uint64_t DecodeGraphReplays();

// Not thread-safe (the engine thread). Destroys its graphs on destruction (before the stream goes).
class DecodeGraphs {
 public:
  DecodeGraphs() = default;
  ~DecodeGraphs();
  DecodeGraphs(const DecodeGraphs&) = delete;
  DecodeGraphs& operator=(const DecodeGraphs&) = delete;

  // Runs the step of `rows` rows whose launches `launches` enqueues on `stream`: replays its graph when one is valid,
  // captures and replays it when this size already ran eagerly at the current allocation epoch, else runs `launches`
  // eagerly. A capture that fails (or allocates) is dropped and the step runs eagerly; that size is then not tried
  // again until the epoch moves. `*replayed` says whether a graph ran.
  absl::Status Run(int rows, cudaStream_t stream, const std::function<absl::Status()>& launches, bool* replayed);

  size_t size() const { return graphs_.size(); }
  void Clear();

 private:
  struct Entry {
    cudaGraphExec_t exec = nullptr;
    uint64_t epoch = 0;
  };
  std::map<int, Entry> graphs_;
  std::map<int, uint64_t> eager_;   // sizes run eagerly, at which epoch
  std::map<int, uint64_t> failed_;  // sizes whose capture failed, at which epoch
};

}  // namespace moed::cuda
