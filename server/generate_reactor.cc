// Generate: GenerateRequest → CoreRequest → EngineService; RequestOutput → GenerateResponse messages.
#include "server/generate_reactor.h"

#include <chrono>
#include <utility>

#include "absl/time/clock.h"
#include "server/grpc_convert.h"
#include "server/proto_parse.h"
#include "server/status_convert.h"

namespace moed::server {
namespace {

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline >= std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace

GenerateReactor::GenerateReactor(grpc::CallbackServerContext* context, const grpc::ByteBuffer& raw,
                                 EngineService* core, const absl::StatusOr<Caller>& caller)
    : context_(context), core_(core), outbox_(std::make_shared<Outbox>(this, core->outbox_limits())) {
  arrival_ = absl::Now();
  number_ = core_->NextRequestNumber();
  record_.engine_id = EngineService::EngineId(number_);
  deadline_ = DeadlineOf(*context_);
  if (!caller.ok()) {
    Refuse(caller.status());
    return;
  }
  v1::GenerateRequest request;
  if (absl::Status parsed = ParseMessage(raw, &request); !parsed.ok()) {
    core_->Unparseable(parsed, Front::kGrpc);
    Refuse(parsed);
    return;
  }
  Start(request, *caller);
}

void GenerateReactor::Refuse(const absl::Status& status) {
  accepted_ = false;
  finish_status_ = status;
  Finish(ToGrpcStatus(status));
}

void GenerateReactor::Start(const v1::GenerateRequest& request, const Caller& caller) {
  logprobs_ = request.sampling().logprobs();
  CoreRequest core_request = FromProto(request, deadline_);
  // An over-long id is refused below; never echo or log more than the limit.
  record_.client_id = core_request.client_id.size() <= static_cast<size_t>(kMaxRequestIdBytes)
                          ? core_request.client_id
                          : core_request.client_id.substr(0, kMaxRequestIdBytes);
  if (record_.client_id.empty()) record_.client_id = record_.engine_id;  // the id the client sees
  first_id_ = record_.client_id;
  // Set before the hand-over: from inside Generate on, the outbox may call Act() on any thread.
  accepted_ = true;
  core_->Opened(outbox_);
  absl::Status status = core_->Generate(number_, std::move(core_request), caller, outbox_);
  if (!status.ok()) Refuse(status);  // refused before anything was handed over
}

void GenerateReactor::Act(OutboxAction action) {
  switch (action.kind) {
    case OutboxAction::Kind::kNone:
      return;
    case OutboxAction::Kind::kFinish:
      finish_status_ = action.status;
      Finish(ToGrpcStatus(action.status));
      return;
    case OutboxAction::Kind::kWrite:
      Note(action.output);
      ToProto(action.output, first_id_, logprobs_, core_->queue().info().spec.num_experts, &message_);
      first_id_.clear();
      response_ = ToByteBuffer(message_);
      StartWrite(&response_);
      return;
  }
}

void GenerateReactor::Note(const RequestOutput& out) {
  if (!out.new_token_ids.empty() && record_.ttft == absl::InfiniteDuration()) record_.ttft = absl::Now() - arrival_;
  record_.completion_tokens += static_cast<int>(out.new_token_ids.size());
  if (out.prompt_tokens > 0) record_.prompt_tokens = out.prompt_tokens;
  record_.cached_tokens = out.cached_tokens;
  if (out.finished) record_.finish_reason = std::string(FinishReasonName(out.finish_reason));
}

absl::Status GenerateReactor::WhyTheCallEnded() const {
  // gRPC cancels the call when its deadline passes; count that as a deadline, not a cancel. The client's own
  // deadline fires first (the server's copy starts when the call arrives, a transit later) and reaches us as a
  // cancel, or as a failed write, slightly before deadline_; within kDeadlineSlack of it, it is a deadline too.
  constexpr absl::Duration kDeadlineSlack = absl::Milliseconds(100);
  if (absl::Now() >= deadline_ - kDeadlineSlack) return absl::DeadlineExceededError("the request's deadline passed");
  return absl::CancelledError("the client cancelled the stream");
}

void GenerateReactor::OnWriteDone(bool ok) {
  if (!ok && accepted_) core_->Cancel(number_, WhyTheCallEnded());
  Act(outbox_->WriteDone(ok));
}

void GenerateReactor::OnCancel() {
  if (!accepted_) return;  // already finished in the constructor
  // The outbox first: a request still waiting for a tokenizer thread then never reaches the engine.
  const absl::Status why = WhyTheCallEnded();
  OutboxAction action = outbox_->Cancel();
  core_->Cancel(number_, why);
  Act(std::move(action));
}

void GenerateReactor::OnDone() {
  // Counted by what the client received: a cut for back-pressure as such, a call the client left as a
  // cancel (or deadline), otherwise the status the call finished with.
  if (outbox_->cut()) {
    record_.status = outbox_->CutStatus();
  } else if (context_->IsCancelled()) {
    record_.status = WhyTheCallEnded();
  } else {
    record_.status = finish_status_;
  }
  record_.duration = absl::Now() - arrival_;
  core_->Closed(outbox_);
  core_->Ended(record_);
  delete this;
}

}  // namespace moed::server
