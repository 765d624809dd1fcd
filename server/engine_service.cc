// EngineService: validate → tokenize on the pool → submit; count and log each request once.
#include "server/engine_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/log.h"

namespace moed::server {

EngineService::EngineService(const ServerConfig& config, RequestQueue* queue, ServerMetrics* metrics,
                             std::shared_ptr<const Tokenizer> tokenizer, const RequestLimits& limits,
                             uint64_t seed_base)
    : config_(config),
      queue_(queue),
      metrics_(metrics),
      tokenizer_(std::move(tokenizer)),
      limits_(limits),
      seed_base_(seed_base),
      pool_(config.tokenizer_threads, config.tokenizer_queue) {}

EngineService::~EngineService() { StopPool(); }

void EngineService::StopPool() { pool_.Stop(); }

OutboxLimits EngineService::outbox_limits() const {
  OutboxLimits l;
  l.max_buffered_bytes = config_.stream_buffer_bytes;
  l.stall_timeout = config_.stream_stall_timeout;
  return l;
}

std::string EngineService::EngineId(uint64_t number) { return absl::StrCat("r", number); }

void EngineService::Fail(Outbox& outbox, const std::string& engine_id, absl::Status status) {
  if (absl::IsInvalidArgument(status)) metrics_->Rejected(RejectReason::kInvalidArgument, outbox.front());
  OutboxAction action = outbox.Push(FailedOutput(engine_id, std::move(status)));
  if (action.kind != OutboxAction::Kind::kNone) outbox.writer()->Act(std::move(action));
}

absl::Status EngineService::Generate(uint64_t number, CoreRequest request, const Caller& caller,
                                     std::shared_ptr<Outbox> outbox) {
  const absl::Time arrival = absl::Now();
  if (absl::Status s = CheckRequest(request, limits_, caller); !s.ok()) {
    metrics_->Rejected(RejectReason::kInvalidArgument, outbox->front());
    return s;
  }
  const std::string engine_id = EngineId(number);
  const uint64_t seed = seed_base_ + number;
  // The whole continuation, on a pool thread (or here, for prompt_ids, which need no tokenizing).
  auto submit = [this, engine_id, seed, arrival, outbox](const CoreRequest& r, std::vector<int32_t> ids) {
    absl::StatusOr<EngineRequest> er = ToEngineRequest(r, std::move(ids), limits_, seed);
    if (!er.ok()) return Fail(*outbox, engine_id, er.status());
    er->request_id = engine_id;
    er->arrival_time = arrival;
    er->deadline = r.deadline;
    if (absl::Status s = queue_->Submit(*std::move(er), outbox); !s.ok()) Fail(*outbox, engine_id, std::move(s));
  };
  if (request.prompt.empty()) {
    std::vector<int32_t> ids = std::move(request.prompt_ids);
    submit(request, std::move(ids));
    return absl::OkStatus();
  }
  auto job = [this, submit, engine_id, outbox, request = std::move(request)]() {
    if (outbox->cancelled()) return;  // the client left while it waited: nothing to do
    absl::StatusOr<std::vector<int32_t>> ids = tokenizer_->Encode(request.prompt);
    if (!ids.ok()) {
      return Fail(*outbox, engine_id,
                  absl::InvalidArgumentError(absl::StrCat("prompt could not be tokenized: ", ids.status().message())));
    }
    submit(request, *std::move(ids));
  };
  if (!pool_.TrySubmit(std::move(job))) {
    metrics_->Rejected(RejectReason::kQueueFull, outbox->front());
    return absl::ResourceExhaustedError(absl::StrCat("the tokenizer queue is full (--tokenizer-queue=",
                                                     config_.tokenizer_queue, "); retry later"));
  }
  return absl::OkStatus();
}

void EngineService::Cancel(uint64_t number, absl::Status why) { queue_->Cancel(EngineId(number), std::move(why)); }

void EngineService::Tokenize(std::string text, std::function<void(absl::StatusOr<std::vector<int32_t>>)> done) {
  if (static_cast<int64_t>(text.size()) > limits_.max_prompt_bytes) {
    return done(absl::InvalidArgumentError(absl::StrCat("text is ", text.size(), " bytes, over the limit of ",
                                                        limits_.max_prompt_bytes, " bytes")));
  }
  auto shared_done = std::make_shared<decltype(done)>(std::move(done));
  const bool queued = pool_.TrySubmit([this, shared_done, text = std::move(text)]() {
    absl::StatusOr<std::vector<int32_t>> ids = tokenizer_->Encode(text);
    if (!ids.ok()) {
      ids = absl::InvalidArgumentError(absl::StrCat("text could not be tokenized: ", ids.status().message()));
    }
    (*shared_done)(std::move(ids));
  });
  if (!queued) {
    (*shared_done)(absl::ResourceExhaustedError(absl::StrCat("the tokenizer queue is full (--tokenizer-queue=",
                                                             config_.tokenizer_queue, "); retry later")));
  }
}

void EngineService::Opened(const std::shared_ptr<Outbox>& outbox) {
  std::lock_guard<std::mutex> lock(streams_mu_);
  streams_.insert(outbox);
  metrics_->SetStreamsOpen(static_cast<int>(streams_.size()));
}

void EngineService::Closed(const std::shared_ptr<Outbox>& outbox) {
  std::lock_guard<std::mutex> lock(streams_mu_);
  streams_.erase(outbox);
  metrics_->SetStreamsOpen(static_cast<int>(streams_.size()));
  if (streams_.empty()) streams_cv_.notify_all();
}

bool EngineService::WaitStreamsClosed(absl::Duration timeout) {
  std::unique_lock<std::mutex> lock(streams_mu_);
  return streams_cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [this] { return streams_.empty(); });
}

void EngineService::AbortStreams(const absl::Status& status) {
  std::vector<std::shared_ptr<Outbox>> open;
  {
    std::lock_guard<std::mutex> lock(streams_mu_);
    open.assign(streams_.begin(), streams_.end());
  }
  // Outside the lock: acting may finish a call, whose end takes streams_mu_ in Closed.
  for (const std::shared_ptr<Outbox>& outbox : open) {
    OutboxAction action = outbox->Abort(status);
    if (action.kind != OutboxAction::Kind::kNone) outbox->writer()->Act(std::move(action));
  }
}

void EngineService::Rejected(RejectReason reason, Front front) { metrics_->Rejected(reason, front); }

void EngineService::Unparseable(const absl::Status& status, Front front) {
  metrics_->Rejected(RejectReason::kUnparseable, front);
  LogEvent(LogSeverity::kWarning, "unparseable request", {{"error", std::string(status.message())}});
}

void EngineService::Ended(const RequestRecord& r) {
  metrics_->RequestFinished(RequestResultFromStatus(r.status), r.front);
  std::vector<LogField> fields = {
      {"id", r.client_id},
      {"front", std::string(FrontName(r.front))},
      {"engine_id", r.engine_id},
      {"status", std::string(absl::StatusCodeToString(r.status.code()))},
      {"prompt_tokens", absl::StrCat(r.prompt_tokens), true},
      {"cached_tokens", absl::StrCat(r.cached_tokens), true},
      {"completion_tokens", absl::StrCat(r.completion_tokens), true},
      {"ttft_s", r.ttft == absl::InfiniteDuration() ? "null" : absl::StrCat(absl::ToDoubleSeconds(r.ttft)), true},
      {"duration_s", absl::StrCat(absl::ToDoubleSeconds(r.duration)), true},
      {"finish_reason", r.finish_reason},
  };
  if (!r.status.ok()) fields.push_back({"error", std::string(r.status.message())});
  const bool server_fault = absl::IsInternal(r.status) || absl::IsUnknown(r.status) || absl::IsDataLoss(r.status);
  LogEvent(server_fault ? LogSeverity::kError : LogSeverity::kInfo, "request finished", fields);
}

}  // namespace moed::server
