// StepPlan construction (the batch checked by ValidateStepBatch, as every backend checks it).
#include "engine/backend/cuda/host/step_plan.h"

#include <limits>
#include <string>

#include "absl/strings/str_format.h"
#include "engine/backend/batch_validation.h"

namespace moed::cuda {

absl::Status BuildStepPlan(const StepBatch& batch, const ModelSpec& spec, int num_blocks, int block_size,
                           StepPlan* plan) {
  *plan = StepPlan();
  if (block_size <= 0 || num_blocks <= 0) {
    return absl::FailedPreconditionError("cuda backend: Step before InitKvCache");
  }
  if (absl::Status st = ValidateStepBatch(batch, spec, num_blocks, block_size); !st.ok()) return st;
  int64_t total_rows = 0;
  for (size_t si = 0; si < batch.seqs.size(); ++si) {
    const SequenceStep& s = batch.seqs[si];
    const std::string where = absl::StrFormat("sequence %d (index %d)", s.seq_id, si);
    const int64_t first = s.token_offset;
    const int64_t needed = (static_cast<int64_t>(s.start_pos) + s.num_tokens + block_size - 1) / block_size;
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
