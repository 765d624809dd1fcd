// OpenAICall: choices → EngineService; outputs → one JSON response or SSE chunks; each choice counted once.
#include "server/openai/openai_call.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace moed::server::openai {

void OpenAICall::Run(const CallContext& context, OpenAIRequest request, const Caller& caller,
                     std::shared_ptr<HttpResponder> responder) {
  auto call = std::make_shared<OpenAICall>(context, std::move(request), caller, std::move(responder));
  call->self_ = call;
  call->responder_->OnClientGone([weak = std::weak_ptr<OpenAICall>(call)] {
    if (std::shared_ptr<OpenAICall> c = weak.lock()) c->OnClientGone();
  });
  call->Start();
}

OpenAICall::OpenAICall(const CallContext& context, OpenAIRequest request, const Caller& caller,
                       std::shared_ptr<HttpResponder> responder)
    : context_(context), request_(std::move(request)), caller_(caller), responder_(std::move(responder)) {
  EngineService* core = context_.core;
  const absl::Time now = absl::Now();
  for (int i = 0; i < request_.n; ++i) {
    auto c = std::make_unique<Choice>();
    c->call = this;
    c->index = i;
    c->number = core->NextRequestNumber();
    c->outbox = std::make_shared<Outbox>(c.get(), core->outbox_limits(), Front::kHttp);
    c->arrival = now;
    c->record.engine_id = EngineService::EngineId(c->number);
    c->record.front = Front::kHttp;
    choices_.push_back(std::move(c));
  }
  remaining_ = request_.n;
  const bool chat = request_.kind == ApiKind::kChat;
  format_.kind = request_.kind;
  format_.id = absl::StrCat(chat ? "chatcmpl-" : "cmpl-", choices_.front()->record.engine_id);
  format_.model = context_.model_name;
  format_.created = absl::ToUnixSeconds(now);
  format_.tokenizer = &core->tokenizer();
  format_.logprobs = request_.logprobs;
  format_.num_experts = core->queue().info().spec.num_experts;
  for (auto& c : choices_) c->record.client_id = format_.id;
}

void OpenAICall::Start() {
  CoreRequest base;
  base.sampling = request_.sampling;
  base.priority = request_.priority;
  base.include_routing = request_.include_routing;
  if (request_.kind == ApiKind::kCompletions) {
    if (request_.prompt_is_ids) {
      base.prompt_ids = request_.prompt_ids;
    } else {
      base.prompt = request_.prompt_text;
    }
    return SubmitAll(base);
  }
  if (context_.chat_template == nullptr) {
    for (auto& c : choices_) Refuse(*c, context_.chat_error);
    return;
  }
  absl::StatusOr<std::string> text = context_.chat_template->Render(request_.messages, context_.chat_options);
  if (!text.ok()) {
    const absl::Status why = WithParam(
        absl::InvalidArgumentError(absl::StrCat("messages could not be rendered with the chat template: ",
                                                text.status().message())),
        "messages");
    for (auto& c : choices_) Refuse(*c, why);
    return;
  }
  // Tokenized on the core's pool, as transformers' apply_chat_template does: the template writes its own BOS.
  auto tokenized = [self = shared_from_this(), base](absl::StatusOr<std::vector<int32_t>> ids) {
    if (!ids.ok()) {
      for (auto& c : self->choices_) self->Refuse(*c, WithParam(ids.status(), "messages"));
      return;
    }
    if (self->context_.tokenizer_adds_bos && !ids->empty()) ids->erase(ids->begin());
    CoreRequest r = base;
    r.prompt_ids = *std::move(ids);
    self->SubmitAll(r);
  };
  context_.core->Tokenize(*std::move(text), std::move(tokenized));
}

void OpenAICall::SubmitAll(const CoreRequest& base) {
  for (auto& c : choices_) {
    absl::Status skip;  // the client left, or an earlier choice was refused: the rest never start
    {
      std::lock_guard<std::mutex> lock(mu_);
      skip = gone_ ? absl::CancelledError("the client closed the connection") : error_;
      // Before the hand-over: from inside Generate on, the outbox may act on any thread.
      if (skip.ok()) {
        c->accepted = true;
        context_.core->Opened(c->outbox);
      }
    }
    if (!skip.ok()) {
      Refuse(*c, skip);
      continue;
    }
    CoreRequest r = base;
    if (r.sampling.seed.has_value()) *r.sampling.seed += static_cast<uint64_t>(c->index);  // n different samples
    absl::Status s = context_.core->Generate(c->number, std::move(r), caller_, c->outbox);
    if (!s.ok()) {  // refused before anything was handed over: the outbox never acts
      context_.core->Closed(c->outbox);
      {
        std::lock_guard<std::mutex> lock(mu_);
        c->accepted = false;
      }
      Refuse(*c, s);
    }
  }
}

void OpenAICall::Refuse(Choice& c, const absl::Status& status) { FinishChoice(c, status); }

void OpenAICall::OnAction(Choice& c, OutboxAction action) {
  while (true) {
    switch (action.kind) {
      case OutboxAction::Kind::kNone:
        return;
      case OutboxAction::Kind::kFinish:
        return FinishChoice(c, action.status);
      case OutboxAction::Kind::kWrite:
        break;
    }
    const RequestOutput& out = action.output;
    RequestRecord& rec = c.record;
    if (!out.new_token_ids.empty() && rec.ttft == absl::InfiniteDuration()) rec.ttft = absl::Now() - c.arrival;
    rec.completion_tokens += static_cast<int>(out.new_token_ids.size());
    if (out.prompt_tokens > 0) rec.prompt_tokens = out.prompt_tokens;
    rec.cached_tokens = out.cached_tokens;
    if (out.finished) {
      rec.finish_reason = std::string(FinishReasonName(out.finish_reason));
      c.usage_completion_tokens = out.completion_tokens;
    }
    if (request_.stream) {
      std::lock_guard<std::mutex> lock(mu_);
      return WriteChunk(c, out);  // the write's completion drives the next action
    }
    Append(c.total, out);
    action = c.outbox->WriteDone(true);
  }
}

void OpenAICall::WriteChunk(Choice& c, const RequestOutput& out) {
  if (!headers_sent_) {
    responder_->StartStream(200, "text/event-stream; charset=utf-8");
    headers_sent_ = true;
  }
  Piece piece;
  Append(piece, out);
  if (c.first_chunk && request_.echo) piece.text = EchoText() + piece.text;
  Json choices = Json::array();
  choices.push_back(ChoiceJson(format_, c.index, piece, /*chunk=*/true, c.first_chunk, &c.text_offset));
  c.first_chunk = false;
  Json chunk = Envelope(format_, /*chunk=*/true, std::move(choices));
  if (request_.include_usage) chunk["usage"] = nullptr;
  responder_->Write(SseEvent(chunk), [self = shared_from_this(), &c](WriteResult result) {
    if (result == WriteResult::kTimedOut) {
      // The client stopped reading: a back-pressure cut, as when output piles up (the outbox's other cut).
      const absl::Duration stall = self->context_.core->outbox_limits().stall_timeout;
      const absl::Status cut = absl::ResourceExhaustedError(
          absl::StrCat("the client has not read for ", absl::FormatDuration(stall), " (--stream-stall-timeout=",
                       absl::FormatDuration(stall), ")"));
      c.outbox->Abort(cut);  // a write is in flight: no action; WriteDone below ends the stream with `cut`
      self->context_.core->Cancel(c.number, cut);
    } else if (result == WriteResult::kFailed) {
      self->context_.core->Cancel(c.number, absl::CancelledError("the client closed the connection"));
    }
    self->OnAction(c, c.outbox->WriteDone(result == WriteResult::kOk));
  });
}

void OpenAICall::FinishChoice(Choice& c, const absl::Status& status) {
  bool cancel_others = false;
  bool last = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (c.done) return;
    c.done = true;
    // Counted by what the client received, as the gRPC front does.
    if (c.outbox->cut()) {
      c.record.status = c.outbox->CutStatus();
    } else if (gone_) {
      c.record.status = absl::CancelledError("the client closed the connection");
    } else {
      c.record.status = status;
    }
    c.record.duration = absl::Now() - c.arrival;
    if (c.accepted) context_.core->Closed(c.outbox);
    context_.core->Ended(c.record);
    if (!c.record.status.ok() && error_.ok()) {
      error_ = c.record.status;
      cancel_others = true;
    }
    last = --remaining_ == 0;
  }
  if (cancel_others) CancelChoices(absl::CancelledError("another choice of the request failed"));
  if (last) Complete();
}

void OpenAICall::CancelChoices(const absl::Status& why) {
  for (auto& c : choices_) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (c->done || !c->accepted) continue;
    }
    OutboxAction action = c->outbox->Cancel();  // first, so a request still on the pool never starts
    context_.core->Cancel(c->number, why);
    OnAction(*c, std::move(action));
  }
}

void OpenAICall::OnClientGone() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    gone_ = true;
  }
  CancelChoices(absl::CancelledError("the client closed the connection"));
}

std::string OpenAICall::EchoText() const {
  if (request_.kind != ApiKind::kCompletions) return "";
  return request_.prompt_is_ids ? context_.core->tokenizer().Decode(request_.prompt_ids) : request_.prompt_text;
}

void OpenAICall::Complete() {
  std::shared_ptr<OpenAICall> keep = std::move(self_);  // released when this returns
  std::lock_guard<std::mutex> lock(mu_);
  int prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
  for (const auto& c : choices_) {
    prompt_tokens = std::max(prompt_tokens, c->record.prompt_tokens);
    completion_tokens += c->usage_completion_tokens;
  }
  cached_tokens = choices_.front()->record.cached_tokens;
  if (!request_.stream) {
    if (!error_.ok()) return responder_->Respond(ErrorResponse(error_));
    Json choices = Json::array();
    for (auto& c : choices_) {
      Piece piece = c->total;
      if (request_.echo) piece.text = EchoText() + piece.text;
      choices.push_back(ChoiceJson(format_, c->index, piece, /*chunk=*/false, false, &c->text_offset));
    }
    Json body = Envelope(format_, /*chunk=*/false, std::move(choices));
    body["usage"] = UsageJson(prompt_tokens, completion_tokens, cached_tokens);
    return responder_->Respond(JsonResponse(200, body));
  }
  if (!error_.ok()) {
    if (!headers_sent_) return responder_->Respond(ErrorResponse(error_));
    if (gone_ || absl::IsResourceExhausted(error_)) return responder_->Abort();  // a client that does not read
    responder_->Write(SseEvent(ErrorJson(error_)), nullptr);
    return responder_->EndStream();
  }
  if (!headers_sent_) responder_->StartStream(200, "text/event-stream; charset=utf-8");
  if (request_.include_usage) {
    Json chunk = Envelope(format_, /*chunk=*/true, Json::array());
    chunk["usage"] = UsageJson(prompt_tokens, completion_tokens, cached_tokens);
    responder_->Write(SseEvent(chunk), nullptr);
  }
  responder_->Write(kSseDone, nullptr);
  responder_->EndStream();
}

}  // namespace moed::server::openai
