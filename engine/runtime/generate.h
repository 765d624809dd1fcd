// Single-sequence generation on a Backend (no scheduler): chunked prefill, then one decode step per token.
// Used by moe-run, the golden tests and the CPU decode benchmark.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/backend/backend.h"
#include "engine/runtime/sampling_params.h"

namespace moed {

struct GenerateOptions {
  int max_tokens = 64;                // tokens to generate; 0 = prefill only (scores the prompt)
  SamplingParams sampling;
  std::vector<int32_t> eos_ids;       // generation stops when one of these is sampled (ModelEosIds; the rule of
                                      // engine/runtime/eos.h: the EOS is returned as the last output id)
  bool ignore_eos = false;
  int prefill_chunk = 512;            // prompt tokens per prefill Step, ≥ 1
  int block_size = 16;                // KV block size used for InitKvCache
  // true: Generate calls backend.InitKvCache with just enough blocks for prompt + max_tokens.
  // false: the caller already initialised the cache with block_size `block_size` and at least
  // KvBlocksNeeded(...) blocks; Generate uses blocks [0, needed) and overwrites them.
  bool init_kv_cache = true;
  bool want_prompt_logits = false;    // return the logits at the last prompt position
  bool want_routing = false;          // sum the router assignments of all processed tokens
  // Called after each token appended to output_ids (an EOS included: it has no text); return false to stop early.
  // May be empty.
  std::function<bool(int32_t token)> on_token;
};

struct GenerateResult {
  std::vector<int32_t> output_ids;   // generated tokens, the EOS that stopped generation last (as the engine
                                     // core returns it); with ignore_eos, EOS tokens are ordinary output
  std::vector<float> logprobs;       // one per output id
  std::vector<float> prompt_logits;  // (vocab) when want_prompt_logits
  std::vector<int64_t> routing;      // (num_layers * num_experts) when want_routing
  bool stopped_at_eos = false;      // output_ids ends with the EOS that stopped it

  // The ids that carry text: output_ids without the EOS that stopped generation.
  std::vector<int32_t> text_ids() const {
    return {output_ids.begin(), output_ids.end() - (stopped_at_eos ? 1 : 0)};
  }
};

// KV blocks for a sequence of `num_positions` tokens.
int KvBlocksNeeded(int num_positions, int block_size);

// Runs one sequence. INVALID_ARGUMENT for an empty prompt or bad options; backend errors pass through.
// The prompt is fed in chunks of prefill_chunk; each generated token is fed back one decode Step at a time.
// Sampling uses sample_index = number of tokens generated so far.
absl::StatusOr<GenerateResult> Generate(Backend& backend, const std::vector<int32_t>& prompt,
                                        const GenerateOptions& options);

}  // namespace moed
