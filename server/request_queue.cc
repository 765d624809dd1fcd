// The engine loop and the hand-off of outputs to streams; every mutex between gRPC and engine lives here.
#include "server/request_queue.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace moed::server {
namespace {

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

}  // namespace

RequestOutput FailedOutput(const std::string& id, absl::Status status) {
  RequestOutput out;
  out.request_id = id;
  out.finished = true;
  out.finish_reason = FinishReason::kError;
  out.status = std::move(status);
  return out;
}

int64_t ApproxOutputBytes(const RequestOutput& out) {
  int64_t bytes = 16 + static_cast<int64_t>(out.new_text.size()) + 8 * static_cast<int64_t>(out.new_token_ids.size());
  for (const auto& top : out.top_logprobs) bytes += 10 * static_cast<int64_t>(top.size());
  return bytes + 6 * static_cast<int64_t>(out.routing.size());
}

// ---- Outbox ----

OutboxAction Outbox::Push(RequestOutput output, absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_ || cancelled_ || cut_) return {};
  const bool last = output.finished;
  queued_bytes_ += ApproxOutputBytes(output);
  queue_.push_back(std::move(output));
  if (token_taken_) {
    const bool over = queued_bytes_ > limits_.max_buffered_bytes;
    const bool stalled = now - write_started_ > limits_.stall_timeout;
    if (last || (!over && !stalled)) return {};  // the last output ends the request anyway: keep it
    cut_ = true;
    cut_status_ = absl::ResourceExhaustedError(
        over ? absl::StrCat("the client is not reading: over ", limits_.max_buffered_bytes,
                            " bytes of output wait for it (--stream-buffer-bytes)")
             : absl::StrCat("the client has not read for ", absl::FormatDuration(now - write_started_),
                            " (--stream-stall-timeout=", absl::FormatDuration(limits_.stall_timeout), ")"));
    queue_.clear();
    queued_bytes_ = 0;
    OutboxAction action;
    action.cut = true;
    return action;
  }
  token_taken_ = true;
  return TakeNextLocked(now);
}

OutboxAction Outbox::WriteDone(bool ok, absl::Time now) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!ok) cancelled_ = true;
  return TakeNextLocked(now);
}

OutboxAction Outbox::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  if (token_taken_) return {};
  token_taken_ = true;
  return TakeNextLocked(absl::Now());
}

OutboxAction Outbox::Abort(absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (finished_ || cut_) return {};
  cut_ = true;
  cut_status_ = std::move(status);
  queue_.clear();
  queued_bytes_ = 0;
  if (token_taken_) return {};
  token_taken_ = true;
  return TakeNextLocked(absl::Now());
}

bool Outbox::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

bool Outbox::cut() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cut_;
}

absl::Status Outbox::CutStatus() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cut_status_;
}

OutboxAction Outbox::TakeNextLocked(absl::Time now) {
  OutboxAction action;
  if (finished_) return action;
  if (cut_) {
    finished_ = true;
    action.kind = OutboxAction::Kind::kFinish;
    action.status = cut_status_;
    return action;
  }
  if (cancelled_) {
    finished_ = true;
    action.kind = OutboxAction::Kind::kFinish;
    action.status = absl::CancelledError("the client cancelled the stream");
    return action;
  }
  if (queue_.empty()) {
    if (final_written_) {
      finished_ = true;
      action.kind = OutboxAction::Kind::kFinish;
      return action;  // OK
    }
    token_taken_ = false;
    return action;
  }
  RequestOutput out = std::move(queue_.front());
  queue_.pop_front();
  queued_bytes_ -= ApproxOutputBytes(out);
  write_started_ = now;
  if (out.finished && !out.status.ok()) {
    finished_ = true;
    action.kind = OutboxAction::Kind::kFinish;
    action.status = std::move(out.status);
    return action;
  }
  if (out.finished) final_written_ = true;
  action.kind = OutboxAction::Kind::kWrite;
  action.output = std::move(out);
  return action;
}

// ---- RequestQueue ----

RequestQueue::RequestQueue(std::unique_ptr<EngineCore> engine, ServerMetrics* metrics, absl::Duration min_step_time)
    : engine_(std::move(engine)),
      metrics_(metrics),
      info_{engine_->spec(), engine_->config(), std::string(engine_->backend_name())},
      min_step_time_(min_step_time),
      snapshot_(engine_->stats()) {}

RequestQueue::~RequestQueue() { Stop(); }

void RequestQueue::Start() { thread_ = std::thread([this] { Loop(); }); }

absl::Status RequestQueue::Submit(EngineRequest request, std::shared_ptr<Outbox> outbox) {
  std::lock_guard<std::mutex> lock(mu_);
  // Under mu_: a cancel recorded after this point finds the request among pending_ (see OnCancel).
  if (outbox->cancelled()) return absl::CancelledError("the client cancelled the stream");
  if (!accepting_) {
    metrics_->Rejected(RejectReason::kShuttingDown, outbox->front());
    return absl::UnavailableError("the server is shutting down; retry on another replica");
  }
  const int max_queue = info_.config.max_queue;
  const int queued = engine_waiting_ + static_cast<int>(pending_.size());
  if (queued >= max_queue) {
    metrics_->Rejected(RejectReason::kQueueFull, outbox->front());
    return absl::ResourceExhaustedError(
        absl::StrCat("request queue is full: ", queued, " requests waiting (--max-queue=", max_queue, ")"));
  }
  request.frontend = std::make_shared<Stream>(std::move(outbox));
  pending_.push_back(std::move(request));
  ++live_count_;
  work_cv_.notify_one();
  return absl::OkStatus();
}

void RequestQueue::Cancel(const std::string& request_id, absl::Status why) {
  std::lock_guard<std::mutex> lock(mu_);
  cancels_.emplace_back(request_id, std::move(why));
  work_cv_.notify_one();
}

void RequestQueue::StopAccepting() {
  std::lock_guard<std::mutex> lock(mu_);
  accepting_ = false;
}

bool RequestQueue::WaitIdle(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [this] { return live_count_ == 0; });
}

void RequestQueue::AbortAll(const absl::Status& why) {
  std::lock_guard<std::mutex> lock(mu_);
  abort_all_ = why;
  work_cv_.notify_one();
}

void RequestQueue::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    accepting_ = false;
    stop_ = true;
    work_cv_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

EngineStats RequestQueue::StatsSnapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return snapshot_;
}

int RequestQueue::live_requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_count_;
}

void RequestQueue::ReleaseLive(int n) {
  if (n == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  live_count_ -= n;
  if (live_count_ == 0) idle_cv_.notify_all();
}

void RequestQueue::Hand(const std::string& id, bool live, Outbox& outbox, RequestOutput output) {
  output.frontend.reset();  // the outbox may keep the output: no Stream → Outbox → output → Stream cycle
  OutboxAction action = outbox.Push(std::move(output));
  if (action.cut && live) engine_->AbortRequest(id, outbox.CutStatus());  // frees its KV at the next step
  if (action.kind != OutboxAction::Kind::kNone) outbox.writer()->Act(std::move(action));
}

void RequestQueue::Loop() {
  bool busy = false;
  while (true) {
    std::vector<EngineRequest> pending;
    std::vector<std::pair<std::string, absl::Status>> cancels;
    absl::Status abort_all;
    bool stop = false;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || busy || !pending_.empty() || !cancels_.empty() || !abort_all_.ok(); });
      pending.swap(pending_);
      cancels.swap(cancels_);
      abort_all = std::exchange(abort_all_, absl::OkStatus());
      stop = stop_;
    }
    if (stop && abort_all.ok()) abort_all = absl::UnavailableError("the server stopped before the request finished");
    Admit(std::move(pending));
    for (auto& [id, why] : cancels) engine_->AbortRequest(id, std::move(why));  // unknown (finished) ids: ignored
    if (!abort_all.ok()) engine_->AbortAll(abort_all);
    busy = engine_->HasUnfinished();
    std::vector<RequestOutput> outputs;
    absl::Time step_start;
    const bool stepped = busy;
    if (stepped) {
      step_start = absl::Now();
      outputs = engine_->Step();
      busy = engine_->HasUnfinished();
    }
    // Stats and metrics before delivery: a client holding its last token sees the step that made it.
    const EngineStats& stats = engine_->stats();
    int pending_now = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      snapshot_ = stats;
      engine_waiting_ = stats.waiting;
      pending_now = static_cast<int>(pending_.size());
    }
    metrics_->OnEngineStep(stats, pending_now);
    Deliver(std::move(outputs), step_start);
    if (stepped && min_step_time_ > absl::ZeroDuration()) {
      absl::SleepFor(step_start + min_step_time_ - absl::Now());  // negative: returns at once
    }
    // On stop, keep stepping until the aborted requests have been reported, then leave.
    if (stop && !busy) break;
  }
  // The engine reported every request it had finished (it has none left), so nothing is live here.
}

void RequestQueue::Admit(std::vector<EngineRequest> pending) {
  int failed = 0;
  const absl::Time now = absl::Now();
  for (EngineRequest& request : pending) {
    const std::string id = request.request_id;
    std::shared_ptr<FrontendSlot> slot = request.frontend;
    Stream& stream = static_cast<Stream&>(*slot);  // Submit attached it
    stream.arrival = request.arrival_time == absl::InfinitePast() ? now : request.arrival_time;
    absl::Status status = engine_->AddRequest(std::move(request));
    if (!status.ok()) {
      if (absl::IsResourceExhausted(status)) metrics_->Rejected(RejectReason::kQueueFull, stream.outbox->front());
      Hand(id, false, *stream.outbox, FailedOutput(id, std::move(status)));
      ++failed;
    }
  }
  ReleaseLive(failed);
}

void RequestQueue::Deliver(std::vector<RequestOutput> outputs, absl::Time step_start) {
  const absl::Time now = absl::Now();
  int finished = 0;
  for (RequestOutput& out : outputs) {
    if (out.frontend == nullptr) continue;  // not submitted through Submit (cannot happen): nowhere to deliver
    const std::shared_ptr<FrontendSlot> slot = out.frontend;  // keeps the Stream alive past the request's end
    Stream& live = static_cast<Stream&>(*slot);  // every request comes through Submit
    if (!live.any_output) metrics_->ObserveQueueTime(Seconds(step_start - live.arrival));
    live.any_output = true;
    const size_t n = out.new_token_ids.size();
    if (n > 0) {
      if (live.last_token == absl::InfinitePast()) {
        metrics_->ObserveTimeToFirstToken(Seconds(now - live.arrival));
      } else {
        const double per_token = Seconds(now - live.last_token) / static_cast<double>(n);
        for (size_t i = 0; i < n; ++i) metrics_->ObserveInterTokenLatency(per_token);
      }
      live.last_token = now;
    }
    if (!out.finished) {
      if (n > 0 || !out.new_text.empty()) {
        const std::string id = out.request_id;
        Hand(id, true, *live.outbox, std::move(out));
      }
      continue;
    }
    Finalize(live, out, now);
    const std::string id = out.request_id;
    Hand(id, false, *live.outbox, std::move(out));
    ++finished;
  }
  ReleaseLive(finished);
}

// Gives a finished output its final status and observes its duration (the front end counts how it ended).
void RequestQueue::Finalize(const Stream& stream, RequestOutput& out, absl::Time now) {
  if (out.finish_reason == FinishReason::kAborted && out.status.ok()) {
    out.status = absl::CancelledError("the request was cancelled");  // aborted without a reason
  }
  if (out.finish_reason == FinishReason::kDeadline && out.status.ok()) {
    out.status = absl::DeadlineExceededError("the request's deadline passed");
  }
  if (out.finish_reason == FinishReason::kError && out.status.ok()) {
    out.status = absl::InternalError("the engine failed the request");
  }
  metrics_->ObserveRequestDuration(Seconds(now - stream.arrival));
  metrics_->RequestEnded(out.finish_reason, out.prompt_tokens, out.completion_tokens);
}

}  // namespace moed::server
