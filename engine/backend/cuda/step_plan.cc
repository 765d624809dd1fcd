// StepPlan construction and batch validation.
#include "engine/backend/cuda/step_plan.h"

#include "absl/strings/str_format.h"
#include "engine/common/status_macros.h"
#include "engine/runtime/sampler.h"

namespace moed::cuda {

absl::Status BuildStepPlan(const StepBatch& batch, const ModelSpec& spec, int num_blocks, int block_size,
                           StepPlan* plan) {
  const int T = static_cast<int>(batch.token_ids.size());
  *plan = StepPlan();
  plan->tokens = T;
  plan->positions.assign(T, -1);
  plan->kv_rows.assign(T, -1);
  plan->table_offsets.assign(T, 0);
  plan->token_seq.assign(T, -1);
  for (int i = 0; i < T; ++i) {
    const int32_t id = batch.token_ids[i];
    if (id < 0 || id >= spec.vocab_size) {
      return absl::InvalidArgumentError(
          absl::StrFormat("token %d of the step: id %d outside the vocabulary [0, %d)", i, id, spec.vocab_size));
    }
  }
  for (size_t si = 0; si < batch.seqs.size(); ++si) {
    const SequenceStep& s = batch.seqs[si];
    const std::string where = absl::StrFormat("sequence %d (index %d)", s.seq_id, si);
    if (s.num_tokens < 1 || s.token_offset < 0 || s.token_offset + s.num_tokens > T) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: tokens [%d, %d) outside the step's %d tokens", where,
                                                        s.token_offset, s.token_offset + s.num_tokens, T));
    }
    if (s.start_pos < 0) return absl::InvalidArgumentError(absl::StrFormat("%s: negative start_pos", where));
    const int64_t end = static_cast<int64_t>(s.start_pos) + s.num_tokens;
    const int64_t needed = (end + block_size - 1) / block_size;
    if (static_cast<int64_t>(s.block_table.size()) < needed) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: positions up to %d need %d KV blocks, block table has %d",
                                                        where, end - 1, needed, s.block_table.size()));
    }
    for (int64_t b = 0; b < needed; ++b) {
      if (s.block_table[b] < 0 || s.block_table[b] >= num_blocks) {
        return absl::InvalidArgumentError(absl::StrFormat("%s: block_table[%d] = %d outside [0, %d)", where, b,
                                                          s.block_table[b], num_blocks));
      }
    }
    if (s.sample) {
      const absl::Status st = ValidateSamplingParams(s.sampling, spec.vocab_size);
      if (!st.ok()) return absl::InvalidArgumentError(absl::StrFormat("%s: %s", where, st.message()));
    }
    const int32_t table_offset = static_cast<int32_t>(plan->block_tables.size());
    plan->block_tables.insert(plan->block_tables.end(), s.block_table.begin(), s.block_table.begin() + needed);
    for (int j = 0; j < s.num_tokens; ++j) {
      const int t = s.token_offset + j;
      if (plan->token_seq[t] != -1) {
        return absl::InvalidArgumentError(absl::StrFormat("%s: token %d already belongs to another sequence", where, t));
      }
      const int32_t pos = s.start_pos + j;
      plan->token_seq[t] = static_cast<int32_t>(si);
      plan->positions[t] = pos;
      plan->table_offsets[t] = table_offset;
      plan->kv_rows[t] = static_cast<int64_t>(s.block_table[pos / block_size]) * block_size + pos % block_size;
    }
    if (s.sample || s.want_logits) {
      plan->out_rows.push_back(s.token_offset + s.num_tokens - 1);
      plan->out_row_seq.push_back(static_cast<int32_t>(si));
    }
    plan->any_routing = plan->any_routing || s.want_routing;
  }
  for (int t = 0; t < T; ++t) {
    if (plan->token_seq[t] == -1) {
      return absl::InvalidArgumentError(absl::StrFormat("token %d of the step belongs to no sequence", t));
    }
  }
  return absl::OkStatus();
}

}  // namespace moed::cuda
