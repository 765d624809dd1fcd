// Generate: a one-sequence loop over Backend::Step with its own block table [0, n).
#include "engine/runtime/generate.h"

#include <algorithm>
#include <numeric>

#include "absl/strings/str_format.h"
#include "engine/common/status_macros.h"
#include "engine/runtime/eos.h"

namespace moed {
namespace {

void AddRouting(const SequenceResult& r, std::vector<int64_t>& total) {
  for (size_t i = 0; i < r.routing.size() && i < total.size(); ++i) total[i] += r.routing[i];
}

}  // namespace

int KvBlocksNeeded(int num_positions, int block_size) { return (num_positions + block_size - 1) / block_size; }

absl::StatusOr<GenerateResult> Generate(Backend& backend, const std::vector<int32_t>& prompt,
                                        const GenerateOptions& options) {
  if (prompt.empty()) return absl::InvalidArgumentError("Generate: the prompt is empty");
  if (options.max_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("Generate: max_tokens must be ≥ 0, got %d", options.max_tokens));
  }
  if (options.prefill_chunk < 1 || options.block_size < 1) {
    return absl::InvalidArgumentError(absl::StrFormat("Generate: prefill_chunk (%d) and block_size (%d) must be ≥ 1",
                                                      options.prefill_chunk, options.block_size));
  }
  const ModelSpec& spec = backend.spec();
  const int total_positions = static_cast<int>(prompt.size()) + std::max(0, options.max_tokens - 1);
  const int blocks = KvBlocksNeeded(total_positions, options.block_size);
  if (options.init_kv_cache) MOED_RETURN_IF_ERROR(backend.InitKvCache({blocks, options.block_size}));

  GenerateResult result;
  if (options.want_routing) result.routing.assign(static_cast<size_t>(spec.num_layers) * spec.num_experts, 0);
  SequenceStep seq;
  seq.seq_id = 0;
  seq.block_table.resize(blocks);
  std::iota(seq.block_table.begin(), seq.block_table.end(), 0);
  seq.sampling = options.sampling;
  seq.want_routing = options.want_routing;
  StepBatch batch;
  StepOutput out;

  // Prefill in chunks; the last chunk samples the first token (when any is wanted).
  const int n = static_cast<int>(prompt.size());
  int32_t next = -1;
  for (int start = 0; start < n; start += options.prefill_chunk) {
    const int len = std::min(options.prefill_chunk, n - start);
    const bool last = start + len == n;
    batch.token_ids.assign(prompt.begin() + start, prompt.begin() + start + len);
    seq.token_offset = 0;
    seq.num_tokens = len;
    seq.start_pos = start;
    seq.sample = last && options.max_tokens > 0;
    seq.want_logits = last && options.want_prompt_logits;
    seq.sample_index = 0;
    batch.seqs = {seq};
    MOED_RETURN_IF_ERROR(backend.Step(batch, &out));
    AddRouting(out.results[0], result.routing);
    if (!last) continue;
    if (options.want_prompt_logits) result.prompt_logits = std::move(out.results[0].logits);
    next = out.results[0].token;
    if (seq.sample) result.logprobs.push_back(out.results[0].logprob);
  }

  // Decode: each generated token is fed back at the next position.
  seq.want_logits = false;
  seq.sample = true;
  for (int produced = 0; produced < options.max_tokens;) {
    result.output_ids.push_back(next);
    ++produced;
    if (options.on_token && !options.on_token(next)) break;
    if (EndsAtEos(options.eos_ids, next, options.ignore_eos)) {
      result.stopped_at_eos = true;
      break;
    }
    if (produced == options.max_tokens) break;
    batch.token_ids = {next};
    seq.num_tokens = 1;
    seq.start_pos = n + produced - 1;
    seq.sample_index = produced;
    batch.seqs = {seq};
    MOED_RETURN_IF_ERROR(backend.Step(batch, &out));
    AddRouting(out.results[0], result.routing);
    next = out.results[0].token;
    result.logprobs.push_back(out.results[0].logprob);
  }
  return result;
}

}  // namespace moed
