// EngineService: the core every front end (gRPC now, HTTP next) attaches to — the one validator, the bounded
// tokenizer pool, the request queue, and the one place a finished request is counted and logged.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/tokenizer/tokenizer.h"
#include "server/config.h"
#include "server/core_request.h"
#include "server/metrics.h"
#include "server/request_queue.h"
#include "server/request_validator.h"
#include "server/worker_pool.h"

namespace moed::server {

// How one request ended, for its one count and its one log line.
struct RequestRecord {
  std::string engine_id;
  std::string client_id;
  absl::Status status;
  int prompt_tokens = 0;
  int cached_tokens = 0;   // of prompt_tokens, served from the prefix cache
  int completion_tokens = 0;
  absl::Duration ttft = absl::InfiniteDuration();  // arrival → first token written; infinite: none
  absl::Duration duration;                         // arrival → end of the stream
  std::string finish_reason;                       // "length" | "stop" | "eos" | "" (ended otherwise)
  Front front = Front::kGrpc;                      // the front end it came through
};

// Thread-safe. Owned by MoedServer; outlives every front end and every call.
class EngineService {
 public:
  EngineService(const ServerConfig& config, RequestQueue* queue, ServerMetrics* metrics,
                std::shared_ptr<const Tokenizer> tokenizer, const RequestLimits& limits, uint64_t seed_base);
  ~EngineService();  // StopPool()

  const ServerConfig& config() const { return config_; }
  const RequestLimits& limits() const { return limits_; }
  RequestQueue& queue() const { return *queue_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  OutboxLimits outbox_limits() const;

  // A new request number; the engine id is "r<N>" and a server-chosen seed is seed_base + N.
  uint64_t NextRequestNumber() { return next_request_.fetch_add(1); }
  static std::string EngineId(uint64_t number);

  // Checks `request` (bytes before tokens). An error is returned at once (counted as a rejection; the front
  // end ends the call and reports it with Ended). On OK the request goes on without the caller: tokenized on
  // the pool, validated against the context and submitted; every later output, a failure included, reaches
  // `outbox` (whose writer must stay alive until the outbox finishes). RESOURCE_EXHAUSTED when the tokenizer
  // queue is full.
  absl::Status Generate(uint64_t number, CoreRequest request, const Caller& caller, std::shared_ptr<Outbox> outbox);
  // After the front end cancelled `outbox` (Outbox::Cancel first, so a request still on the pool is dropped).
  void Cancel(uint64_t number, absl::Status why);

  // Tokenizes on the pool; `done` runs once, on a pool thread, or inline when the pool is full or the text is
  // over the prompt byte limit.
  void Tokenize(std::string text, std::function<void(absl::StatusOr<std::vector<int32_t>>)> done);

  // Every Generate call, accepted or not, ends here exactly once: moed_requests_total and the log line.
  void Ended(const RequestRecord& record);
  // A request of any method whose bytes did not parse: moed_requests_rejected_total{reason="unparseable"} and
  // a warning line (a Generate call also ends through Ended).
  void Unparseable(const absl::Status& status, Front front);
  // A request a front end refused itself, before Generate (an HTTP body whose fields are wrong, an unknown model):
  // moed_requests_rejected_total{front, reason}. The front still ends it through Ended.
  void Rejected(RejectReason reason, Front front);

  // Streams the front ends hold open (accepted by Generate, not yet Ended): moed_streams_open, and what the
  // drain waits for. A front end calls Opened after an accepted Generate and Closed just before Ended.
  void Opened(const std::shared_ptr<Outbox>& outbox);
  void Closed(const std::shared_ptr<Outbox>& outbox);
  bool WaitStreamsClosed(absl::Duration timeout);  // true when none is open
  // Ends every open stream with `status` (Outbox::Abort); for the end of the drain.
  void AbortStreams(const absl::Status& status);

  // Runs the queued tokenizer jobs and stops the pool; for shutdown, after the front ends stopped.
  void StopPool();

 private:
  void Fail(Outbox& outbox, const std::string& engine_id, absl::Status status);

  const ServerConfig config_;
  RequestQueue* const queue_;
  ServerMetrics* const metrics_;
  const std::shared_ptr<const Tokenizer> tokenizer_;
  const RequestLimits limits_;
  const uint64_t seed_base_;
  std::atomic<uint64_t> next_request_{0};
  std::mutex streams_mu_;
  std::condition_variable streams_cv_;
  std::set<std::shared_ptr<Outbox>> streams_;  // open streams
  WorkerPool pool_;
};

}  // namespace moed::server
