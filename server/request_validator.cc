// The one request validator: each check names the field, the value and the limit it broke.
#include "server/request_validator.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "engine/common/status_macros.h"
#include "engine/runtime/sampler.h"

namespace moed::server {
namespace {

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

SamplingParams WithDefaults(const CoreSampling& s, uint64_t default_seed) {
  SamplingParams p;
  p.temperature = s.temperature.value_or(1.0f);
  p.top_p = s.top_p.value_or(1.0f);
  p.top_k = s.top_k;
  p.seed = s.seed.value_or(default_seed);
  p.logprobs = s.logprobs;
  return p;
}

absl::Status CheckSampling(const CoreSampling& s, const RequestLimits& limits) {
  // The engine's range rule, once; its message is prefixed with where the field sits in the request.
  if (absl::Status st = ValidateSamplingParams(WithDefaults(s, 0), limits.vocab_size); !st.ok()) {
    return Invalid(absl::StrCat("sampling.", st.message()));
  }
  if (s.logprobs > limits.max_logprobs) {
    return Invalid(absl::StrCat("sampling.logprobs must be in [0, ", limits.max_logprobs, "], got ", s.logprobs));
  }
  if (static_cast<int>(s.stop.size()) > limits.max_stop_strings) {
    return Invalid(absl::StrCat("sampling.stop has ", s.stop.size(), " strings, over the limit of ",
                                limits.max_stop_strings));
  }
  for (size_t i = 0; i < s.stop.size(); ++i) {
    const std::string& stop = s.stop[i];
    if (stop.empty()) return Invalid(absl::StrCat("sampling.stop[", i, "] is empty"));
    if (static_cast<int64_t>(stop.size()) > limits.max_stop_length) {
      return Invalid(absl::StrCat("sampling.stop[", i, "] is ", stop.size(), " bytes, over the limit of ",
                                  limits.max_stop_length, " bytes"));
    }
  }
  if (s.max_tokens.has_value()) {
    const int32_t m = *s.max_tokens;
    if (m <= 0 || m > limits.max_tokens_limit) {
      return Invalid(absl::StrCat("sampling.max_tokens must be in [1, ", limits.max_tokens_limit, "], got ", m));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckPrompt(const CoreRequest& r, const RequestLimits& limits) {
  const bool has_text = !r.prompt.empty();
  const bool has_ids = !r.prompt_ids.empty();
  if (has_text && has_ids) return Invalid("set exactly one of prompt / prompt_ids, not both");
  if (!has_text && !has_ids) return Invalid("prompt is empty: set exactly one of prompt / prompt_ids");
  if (has_text) {
    if (static_cast<int64_t>(r.prompt.size()) > limits.max_prompt_bytes) {
      return Invalid(absl::StrCat("prompt is ", r.prompt.size(), " bytes, over the limit of ",
                                  limits.max_prompt_bytes, " bytes (what the context of ", limits.context_length,
                                  " tokens can hold)"));
    }
    return absl::OkStatus();
  }
  if (static_cast<int64_t>(r.prompt_ids.size()) > limits.context_length) {
    return Invalid(absl::StrCat("prompt_ids has ", r.prompt_ids.size(), " tokens, over the context of ",
                                limits.context_length));
  }
  for (size_t i = 0; i < r.prompt_ids.size(); ++i) {
    const int32_t id = r.prompt_ids[i];
    if (id < 0 || id >= limits.vocab_size) {
      return Invalid(absl::StrCat("prompt_ids[", i, "] = ", id, " is outside the vocabulary [0, ",
                                  limits.vocab_size, ")"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

int64_t PromptByteCap(int context_length, const Tokenizer& tokenizer, int64_t flag_bytes) {
  int64_t longest = 1;
  for (int32_t id = 0; id < tokenizer.vocab_size(); ++id) {
    longest = std::max<int64_t>(longest, static_cast<int64_t>(tokenizer.TokenBytes(id).size()));
  }
  const int64_t derived = static_cast<int64_t>(context_length) * longest;
  return flag_bytes > 0 ? std::min(derived, flag_bytes) : derived;
}

absl::Status CheckRequest(const CoreRequest& r, const RequestLimits& limits, const Caller& caller) {
  if (r.client_id.size() > static_cast<size_t>(kMaxRequestIdBytes)) {
    return Invalid(absl::StrCat("request_id is ", r.client_id.size(), " bytes, over the limit of ",
                                kMaxRequestIdBytes, " bytes"));
  }
  MOED_RETURN_IF_ERROR(CheckPrompt(r, limits));
  MOED_RETURN_IF_ERROR(CheckSampling(r.sampling, limits));
  if (r.priority < 0 && !caller.admin) {
    return absl::PermissionDeniedError(
        absl::StrCat("priority ", r.priority, " is below 0, which needs a token marked admin"));
  }
  return absl::OkStatus();
}

absl::StatusOr<EngineRequest> ToEngineRequest(const CoreRequest& r, std::vector<int32_t> prompt_ids,
                                              const RequestLimits& limits, uint64_t default_seed) {
  if (prompt_ids.empty()) return Invalid("prompt tokenizes to no tokens");
  const int prompt_tokens = static_cast<int>(prompt_ids.size());
  const int room = limits.context_length - prompt_tokens;
  EngineRequest out;
  if (!r.sampling.max_tokens.has_value()) {
    if (room < 1) {
      return Invalid(absl::StrCat("prompt has ", prompt_tokens, " tokens, which leaves no room in the context of ",
                                  limits.context_length));
    }
    out.max_tokens = std::min(limits.default_max_tokens, room);
  } else {
    out.max_tokens = *r.sampling.max_tokens;
    if (out.max_tokens > room) {
      return Invalid(absl::StrCat("prompt (", prompt_tokens, " tokens) + sampling.max_tokens (", out.max_tokens,
                                  ") is over the context of ", limits.context_length, " tokens"));
    }
  }
  out.prompt_ids = std::move(prompt_ids);
  out.sampling = WithDefaults(r.sampling, default_seed);
  out.stop = r.sampling.stop;
  out.ignore_eos = r.sampling.ignore_eos;
  out.priority = r.priority;
  out.include_routing = r.include_routing;
  return out;
}

}  // namespace moed::server
