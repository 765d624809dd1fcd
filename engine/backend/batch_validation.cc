// The checks of a StepBatch shared by the CPU and CUDA backends.
#include "engine/backend/batch_validation.h"

#include <cstdint>

#include "absl/strings/str_format.h"
#include "engine/runtime/sampler.h"

namespace moed {

absl::Status ValidateStepBatch(const StepBatch& batch, const ModelSpec& spec, int num_blocks, int block_size) {
  if (num_blocks <= 0 || block_size <= 0) return absl::FailedPreconditionError("Step: InitKvCache was not called");
  const int64_t num_ids = static_cast<int64_t>(batch.token_ids.size());
  for (size_t i = 0; i < batch.seqs.size(); ++i) {
    const SequenceStep& q = batch.seqs[i];
    if (q.num_tokens < 1) {
      return absl::InvalidArgumentError(absl::StrFormat("seq %d (id %d): num_tokens must be ≥ 1, got %d", i,
                                                        q.seq_id, q.num_tokens));
    }
    const int64_t first = q.token_offset;
    const int64_t last = first + q.num_tokens;
    if (first < 0 || last > num_ids) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "seq %d (id %d): tokens [%d, %d) outside the batch's %d token ids", i, q.seq_id, first, last, num_ids));
    }
    if (q.start_pos < 0) {
      return absl::InvalidArgumentError(absl::StrFormat("seq %d (id %d): start_pos %d < 0", i, q.seq_id,
                                                        q.start_pos));
    }
    for (int64_t t = first; t < last; ++t) {
      const int32_t id = batch.token_ids[t];
      if (id < 0 || id >= spec.vocab_size) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "seq %d (id %d): token id %d outside the vocabulary [0, %d)", i, q.seq_id, id, spec.vocab_size));
      }
    }
    const int64_t end_pos = static_cast<int64_t>(q.start_pos) + q.num_tokens;
    const int64_t blocks_needed = (end_pos + block_size - 1) / block_size;
    if (static_cast<int64_t>(q.block_table.size()) < blocks_needed) {
      return absl::InvalidArgumentError(absl::StrFormat("seq %d (id %d): block table has %d blocks, positions [0, %d) "
                                                        "need %d", i, q.seq_id, q.block_table.size(), end_pos,
                                                        blocks_needed));
    }
    for (int64_t b = 0; b < blocks_needed; ++b) {
      if (q.block_table[b] < 0 || q.block_table[b] >= num_blocks) {
        return absl::InvalidArgumentError(absl::StrFormat("seq %d (id %d): block_table[%d] = %d outside [0, %d)", i,
                                                          q.seq_id, b, q.block_table[b], num_blocks));
      }
    }
    if (q.sample) {
      const absl::Status st = ValidateSamplingParams(q.sampling, spec.vocab_size);
      if (!st.ok()) return absl::InvalidArgumentError(absl::StrFormat("seq %d (id %d): %s", i, q.seq_id, st.message()));
    }
  }
  return absl::OkStatus();
}

}  // namespace moed
