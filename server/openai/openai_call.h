// OpenAICall: one /v1/completions or /v1/chat/completions request of the HTTP front — n choices, each its own
// engine request through EngineService (validated, queued, counted and logged like a gRPC Generate), answered as
// one JSON response or as an SSE stream with back-pressure through each choice's Outbox.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "engine/chat/chat_template.h"
#include "server/engine_service.h"
#include "server/http_server.h"
#include "server/openai/openai_format.h"
#include "server/openai/openai_request.h"

namespace moed::server::openai {

// What every call shares; owned by the front, outlives every call (the drain waits for them).
struct CallContext {
  EngineService* core = nullptr;
  std::string model_name;
  const chat::ChatTemplate* chat_template = nullptr;  // null: chat gets 400 with chat_error
  chat::ChatTemplateOptions chat_options;              // bos/eos; add_generation_prompt set
  absl::Status chat_error;
  bool tokenizer_adds_bos = false;  // Encode prepends BOS: a rendered chat prompt drops it (it carries its own)
};

class OpenAICall : public std::enable_shared_from_this<OpenAICall> {
 public:
  // Answers through `responder` exactly once (whole or streamed); each choice is counted and logged once
  // (front="http"). Any thread; returns at once.
  static void Run(const CallContext& context, OpenAIRequest request, const Caller& caller,
                  std::shared_ptr<HttpResponder> responder);

  // One choice: the StreamWriter of its Outbox. Act() runs on whichever thread holds that outbox's writer token.
  struct Choice final : public StreamWriter {
    OpenAICall* call = nullptr;
    int index = 0;
    uint64_t number = 0;
    std::shared_ptr<Outbox> outbox;
    RequestRecord record;
    absl::Time arrival;
    bool accepted = false;  // handed to the core (Opened); the outbox now drives it
    bool done = false;      // counted and logged
    bool first_chunk = true;
    int text_offset = 0;
    int usage_completion_tokens = 0;
    Piece total;            // non-streamed: everything so far
    void Act(OutboxAction action) override { call->OnAction(*this, std::move(action)); }
  };

  OpenAICall(const CallContext& context, OpenAIRequest request, const Caller& caller,
             std::shared_ptr<HttpResponder> responder);

 private:
  void Start();
  void SubmitAll(const CoreRequest& base);        // hands every choice to the core
  void Refuse(Choice& c, const absl::Status& status);  // a choice that never reached the core
  void OnAction(Choice& c, OutboxAction action);
  void WriteChunk(Choice& c, const RequestOutput& out);  // under mu_
  void FinishChoice(Choice& c, const absl::Status& status);
  void CancelChoices(const absl::Status& why);   // every accepted choice not yet done
  void OnClientGone();
  void Complete();                                 // every choice done: the response or the stream's end
  std::string EchoText() const;

  const CallContext& context_;
  const OpenAIRequest request_;
  const Caller caller_;
  const std::shared_ptr<HttpResponder> responder_;
  FormatContext format_;
  std::shared_ptr<OpenAICall> self_;  // alive until Complete
  std::vector<std::unique_ptr<Choice>> choices_;

  std::mutex mu_;  // guards what follows and orders responder calls (one chunk after another)
  int remaining_ = 0;
  bool headers_sent_ = false;
  bool gone_ = false;
  absl::Status error_;  // the first choice's failure
};

}  // namespace moed::server::openai
