// GenerateRequest validation: each check names the field, the value and the limit it broke.
#include "server/request_validator.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/common/status_macros.h"

namespace moed::server {
namespace {

absl::Status Invalid(const std::string& message) { return absl::InvalidArgumentError(message); }

absl::Status CheckSampling(const v1::SamplingParams& s, const RequestLimits& limits) {
  if (s.has_temperature()) {
    const float t = s.temperature();
    if (std::isnan(t) || std::isinf(t) || t < 0.0f) {
      return Invalid(absl::StrCat("sampling.temperature must be a finite number >= 0, got ", t));
    }
  }
  if (s.has_top_p()) {
    const float p = s.top_p();
    if (std::isnan(p) || p <= 0.0f || p > 1.0f) {
      return Invalid(absl::StrCat("sampling.top_p must be in (0, 1], got ", p));
    }
  }
  if (s.top_k() < 0) return Invalid(absl::StrCat("sampling.top_k must be >= 0 (0 = no limit), got ", s.top_k()));
  if (s.logprobs() < 0 || s.logprobs() > limits.max_logprobs) {
    return Invalid(absl::StrCat("sampling.logprobs must be in [0, ", limits.max_logprobs, "], got ", s.logprobs()));
  }
  if (s.stop_size() > limits.max_stop_strings) {
    return Invalid(absl::StrCat("sampling.stop has ", s.stop_size(), " strings, over the limit of ",
                                limits.max_stop_strings));
  }
  for (int i = 0; i < s.stop_size(); ++i) {
    const std::string& stop = s.stop(i);
    if (stop.empty()) return Invalid(absl::StrCat("sampling.stop[", i, "] is empty"));
    if (static_cast<int64_t>(stop.size()) > limits.max_stop_length) {
      return Invalid(absl::StrCat("sampling.stop[", i, "] is ", stop.size(), " bytes, over the limit of ",
                                  limits.max_stop_length, " bytes"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int32_t>> PromptIds(const v1::GenerateRequest& r, const RequestLimits& limits,
                                               const Tokenizer& tokenizer) {
  const bool has_text = !r.prompt().empty();
  const bool has_ids = r.prompt_ids_size() > 0;
  if (has_text && has_ids) return Invalid("set exactly one of prompt / prompt_ids, not both");
  if (!has_text && !has_ids) return Invalid("prompt is empty: set exactly one of prompt / prompt_ids");
  if (has_ids) {
    if (r.prompt_ids_size() > limits.context_length) {
      return Invalid(absl::StrCat("prompt_ids has ", r.prompt_ids_size(), " tokens, over the context of ",
                                  limits.context_length));
    }
    for (int i = 0; i < r.prompt_ids_size(); ++i) {
      const int32_t id = r.prompt_ids(i);
      if (id < 0 || id >= limits.vocab_size) {
        return Invalid(absl::StrCat("prompt_ids[", i, "] = ", id, " is outside the vocabulary [0, ",
                                    limits.vocab_size, ")"));
      }
    }
    return std::vector<int32_t>(r.prompt_ids().begin(), r.prompt_ids().end());
  }
  if (static_cast<int64_t>(r.prompt().size()) > limits.max_prompt_bytes) {
    return Invalid(absl::StrCat("prompt is ", r.prompt().size(), " bytes, over the limit of ",
                                limits.max_prompt_bytes, " bytes"));
  }
  absl::StatusOr<std::vector<int32_t>> ids = tokenizer.Encode(r.prompt());
  if (!ids.ok()) return Invalid(absl::StrCat("prompt could not be tokenized: ", ids.status().message()));
  if (ids->empty()) return Invalid("prompt tokenizes to no tokens");
  return ids;
}

// Explicit max_tokens must fit; an unset one is the default clamped to what the context leaves.
absl::StatusOr<int32_t> MaxTokens(const v1::SamplingParams& s, int prompt_tokens, const RequestLimits& limits) {
  const int room = limits.context_length - prompt_tokens;
  if (!s.has_max_tokens()) {
    if (room < 1) {
      return Invalid(absl::StrCat("prompt has ", prompt_tokens, " tokens, which leaves no room in the context of ",
                                  limits.context_length));
    }
    return std::min(limits.default_max_tokens, room);
  }
  const int32_t m = s.max_tokens();
  if (m <= 0 || m > limits.max_tokens_limit) {
    return Invalid(absl::StrCat("sampling.max_tokens must be in [1, ", limits.max_tokens_limit, "], got ", m));
  }
  if (m > room) {
    return Invalid(absl::StrCat("prompt (", prompt_tokens, " tokens) + sampling.max_tokens (", m,
                                ") is over the context of ", limits.context_length, " tokens"));
  }
  return m;
}

}  // namespace

absl::StatusOr<EngineRequest> ValidateGenerateRequest(const v1::GenerateRequest& request,
                                                      const RequestLimits& limits, const Tokenizer& tokenizer,
                                                      uint64_t default_seed) {
  const v1::SamplingParams& s = request.sampling();
  MOED_RETURN_IF_ERROR(CheckSampling(s, limits));
  EngineRequest out;
  MOED_ASSIGN_OR_RETURN(out.prompt_ids, PromptIds(request, limits, tokenizer));
  MOED_ASSIGN_OR_RETURN(out.max_tokens, MaxTokens(s, static_cast<int>(out.prompt_ids.size()), limits));
  out.sampling.temperature = s.has_temperature() ? s.temperature() : 1.0f;
  out.sampling.top_p = s.has_top_p() ? s.top_p() : 1.0f;
  out.sampling.top_k = s.top_k();
  out.sampling.seed = s.has_seed() ? s.seed() : default_seed;
  out.sampling.logprobs = s.logprobs();
  out.stop.assign(s.stop().begin(), s.stop().end());
  out.ignore_eos = s.ignore_eos();
  out.priority = request.priority();
  out.include_routing = request.include_routing();
  return out;
}

}  // namespace moed::server
