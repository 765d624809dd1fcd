// Sampler: next token from one logits row — greedy, temperature, top-k, top-p — with a counter-based RNG.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "engine/backend/backend.h"
#include "engine/runtime/sampling_params.h"

namespace moed {

struct SampledToken {
  int32_t token = -1;
  float logprob = 0.0f;                    // log_softmax(raw logits)[token]
  std::vector<TokenLogprob> top_logprobs;  // params.logprobs best tokens by raw logit, best first
};

// The one range rule for sampling parameters (the server's validator and the engine both apply it):
// INVALID_ARGUMENT naming the field when temperature < 0 or not finite, top_p ∉ (0, 1], top_k < 0,
// logprobs < 0 or > vocab_size. Messages start with the field name.
absl::Status ValidateSamplingParams(const SamplingParams& params, int vocab_size);

// Uniform double in [0, 1) that depends only on (seed, index): splitmix64 of both.
double CounterUniform(uint64_t seed, uint64_t index);

// Samples from `logits` (vocab). temperature 0 → argmax (lowest id on ties). Otherwise softmax(logits / T)
// restricted to the top_k best (0 = all), then to the smallest best-first prefix whose mass ≥ top_p (at least
// one token), drawn with CounterUniform(seed, sample_index). Pure: same inputs → same token.
// Params must have passed ValidateSamplingParams.
SampledToken SampleToken(absl::Span<const float> logits, const SamplingParams& params, int32_t sample_index);

}  // namespace moed
