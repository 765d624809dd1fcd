// RequestQueue: the one place that owns the locking between gRPC threads and the engine thread.
// gRPC threads Submit / Cancel; the engine thread drains them into EngineCore, runs Step() outside
// the lock, and hands each RequestOutput to its stream's Outbox. Outbox serialises one stream's
// writes with a single "writer token" so StartWrite/Finish are never called concurrently.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/runtime/engine_core.h"
#include "server/metrics.h"

namespace moed::server {

// What the holder of a stream's writer token must do next.
struct OutboxAction {
  enum class Kind { kNone, kWrite, kFinish };
  Kind kind = Kind::kNone;
  RequestOutput output;  // kWrite: the output to write (output.finished: the last message)
  absl::Status status;   // kFinish: how the call ends
  bool cut = false;      // Push only: this push cut the stream (over budget or stalled); the caller must
                         // abort the request in the engine with Outbox::CutStatus()
};

// Back-pressure on one stream: output waits in the Outbox while a write is in flight. A stream is cut
// (RESOURCE_EXHAUSTED, its waiting output dropped) when more than max_buffered_bytes wait, or when a write
// has been in flight for longer than stall_timeout while new output arrives.
struct OutboxLimits {
  int64_t max_buffered_bytes = int64_t{1} << 20;
  absl::Duration stall_timeout = absl::Seconds(30);
};

// Output that ends request `id` with `status` without going through the engine.
RequestOutput FailedOutput(const std::string& id, absl::Status status);

// Bytes an output takes on the wire, roughly (text, ids, logprobs, routing); what the budget counts.
int64_t ApproxOutputBytes(const RequestOutput& output);

// The stream side: a Generate reactor. Act() receives only kWrite/kFinish actions and only while
// the caller holds the writer token, so calls never overlap and the reactor is alive during them.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  virtual void Act(OutboxAction action) = 0;
};

// One stream's mailbox. Thread-safe. After a kFinish action nothing more is handed out.
class Outbox {
 public:
  // `front`: the front end that owns the stream, for the request metrics' `front` label.
  explicit Outbox(StreamWriter* writer, OutboxLimits limits = {}, Front front = Front::kGrpc)
      : writer_(writer), limits_(limits), front_(front) {}
  StreamWriter* writer() const { return writer_; }
  Front front() const { return front_; }

  // Any thread: queue an output. Returns the action the caller must pass to writer() (it then
  // holds the token), or kNone when a write is already in flight or the stream has ended. `now`
  // is compared with the start of the write in flight (stall_timeout).
  OutboxAction Push(RequestOutput output, absl::Time now = absl::Now());
  // Writer thread, after a write completed; ok = false means the stream is broken (client gone).
  OutboxAction WriteDone(bool ok, absl::Time now = absl::Now());
  // gRPC thread, the client cancelled: kFinish(CANCELLED) when no write is in flight, else kNone
  // (the write in flight ends in kFinish).
  OutboxAction Cancel();
  // The server ends the stream with `status` (shutdown): waiting output is dropped; kFinish(status) when no
  // write is in flight, else kNone (the write in flight ends in it). Counts as a cut.
  OutboxAction Abort(absl::Status status);

  bool cancelled() const;  // the client cancelled or a write failed
  bool cut() const;        // cut for back-pressure (see OutboxLimits)
  absl::Status CutStatus() const;

 private:
  OutboxAction TakeNextLocked(absl::Time now);

  StreamWriter* const writer_;
  const OutboxLimits limits_;
  const Front front_;
  mutable std::mutex mu_;
  std::deque<RequestOutput> queue_;
  int64_t queued_bytes_ = 0;
  absl::Time write_started_ = absl::InfinitePast();  // of the write in flight
  bool token_taken_ = false;    // a write is in flight, or the stream has finished
  bool final_written_ = false;  // the finished output went out for writing
  bool cancelled_ = false;
  bool cut_ = false;
  absl::Status cut_status_;
  bool finished_ = false;
};

// Immutable facts about the engine, copied at start so any thread may read them.
struct EngineInfo {
  ModelSpec spec;
  EngineConfig config;       // defaults resolved (max_model_len = the context)
  std::string backend_name;  // cpu | cuda
};

class RequestQueue {
 public:
  // `metrics` must outlive the queue. Each engine step takes at least `min_step_time` (ServerConfig).
  RequestQueue(std::unique_ptr<EngineCore> engine, ServerMetrics* metrics,
               absl::Duration min_step_time = absl::ZeroDuration());
  ~RequestQueue();  // Stop()

  const EngineInfo& info() const { return info_; }

  // Starts the engine thread. Call once, before Submit.
  void Start();

  // Any thread. `request.request_id` must be unique among live requests (the server makes it).
  // RESOURCE_EXHAUSTED when waiting + pending ≥ max_queue; UNAVAILABLE after StopAccepting();
  // CANCELLED when the outbox is already cancelled. Refusals are counted as rejections (reason) only:
  // how the request ended is the front end's to count, once, when its stream ends.
  // On OK every later output goes to `outbox`, ending with a finished one.
  absl::Status Submit(EngineRequest request, std::shared_ptr<Outbox> outbox);
  // Aborts the request within one engine step; unknown ids are ignored. `why` is how it is counted
  // (CANCELLED for a client cancel, DEADLINE_EXCEEDED when its deadline passed).
  void Cancel(const std::string& request_id, absl::Status why = absl::CancelledError("the client cancelled"));

  // Shutdown, from the main thread: refuse new submissions; wait for live requests to end;
  // abort what remains (their streams end with `why`); stop the engine thread.
  void StopAccepting();
  bool WaitIdle(absl::Duration timeout);  // true when no request is live
  void AbortAll(const absl::Status& why);
  void Stop();

  // The engine's stats after its latest step (a copy; any thread).
  EngineStats StatsSnapshot() const;
  int live_requests() const;

 private:
  // The server's part of one request, attached to the engine's Request (EngineRequest::frontend) at Submit and
  // handed back on each of its outputs: no map keyed by id beside the engine's. Engine thread only after Submit.
  struct Stream final : FrontendSlot {
    explicit Stream(std::shared_ptr<Outbox> o) : outbox(std::move(o)) {}
    std::shared_ptr<Outbox> outbox;
    absl::Time arrival;                            // set at admission (the request's arrival_time when it has one)
    absl::Time last_token = absl::InfinitePast();  // when its latest token was delivered (inter-token latency)
    bool any_output = false;
  };

  void Loop();
  void Admit(std::vector<EngineRequest> pending);
  void Deliver(std::vector<RequestOutput> outputs, absl::Time step_start);
  void Finalize(const Stream& stream, RequestOutput& out, absl::Time now);
  void ReleaseLive(int n);
  // Engine thread: passes `output` to its stream; a push that cuts the stream aborts the request (when `live`,
  // i.e. the engine still has it).
  void Hand(const std::string& id, bool live, Outbox& outbox, RequestOutput output);

  std::unique_ptr<EngineCore> engine_;  // engine thread only (after Start)
  ServerMetrics* const metrics_;
  const EngineInfo info_;
  const absl::Duration min_step_time_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;  // engine thread waits for submissions / cancellations / stop
  std::condition_variable idle_cv_;  // WaitIdle waits for live_count_ == 0
  std::vector<EngineRequest> pending_;  // each with its Stream attached
  std::vector<std::pair<std::string, absl::Status>> cancels_;
  absl::Status abort_all_;           // non-OK: abort every live request with this status
  bool accepting_ = true;
  bool stop_ = false;
  int live_count_ = 0;               // submitted and not yet finished
  int engine_waiting_ = 0;           // the engine's waiting count after its latest step
  EngineStats snapshot_;
  std::thread thread_;
};

}  // namespace moed::server
