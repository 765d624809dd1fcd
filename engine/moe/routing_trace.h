// RoutingTrace: sampled per-token routing (request, position, token, experts and weights per layer) written as gzip-compressed
// JSON lines by a background thread, bounded per file and rotated. Plain C++ and zlib; no gRPC, no Prometheus.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace moed {

// One token's routing as the engine saw it. `experts` and `weights` (num_layers * top_k), layer-major: each layer's
// top-k experts in the router's order and the weights it mixed them with; dense layers hold -1 and 0. The views
// live for the call only.
struct TokenRoutingEvent {
  std::string_view request_id;
  int32_t position = 0;  // the token's position in its sequence
  int32_t token = 0;
  int top_k = 0;
  absl::Span<const int32_t> experts;
  absl::Span<const float> weights;
};

struct RoutingTraceOptions {
  std::string path;                        // FILE; rotated files are FILE.1 (newest) … FILE.<keep_files - 1>
  double sample = 1.0;                     // share of requests traced, (0, 1]; chosen by a hash of the request id
  int64_t max_file_bytes = 64ll << 20;     // uncompressed bytes per file before rotating
  int keep_files = 4;                      // files kept, the current one included (≥ 1)
  int max_queued = 1 << 16;                // records waiting for the writer; beyond that they are dropped
};

struct RoutingTraceStatus {
  bool active = false;
  std::string path;
  double sample = 0;
  int64_t records = 0;       // written since Start
  int64_t dropped = 0;       // lost to a full queue since Start
  int64_t bytes = 0;         // uncompressed bytes written since Start
  int64_t rotations = 0;
};

// Thread-safe. Observe() is called by the engine thread for every token with known routing and costs a hash and,
// when sampled, a queue push; compression and file I/O run on the trace's own thread.
class RoutingTrace {
 public:
  RoutingTrace(int num_layers, int num_experts);
  ~RoutingTrace();  // stops (flushing what is queued)

  // INVALID_ARGUMENT for an empty path, sample outside (0, 1], max_file_bytes < 4096 or keep_files < 1;
  // FAILED_PRECONDITION while already active; the file's error when it cannot be opened.
  absl::Status Start(const RoutingTraceOptions& options);
  // Writes what is queued, closes the file. FAILED_PRECONDITION when not active.
  absl::Status Stop();
  // Writes what is queued and rotates: the records so far become FILE.1 (returned), tracing goes on into a fresh
  // FILE. FAILED_PRECONDITION when not active.
  absl::StatusOr<std::string> Dump();
  RoutingTraceStatus status() const;

  // Events whose sizes do not match the model (or name an expert outside it) are ignored.
  void Observe(const TokenRoutingEvent& event);
  bool active() const { return active_.load(std::memory_order_relaxed); }

  // Whether `request_id` falls in a `sample` share of requests (deterministic: a hash of the id).
  static bool Sampled(std::string_view request_id, double sample);

 private:
  void WriterLoop();
  // Writes `lines` to the open file, rotating when it is full; mu_ not held. Writer thread only.
  absl::Status Write(const std::string& lines);
  absl::Status Rotate();  // writer thread, or callers holding io_mu_
  absl::Status OpenFile();
  void CloseFile();
  void Drain();  // waits until the writer has written everything queued so far

  const int num_layers_;
  const int num_experts_;
  std::atomic<bool> active_{false};  // mirrors status_.active for the engine thread's lock-free early return

  mutable std::mutex mu_;  // guards everything below except the file handle
  std::condition_variable cv_;
  std::condition_variable drained_cv_;
  RoutingTraceOptions options_;
  RoutingTraceStatus status_;
  std::deque<std::string> queue_;  // one JSON line each
  bool writing_ = false;           // the writer holds lines taken from the queue
  bool stop_thread_ = false;
  std::thread thread_;

  std::mutex io_mu_;           // guards file_ and file_bytes_ (writer thread, Dump and Stop)
  void* file_ = nullptr;       // gzFile
  int64_t file_bytes_ = 0;     // uncompressed bytes in the current file
};

}  // namespace moed
