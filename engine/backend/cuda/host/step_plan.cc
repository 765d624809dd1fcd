// StepPlan construction and batch validation.
#include "engine/backend/cuda/host/step_plan.h"

#include <limits>
#include <string>

#include "absl/strings/str_format.h"
#include "engine/runtime/sampler.h"

namespace moed::cuda {

absl::Status BuildStepPlan(const StepBatch& batch, const ModelSpec& spec, int num_blocks, int block_size,
                           StepPlan* plan) {
  *plan = StepPlan();
  if (block_size <= 0 || num_blocks <= 0) {
    return absl::FailedPreconditionError("cuda backend: Step before InitKvCache");
  }
  const int64_t num_ids = static_cast<int64_t>(batch.token_ids.size());
  int64_t total_rows = 0;
  for (size_t si = 0; si < batch.seqs.size(); ++si) {
    const SequenceStep& s = batch.seqs[si];
    const std::string where = absl::StrFormat("sequence %d (index %d)", s.seq_id, si);
    if (s.num_tokens < 1) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: num_tokens must be ≥ 1, got %d", where, s.num_tokens));
    }
    const int64_t first = s.token_offset, last = first + s.num_tokens;
    if (first < 0 || last > num_ids) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: tokens [%d, %d) outside the step's %d token ids", where, first, last, num_ids));
    }
    if (s.start_pos < 0) {
      return absl::InvalidArgumentError(absl::StrFormat("%s: start_pos %d < 0", where, s.start_pos));
    }
    for (int64_t t = first; t < last; ++t) {
      const int32_t id = batch.token_ids[t];
      if (id < 0 || id >= spec.vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrFormat("%s: token id %d outside the vocabulary [0, %d)", where, id, spec.vocab_size));
      }
    }
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
    total_rows += s.num_tokens;
    if (total_rows > std::numeric_limits<int32_t>::max() ||
        static_cast<int64_t>(plan->block_tables.size()) + needed > std::numeric_limits<int32_t>::max()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: the step exceeds 2^31 rows or block-table entries", where));
    }
    const int32_t table_offset = static_cast<int32_t>(plan->block_tables.size());
    plan->block_tables.insert(plan->block_tables.end(), s.block_table.begin(), s.block_table.begin() + needed);
    for (int j = 0; j < s.num_tokens; ++j) {
      const int32_t pos = s.start_pos + j;
      plan->ids.push_back(batch.token_ids[first + j]);
      plan->positions.push_back(pos);
      plan->kv_rows.push_back(static_cast<int64_t>(s.block_table[pos / block_size]) * block_size + pos % block_size);
      plan->table_offsets.push_back(table_offset);
      plan->row_seq.push_back(static_cast<int32_t>(si));
      plan->row_in_seq.push_back(j);
    }
    if (s.sample || s.want_logits) {
      plan->out_rows.push_back(static_cast<int32_t>(total_rows - 1));
      plan->out_row_seq.push_back(static_cast<int32_t>(si));
    }
    plan->any_routing = plan->any_routing || s.want_routing;
    plan->any_token_routing = plan->any_token_routing || s.want_token_routing;
  }
  plan->rows = static_cast<int>(total_rows);
  return absl::OkStatus();
}

}  // namespace moed::cuda
