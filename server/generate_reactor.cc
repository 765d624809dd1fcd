// Generate: request → EngineRequest → RequestQueue; RequestOutput → GenerateResponse messages.
#include "server/generate_reactor.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/request_validator.h"
#include "server/status_convert.h"

namespace moed::server {
namespace {

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  const auto deadline = context.deadline();
  if (deadline >= std::chrono::system_clock::time_point::max()) return absl::InfiniteFuture();
  return absl::FromChrono(deadline);
}

}  // namespace

GenerateReactor::GenerateReactor(grpc::CallbackServerContext* context, const v1::GenerateRequest* request,
                                 ServiceContext* service)
    : context_(context), service_(service), outbox_(std::make_shared<Outbox>(this)) {
  const absl::Time arrival = absl::Now();
  const uint64_t n = service_->next_request.fetch_add(1);
  engine_id_ = absl::StrCat("r", n);
  client_id_ = request->request_id().empty() ? engine_id_ : request->request_id();

  absl::StatusOr<EngineRequest> engine_request =
      ValidateGenerateRequest(*request, service_->limits, *service_->tokenizer, service_->seed_base + n);
  if (!engine_request.ok()) {
    Reject(engine_request.status(), RejectReason::kInvalidArgument);
    return;
  }
  engine_request->request_id = engine_id_;
  engine_request->arrival_time = arrival;
  deadline_ = DeadlineOf(*context_);
  engine_request->deadline = deadline_;
  submitted_ = true;
  // Last statement: from here the engine thread may call Act() at any time.
  absl::Status status = service_->queue->Submit(*std::move(engine_request), outbox_);
  if (!status.ok()) {
    submitted_ = false;
    Finish(ToGrpcStatus(status));  // Submit counted the rejection
  }
}

void GenerateReactor::Reject(const absl::Status& status, RejectReason reason) {
  service_->metrics->Rejected(reason);
  service_->metrics->RequestFinished(RequestResultFromStatus(status));
  Finish(ToGrpcStatus(status));
}

void GenerateReactor::Act(OutboxAction action) {
  switch (action.kind) {
    case OutboxAction::Kind::kNone:
      return;
    case OutboxAction::Kind::kFinish:
      Finish(ToGrpcStatus(action.status));
      return;
    case OutboxAction::Kind::kWrite:
      FillResponse(action.output);
      StartWrite(&response_);
      return;
  }
}

void GenerateReactor::FillResponse(const RequestOutput& out) {
  response_.Clear();
  response_.set_request_id(client_id_);
  response_.mutable_token_ids()->Add(out.new_token_ids.begin(), out.new_token_ids.end());
  response_.set_text(out.new_text);
  if (!out.top_logprobs.empty() || !out.logprobs.empty()) {
    for (size_t i = 0; i < out.new_token_ids.size() && i < out.logprobs.size(); ++i) {
      v1::TokenLogprob* lp = response_.add_logprobs();
      lp->set_token_id(out.new_token_ids[i]);
      lp->set_logprob(out.logprobs[i]);
      if (i >= out.top_logprobs.size()) continue;
      for (const TokenLogprob& alt : out.top_logprobs[i]) {
        v1::TopLogprob* top = lp->add_top();
        top->set_token_id(alt.token);
        top->set_logprob(alt.logprob);
      }
    }
  }
  if (!out.finished) return;
  response_.set_finish_reason(std::string(FinishReasonName(out.finish_reason)));
  response_.mutable_usage()->set_prompt_tokens(out.prompt_tokens);
  response_.mutable_usage()->set_completion_tokens(out.completion_tokens);
  response_.mutable_usage()->set_cached_tokens(out.cached_tokens);
  const int experts = service_->queue->info().spec.num_experts;
  if (out.routing.empty() || experts <= 0) return;
  const int layers = static_cast<int>(out.routing.size()) / experts;
  for (int l = 0; l < layers; ++l) {
    v1::LayerRouting* layer = response_.add_routing();
    layer->set_layer(l);
    for (int e = 0; e < experts; ++e) {
      const int32_t count = out.routing[static_cast<size_t>(l) * experts + e];
      if (count == 0) continue;
      layer->add_expert_ids(e);
      layer->add_token_counts(count);
    }
  }
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
  if (!ok && submitted_) service_->queue->Cancel(engine_id_, WhyTheCallEnded());
  Act(outbox_->WriteDone(ok));
}

void GenerateReactor::OnCancel() {
  if (!submitted_) return;  // already finished in the constructor
  service_->queue->Cancel(engine_id_, WhyTheCallEnded());
  Act(outbox_->Cancel());
}

void GenerateReactor::OnDone() { delete this; }

}  // namespace moed::server
