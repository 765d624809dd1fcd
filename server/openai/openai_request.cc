// JSON body → OpenAIRequest: known fields type-checked, unknown ones refused by name.
#include "server/openai/openai_request.h"

#include <limits>
#include <set>
#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"

namespace moed::server::openai {
namespace {

using Json = nlohmann::ordered_json;
constexpr absl::string_view kParamPayload = "moed.openai.param";

absl::Status Bad(absl::string_view param, absl::string_view message) {
  return WithParam(absl::InvalidArgumentError(absl::StrCat(param, " ", message)), param);
}

const std::set<std::string, std::less<>>& KnownFields(ApiKind kind) {
  static const std::set<std::string, std::less<>> completions = {
      "model", "prompt", "max_tokens", "temperature", "top_p", "seed", "stop", "n", "logprobs", "echo", "user",
      "stream", "stream_options", "top_k", "ignore_eos", "priority", "moed"};
  static const std::set<std::string, std::less<>> chat = {
      "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "stop", "n",
      "logprobs", "top_logprobs", "user", "stream", "stream_options", "top_k", "ignore_eos", "priority", "moed"};
  return kind == ApiKind::kChat ? chat : completions;
}

// Readers: each fails naming `name` and the expected type.
absl::StatusOr<bool> Bool(const Json& v, absl::string_view name) {
  if (!v.is_boolean()) return Bad(name, "must be true or false");
  return v.get<bool>();
}

absl::StatusOr<int64_t> Int(const Json& v, absl::string_view name, int64_t lo, int64_t hi) {
  if (!v.is_number_integer()) return Bad(name, "must be an integer");
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(hi)) {
    return Bad(name, absl::StrCat("must be in [", lo, ", ", hi, "], got ", v.get<uint64_t>()));
  }
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) return Bad(name, absl::StrCat("must be in [", lo, ", ", hi, "], got ", x));
  return x;
}

absl::StatusOr<float> Number(const Json& v, absl::string_view name) {
  if (!v.is_number()) return Bad(name, "must be a number");
  return v.get<float>();
}

absl::StatusOr<std::string> String(const Json& v, absl::string_view name) {
  if (!v.is_string()) return Bad(name, "must be a string");
  return v.get<std::string>();
}

absl::Status ReadPrompt(const Json& v, OpenAIRequest& r) {
  if (v.is_string()) {
    r.prompt_text = v.get<std::string>();
    return absl::OkStatus();
  }
  if (!v.is_array()) return Bad("prompt", "must be a string or a list of token ids");
  if (v.size() == 1 && (v[0].is_string() || v[0].is_array())) return ReadPrompt(v[0], r);  // one prompt, in a list
  r.prompt_is_ids = true;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i].is_string() || v[i].is_array()) {
      return Bad("prompt", "holds several prompts; send one prompt per request (use n for several completions)");
    }
    absl::StatusOr<int64_t> id = Int(v[i], absl::StrCat("prompt[", i, "]"), 0, std::numeric_limits<int32_t>::max());
    if (!id.ok()) return WithParam(id.status(), "prompt");
    r.prompt_ids.push_back(static_cast<int32_t>(*id));
  }
  if (r.prompt_ids.empty()) return Bad("prompt", "is an empty list");
  return absl::OkStatus();
}

// Chat content: a string, or a list of {"type": "text", "text": ...} parts (joined); other parts are refused.
absl::Status ReadMessages(const Json& v, OpenAIRequest& r) {
  if (!v.is_array() || v.empty()) return Bad("messages", "must be a non-empty list of {role, content} objects");
  r.messages = Json::array();
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string at = absl::StrCat("messages[", i, "]");
    const Json& m = v[i];
    if (!m.is_object()) return WithParam(Bad(at, "must be an object"), "messages");
    if (!m.contains("role") || !m["role"].is_string()) {
      return WithParam(Bad(at + ".role", "must be a string"), "messages");
    }
    Json out = m;
    if (m.contains("content") && m["content"].is_array()) {
      std::string text;
      for (const Json& part : m["content"]) {
        if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
            !part["text"].is_string()) {
          return WithParam(
              Bad(at + ".content", "parts must be {\"type\": \"text\", \"text\": ...}; only text is served"),
              "messages");
        }
        text += part["text"].get<std::string>();
      }
      out["content"] = text;
    } else if (m.contains("content") && !m["content"].is_string() && !m["content"].is_null()) {
      return WithParam(Bad(at + ".content", "must be a string or a list of text parts"), "messages");
    }
    r.messages.push_back(std::move(out));
  }
  return absl::OkStatus();
}

absl::Status ReadStop(const Json& v, OpenAIRequest& r) {
  if (v.is_string()) {
    r.sampling.stop.push_back(v.get<std::string>());
    return absl::OkStatus();
  }
  if (!v.is_array()) return Bad("stop", "must be a string or a list of strings");
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_string()) return WithParam(Bad(absl::StrCat("stop[", i, "]"), "must be a string"), "stop");
    r.sampling.stop.push_back(v[i].get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status ReadMoed(const Json& v, OpenAIRequest& r) {
  if (!v.is_object()) return Bad("moed", "must be an object");
  for (const auto& [key, value] : v.items()) {
    if (key != "include_routing") return Bad(absl::StrCat("moed.", key), "is not a supported parameter");
    absl::StatusOr<bool> b = Bool(value, "moed.include_routing");
    if (!b.ok()) return b.status();
    r.include_routing = *b;
  }
  return absl::OkStatus();
}

#define MOED_READ(var, expr) \
  auto var = (expr);         \
  if (!var.ok()) return var.status()

absl::Status ReadField(const std::string& key, const Json& v, ApiKind kind, OpenAIRequest& r) {
  if (key == "model") {
    MOED_READ(s, String(v, key));
    r.model = *s;
  } else if (key == "prompt") {
    return ReadPrompt(v, r);
  } else if (key == "messages") {
    return ReadMessages(v, r);
  } else if (key == "max_tokens" || key == "max_completion_tokens") {
    MOED_READ(x, Int(v, key, 1, std::numeric_limits<int32_t>::max()));
    r.sampling.max_tokens = static_cast<int32_t>(*x);
  } else if (key == "temperature") {
    MOED_READ(x, Number(v, key));
    r.sampling.temperature = *x;
  } else if (key == "top_p") {
    MOED_READ(x, Number(v, key));
    r.sampling.top_p = *x;
  } else if (key == "top_k") {
    MOED_READ(x, Int(v, key, -1, std::numeric_limits<int32_t>::max()));
    r.sampling.top_k = *x < 0 ? 0 : static_cast<int32_t>(*x);  // -1 = off, as vLLM
  } else if (key == "seed") {
    MOED_READ(x, Int(v, key, 0, std::numeric_limits<int64_t>::max()));
    r.sampling.seed = static_cast<uint64_t>(*x);
  } else if (key == "stop") {
    return ReadStop(v, r);
  } else if (key == "n") {
    MOED_READ(x, Int(v, key, 1, kMaxChoices));
    r.n = static_cast<int>(*x);
  } else if (key == "logprobs" && kind == ApiKind::kCompletions) {
    MOED_READ(x, Int(v, key, 0, std::numeric_limits<int32_t>::max()));
    r.logprobs = true;
    r.sampling.logprobs = static_cast<int32_t>(*x);
  } else if (key == "logprobs") {
    MOED_READ(b, Bool(v, key));
    r.logprobs = *b;
  } else if (key == "top_logprobs") {
    MOED_READ(x, Int(v, key, 0, std::numeric_limits<int32_t>::max()));
    r.sampling.logprobs = static_cast<int32_t>(*x);
  } else if (key == "echo") {
    MOED_READ(b, Bool(v, key));
    r.echo = *b;
  } else if (key == "user") {
    MOED_READ(s, String(v, key));
    r.user = *s;
  } else if (key == "stream") {
    MOED_READ(b, Bool(v, key));
    r.stream = *b;
  } else if (key == "stream_options") {
    if (!v.is_object()) return Bad(key, "must be an object");
    for (const auto& [k, value] : v.items()) {
      if (k != "include_usage") return Bad(absl::StrCat("stream_options.", k), "is not a supported parameter");
      MOED_READ(b, Bool(value, "stream_options.include_usage"));
      r.include_usage = *b;
    }
  } else if (key == "ignore_eos") {
    MOED_READ(b, Bool(v, key));
    r.sampling.ignore_eos = *b;
  } else if (key == "priority") {
    MOED_READ(x, Int(v, key, std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
    r.priority = static_cast<int32_t>(*x);
  } else if (key == "moed") {
    return ReadMoed(v, r);
  }
  return absl::OkStatus();
}

#undef MOED_READ

}  // namespace

absl::Status WithParam(absl::Status status, absl::string_view param) {
  status.SetPayload(kParamPayload, absl::Cord(param));
  return status;
}

std::string ParamOf(const absl::Status& status) {
  const auto p = status.GetPayload(kParamPayload);
  return p.has_value() ? std::string(*p) : "";
}

absl::StatusOr<OpenAIRequest> ParseOpenAIRequest(ApiKind kind, absl::string_view body) {
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InvalidArgumentError("the request body is not valid JSON");
  if (!j.is_object()) return absl::InvalidArgumentError("the request body must be a JSON object");
  OpenAIRequest r;
  r.kind = kind;
  const auto& known = KnownFields(kind);
  for (const auto& [key, value] : j.items()) {
    if (known.find(key) == known.end()) return Bad(key, "is not a supported parameter");
  }
  for (const auto& [key, value] : j.items()) {
    if (value.is_null()) continue;  // OpenAI's null: the default
    if (absl::Status s = ReadField(key, value, kind, r); !s.ok()) return s;
  }
  if (kind == ApiKind::kCompletions && !j.contains("prompt")) return Bad("prompt", "is required");
  if (kind == ApiKind::kChat && !j.contains("messages")) return Bad("messages", "is required");
  if (kind == ApiKind::kChat && r.sampling.logprobs > 0 && !r.logprobs) {
    return Bad("top_logprobs", "needs logprobs: true");
  }
  if (r.include_usage && !r.stream) return Bad("stream_options", "is only allowed with stream: true");
  if (r.echo && r.logprobs) return Bad("echo", "with logprobs is not supported (prompt logprobs are not computed)");
  return r;
}

}  // namespace moed::server::openai
