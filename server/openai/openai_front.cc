// OpenAIFront: authenticate, parse, check the model, then hand the request to an OpenAICall.
#include "server/openai/openai_front.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/runtime/model_source.h"
#include "server/log.h"
#include "server/openai/openai_format.h"

namespace moed::server::openai {
namespace {

absl::Status MethodNotAllowed(const char* method) {
  return absl::Status(absl::StatusCode::kFailedPrecondition, absl::StrCat("use ", method, " here"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<OpenAIFront>> OpenAIFront::Create(EngineService* core, const Authenticator* auth,
                                                                  const ServerConfig& config, std::string model_name) {
  std::unique_ptr<OpenAIFront> f(new OpenAIFront());
  f->core_ = core;
  f->auth_ = auth;
  f->model_name_ = std::move(model_name);
  f->model_path_ = config.model;
  f->created_ = absl::ToUnixSeconds(absl::Now());
  const std::string dir = !config.tokenizer.empty()            ? config.tokenizer
                          : IsSyntheticModelName(config.model) ? ""
                                                               : config.model;
  absl::StatusOr<chat::ModelChatTemplate> found = chat::LoadChatTemplate(dir, config.chat_template);
  CallContext& ctx = f->context_;
  ctx.core = core;
  ctx.model_name = f->model_name_;
  if (found.ok()) {
    absl::StatusOr<chat::ChatTemplate> parsed = chat::ChatTemplate::Parse(found->source);
    if (!parsed.ok()) {
      const absl::Status why = absl::InvalidArgumentError(
          absl::StrCat("the chat template of ", found->origin, " does not parse: ", parsed.status().message()));
      if (!config.chat_template.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("--chat-template: ", why.message()));
      }
      LogEvent(LogSeverity::kWarning, "chat template unusable; chat completions will answer 400",
               {{"error", std::string(why.message())}});
      ctx.chat_error = why;
    } else {
      f->chat_template_.emplace(*std::move(parsed));
      ctx.chat_template = &*f->chat_template_;
      ctx.chat_options.add_generation_prompt = true;
      ctx.chat_options.bos_token = found->bos_token;
      ctx.chat_options.eos_token = found->eos_token;
    }
  } else if (!config.chat_template.empty() || !absl::IsNotFound(found.status())) {
    if (!config.chat_template.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("--chat-template ", config.chat_template, ": ",
                                                     found.status().message()));
    }
    ctx.chat_error = absl::InvalidArgumentError(absl::StrCat("the model's chat template cannot be used (",
                                                             found.status().message(), ")"));
  } else {
    ctx.chat_error = WithParam(
        absl::InvalidArgumentError(absl::StrCat("the model ", f->model_name_,
                                                " has no chat template (no chat_template in its tokenizer_config.json); "
                                                "use /v1/completions, or start moed with --chat-template FILE")),
        "messages");
  }
  absl::StatusOr<std::vector<int32_t>> empty = core->tokenizer().Encode("");
  ctx.tokenizer_adds_bos = empty.ok() && !empty->empty() && core->tokenizer().bos_id().has_value() &&
                           empty->front() == *core->tokenizer().bos_id();
  return f;
}

HttpServer::Routes OpenAIFront::Routes() {
  HttpServer::Routes r;
  r.get["/health"] = [this](const HttpRequest&) {
    return serving_ ? JsonResponse(200, Json{{"status", "ok"}})
                    : ErrorResponse(absl::UnavailableError("the server is draining (NOT_SERVING)"));
  };
  r.any["/v1/completions"] = [this](HttpRequest req, std::shared_ptr<HttpResponder> out) {
    Generate(ApiKind::kCompletions, std::move(req), std::move(out));
  };
  r.any["/v1/chat/completions"] = [this](HttpRequest req, std::shared_ptr<HttpResponder> out) {
    Generate(ApiKind::kChat, std::move(req), std::move(out));
  };
  r.any["/v1/models"] = [this](HttpRequest req, std::shared_ptr<HttpResponder> out) { Models(req, *out); };
  r.not_found = [this](HttpRequest req, std::shared_ptr<HttpResponder> out) {
    const std::string path = req.target.substr(0, req.target.find('?'));
    if (absl::StartsWith(path, "/v1/models/")) return Model(req, path.substr(11), *out);
    out->Respond(ErrorResponse(absl::NotFoundError(absl::StrCat("no route ", req.method, " ", path, "; served: "
                                                                "/v1/completions, /v1/chat/completions, /v1/models, "
                                                                "/health"))));
  };
  return r;
}

std::optional<Caller> OpenAIFront::Admit(const HttpRequest& request, const char* method, HttpResponder& responder) {
  if (request.method != method) {
    responder.Respond(JsonResponse(405, ErrorJson(MethodNotAllowed(method))));
    return std::nullopt;
  }
  const std::string* authorization = request.authorization.has_value() ? &*request.authorization : nullptr;
  absl::StatusOr<Caller> caller = auth_->Authenticate(authorization);
  if (!caller.ok()) {
    responder.Respond(ErrorResponse(caller.status()));
    return std::nullopt;
  }
  return *caller;
}

Json OpenAIFront::ModelJson() const {
  return Json{{"id", model_name_}, {"object", "model"}, {"created", created_}, {"owned_by", "moed"},
              {"max_model_len", core_->limits().context_length}};
}

void OpenAIFront::Models(const HttpRequest& request, HttpResponder& responder) {
  if (!Admit(request, "GET", responder)) return;
  responder.Respond(JsonResponse(200, Json{{"object", "list"}, {"data", Json::array({ModelJson()})}}));
}

void OpenAIFront::Model(const HttpRequest& request, const std::string& id, HttpResponder& responder) {
  if (!Admit(request, "GET", responder)) return;
  if (id != model_name_) {
    return responder.Respond(ErrorResponse(WithParam(
        absl::NotFoundError(absl::StrCat("the model '", id, "' does not exist; this server serves '", model_name_,
                                         "'")),
        "model")));
  }
  responder.Respond(JsonResponse(200, ModelJson()));
}

void OpenAIFront::Refuse(const absl::Status& status, HttpResponder& responder) {
  RequestRecord record;
  record.engine_id = EngineService::EngineId(core_->NextRequestNumber());
  record.client_id = record.engine_id;
  record.status = status;
  record.front = Front::kHttp;
  core_->Ended(record);
  responder.Respond(ErrorResponse(status));
}

void OpenAIFront::Generate(ApiKind kind, HttpRequest request, std::shared_ptr<HttpResponder> responder) {
  if (request.method != "POST") return responder->Respond(JsonResponse(405, ErrorJson(MethodNotAllowed("POST"))));
  const std::string* authorization = request.authorization.has_value() ? &*request.authorization : nullptr;
  absl::StatusOr<Caller> caller = auth_->Authenticate(authorization);
  if (!caller.ok()) return Refuse(caller.status(), *responder);  // counted, as gRPC counts it
  absl::StatusOr<OpenAIRequest> parsed = ParseOpenAIRequest(kind, request.body);
  if (!parsed.ok()) {
    if (ParamOf(parsed.status()).empty()) {
      core_->Unparseable(parsed.status(), Front::kHttp);  // not JSON at all
    } else {
      core_->Rejected(RejectReason::kInvalidArgument, Front::kHttp);  // as gRPC's field checks count
    }
    return Refuse(parsed.status(), *responder);
  }
  if (!parsed->model.empty() && parsed->model != model_name_ && parsed->model != model_path_) {
    core_->Rejected(RejectReason::kUnknownModel, Front::kHttp);
    return Refuse(WithParam(absl::NotFoundError(absl::StrCat("the model '", parsed->model,
                                                             "' does not exist; this server serves '", model_name_,
                                                             "'")),
                            "model"),
                  *responder);
  }
  OpenAICall::Run(context_, *std::move(parsed), *caller, std::move(responder));
}

}  // namespace moed::server::openai
