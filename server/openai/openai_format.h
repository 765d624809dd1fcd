// The OpenAI front end's output: completion and chat JSON (whole or as SSE chunks), usage, logprobs, the routing
// extension, and OpenAI's error JSON with its HTTP status.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "engine/runtime/engine_core.h"
#include "engine/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"
#include "server/http_server.h"
#include "server/openai/openai_request.h"

namespace moed::server::openai {

using Json = nlohmann::ordered_json;

// What one choice contributes to a chunk (one engine output) or to the whole response (all of them appended).
struct Piece {
  std::string text;
  std::vector<int32_t> ids;
  std::vector<float> logprobs;                        // one per id
  std::vector<std::vector<TokenLogprob>> top;         // one list per id, when alternatives were asked for
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  std::vector<int32_t> routing;                       // (layers * experts), on the last output with include_routing
};
void Append(Piece& into, const RequestOutput& out);

// Immutable facts of one HTTP call, shared by every chunk.
struct FormatContext {
  ApiKind kind = ApiKind::kCompletions;
  std::string id;       // "cmpl-…" / "chatcmpl-…"
  std::string model;
  int64_t created = 0;  // Unix seconds
  const Tokenizer* tokenizer = nullptr;
  bool logprobs = false;
  int num_experts = 0;
};

// One element of "choices". `chunk`: a streamed delta (chat: "delta" instead of "message"; `first` adds the role).
// `text_offset` (completions' logprobs): the choice's text length so far, advanced by this piece.
Json ChoiceJson(const FormatContext& ctx, int index, const Piece& piece, bool chunk, bool first, int* text_offset);
// The response or chunk object around `choices`.
Json Envelope(const FormatContext& ctx, bool chunk, Json choices);
Json UsageJson(int prompt_tokens, int completion_tokens, int cached_tokens);

std::string Dump(const Json& j);          // compact; invalid UTF-8 (a partial token) replaced, never thrown
std::string SseEvent(const Json& j);      // "data: <json>\n\n"
inline constexpr const char* kSseDone = "data: [DONE]\n\n";

// "stop" | "length" (eos is a stop for OpenAI).
const char* FinishReasonText(FinishReason reason);

// OpenAI's error shape: {"error": {"message", "type", "param", "code"}} with the status's HTTP code
// (400, 401, 403, 404, 429, 503, 504, 500). Messages of the core validator lose their gRPC field prefixes
// ("sampling.max_tokens" → "max_tokens", "prompt_ids" → "prompt"), and `param` names the field.
int HttpStatusOf(const absl::Status& status);
Json ErrorJson(const absl::Status& status);
HttpResponse ErrorResponse(const absl::Status& status);
HttpResponse JsonResponse(int status, const Json& body);

}  // namespace moed::server::openai
