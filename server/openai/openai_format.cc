// OpenAI JSON shapes for completions, chat completions, their SSE chunks and errors.
#include "server/openai/openai_format.h"

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/moe/load_balance.h"

namespace moed::server::openai {
namespace {

Json Bytes(const std::string& s) {
  Json b = Json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

// A token's text for logprobs; a partial UTF-8 sequence is replaced when dumped.
std::string TokenText(const FormatContext& ctx, int32_t id) { return ctx.tokenizer->TokenBytes(id); }

Json CompletionLogprobs(const FormatContext& ctx, const Piece& p, int* text_offset) {
  Json tokens = Json::array(), token_logprobs = Json::array(), top = Json::array(), offsets = Json::array();
  for (size_t i = 0; i < p.ids.size() && i < p.logprobs.size(); ++i) {
    const std::string text = TokenText(ctx, p.ids[i]);
    tokens.push_back(text);
    token_logprobs.push_back(p.logprobs[i]);
    offsets.push_back(*text_offset);
    *text_offset += static_cast<int>(text.size());
    Json alts = Json::object();
    if (i < p.top.size()) {
      for (const TokenLogprob& alt : p.top[i]) alts[TokenText(ctx, alt.token)] = alt.logprob;
    }
    top.push_back(std::move(alts));
  }
  return Json{{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top}, {"text_offset", offsets}};
}

Json ChatLogprobs(const FormatContext& ctx, const Piece& p) {
  Json content = Json::array();
  for (size_t i = 0; i < p.ids.size() && i < p.logprobs.size(); ++i) {
    const std::string text = TokenText(ctx, p.ids[i]);
    Json alts = Json::array();
    if (i < p.top.size()) {
      for (const TokenLogprob& alt : p.top[i]) {
        const std::string t = TokenText(ctx, alt.token);
        alts.push_back(Json{{"token", t}, {"logprob", alt.logprob}, {"bytes", Bytes(t)}});
      }
    }
    content.push_back(
        Json{{"token", text}, {"logprob", p.logprobs[i]}, {"bytes", Bytes(text)}, {"top_logprobs", alts}});
  }
  return Json{{"content", content}};
}

Json RoutingJson(const std::vector<int32_t>& routing, int num_experts) {
  Json layers = Json::array();
  if (num_experts <= 0) return layers;
  const int n = static_cast<int>(routing.size()) / num_experts;
  for (int l = 0; l < n; ++l) {
    const auto begin = routing.begin() + static_cast<ptrdiff_t>(l) * num_experts;
    Json ids = Json::array(), counts = Json::array();
    for (int e = 0; e < num_experts; ++e) {
      const int32_t c = routing[static_cast<size_t>(l) * num_experts + e];
      if (c == 0) continue;
      ids.push_back(e);
      counts.push_back(c);
    }
    layers.push_back(Json{{"layer", l},
                          {"expert_ids", ids},
                          {"token_counts", counts},
                          {"entropy", ComputeLoadBalance(std::vector<int64_t>(begin, begin + num_experts)).entropy}});
  }
  return layers;
}

// The core validator speaks in gRPC field names; the OpenAI front's clients know these.
std::string OpenAIMessage(std::string message) {
  if (absl::StartsWith(message, "sampling.")) message = message.substr(9);
  return absl::StrReplaceAll(message, {{"prompt_ids", "prompt"}, {"sampling.", ""}});
}

// The field a core message starts with ("max_tokens must be …" → "max_tokens").
std::string LeadingField(const std::string& message) {
  const size_t end = message.find_first_of(" [(");
  const std::string field = message.substr(0, end);
  for (char c : field) {
    if (!(absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) return "";
  }
  return field;
}

}  // namespace

void Append(Piece& into, const RequestOutput& out) {
  into.text += out.new_text;
  into.ids.insert(into.ids.end(), out.new_token_ids.begin(), out.new_token_ids.end());
  into.logprobs.insert(into.logprobs.end(), out.logprobs.begin(), out.logprobs.end());
  into.top.insert(into.top.end(), out.top_logprobs.begin(), out.top_logprobs.end());
  if (out.finished) {
    into.finished = true;
    into.finish_reason = out.finish_reason;
    into.routing = out.routing;
  }
}

const char* FinishReasonText(FinishReason reason) { return reason == FinishReason::kLength ? "length" : "stop"; }

Json ChoiceJson(const FormatContext& ctx, int index, const Piece& p, bool chunk, bool first, int* text_offset) {
  Json c = Json::object();
  c["index"] = index;
  if (ctx.kind == ApiKind::kCompletions) {
    c["text"] = p.text;
    c["logprobs"] = ctx.logprobs ? CompletionLogprobs(ctx, p, text_offset) : Json(nullptr);
  } else {
    Json message = Json::object();
    if (!chunk || first) message["role"] = "assistant";
    if (!chunk || !p.text.empty() || first) message["content"] = p.text;
    c[chunk ? "delta" : "message"] = std::move(message);
    c["logprobs"] = ctx.logprobs ? ChatLogprobs(ctx, p) : Json(nullptr);
  }
  c["finish_reason"] = p.finished ? Json(FinishReasonText(p.finish_reason)) : Json(nullptr);
  if (p.finished && !p.routing.empty()) c["moed"] = Json{{"routing", RoutingJson(p.routing, ctx.num_experts)}};
  return c;
}

Json Envelope(const FormatContext& ctx, bool chunk, Json choices) {
  const char* object = ctx.kind == ApiKind::kCompletions ? "text_completion"
                       : chunk                           ? "chat.completion.chunk"
                                                         : "chat.completion";
  return Json{{"id", ctx.id}, {"object", object}, {"created", ctx.created}, {"model", ctx.model},
              {"choices", std::move(choices)}};
}

Json UsageJson(int prompt_tokens, int completion_tokens, int cached_tokens) {
  return Json{{"prompt_tokens", prompt_tokens},
              {"completion_tokens", completion_tokens},
              {"total_tokens", prompt_tokens + completion_tokens},
              {"prompt_tokens_details", Json{{"cached_tokens", cached_tokens}}}};
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

std::string SseEvent(const Json& j) { return absl::StrCat("data: ", Dump(j), "\n\n"); }

int HttpStatusOf(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk: return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition: return 400;
    case absl::StatusCode::kUnauthenticated: return 401;
    case absl::StatusCode::kPermissionDenied: return 403;
    case absl::StatusCode::kNotFound: return 404;
    case absl::StatusCode::kResourceExhausted: return 429;
    case absl::StatusCode::kUnavailable: return 503;
    case absl::StatusCode::kDeadlineExceeded: return 504;
    case absl::StatusCode::kCancelled: return 499;
    default: return 500;
  }
}

Json ErrorJson(const absl::Status& s) {
  const int http = HttpStatusOf(s);
  const std::string message = OpenAIMessage(std::string(s.message()));
  std::string param = ParamOf(s);
  if (param.empty() && http == 400) param = LeadingField(message);
  const char* type = http == 401   ? "authentication_error"
                     : http == 403 ? "permission_error"
                     : http == 404 ? "not_found_error"
                     : http == 429 ? "rate_limit_error"
                     : http >= 500 ? "server_error"
                                   : "invalid_request_error";
  std::string code = absl::AsciiStrToLower(absl::StatusCodeToString(s.code()));
  if (http == 401) code = "invalid_api_key";
  if (http == 404 && absl::StrContains(message, "model")) code = "model_not_found";
  return Json{{"error", Json{{"message", message},
                             {"type", type},
                             {"param", param.empty() ? Json(nullptr) : Json(param)},
                             {"code", code}}}};
}

HttpResponse JsonResponse(int status, const Json& body) {
  return HttpResponse{status, "application/json", Dump(body) + "\n"};
}

HttpResponse ErrorResponse(const absl::Status& status) { return JsonResponse(HttpStatusOf(status), ErrorJson(status)); }

}  // namespace moed::server::openai
