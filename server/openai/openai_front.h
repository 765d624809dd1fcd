// OpenAIFront: the OpenAI-compatible HTTP routes — /v1/completions, /v1/chat/completions, /v1/models, /health —
// on the same EngineService as gRPC (one validator, queue, limits, log line; metrics with front="http").
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "engine/chat/chat_template.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/engine_service.h"
#include "server/http_server.h"
#include "server/openai/openai_call.h"

namespace moed::server::openai {

class OpenAIFront {
 public:
  // Finds the chat template (--chat-template, else the model directory's); a model without one still serves
  // completions, and chat answers 400 saying so. A --chat-template file that cannot be read or parsed is an error.
  static absl::StatusOr<std::unique_ptr<OpenAIFront>> Create(EngineService* core, const Authenticator* auth,
                                                             const ServerConfig& config, std::string model_name);

  // The routes; the front must outlive the HttpServer serving them and every call they start.
  HttpServer::Routes Routes();
  void SetServing(bool serving) { serving_ = serving; }  // /health: 200, or 503 while draining

 private:
  OpenAIFront() = default;
  void Generate(ApiKind kind, HttpRequest request, std::shared_ptr<HttpResponder> responder);
  void Models(const HttpRequest& request, HttpResponder& responder);                          // GET /v1/models
  void Model(const HttpRequest& request, const std::string& id, HttpResponder& responder);    // GET /v1/models/ID
  nlohmann::ordered_json ModelJson() const;
  // A generation request refused at the door (token, JSON): answered, counted and logged like a gRPC refusal.
  void Refuse(const absl::Status& status, HttpResponder& responder);
  // The caller of a /v1 request, or an error answered already.
  std::optional<Caller> Admit(const HttpRequest& request, const char* method, HttpResponder& responder);

  EngineService* core_ = nullptr;
  const Authenticator* auth_ = nullptr;
  std::string model_name_;
  std::string model_path_;  // --model, accepted as a model name too
  int64_t created_ = 0;
  std::optional<chat::ChatTemplate> chat_template_;
  CallContext context_;
  std::atomic<bool> serving_{false};
};

}  // namespace moed::server::openai
