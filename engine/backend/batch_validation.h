// ValidateStepBatch: the one definition of what makes a StepBatch computable, checked by every backend's Step.
#pragma once

#include "absl/status/status.h"
#include "engine/backend/backend.h"
#include "engine/model/model_spec.h"

namespace moed {

// Checks `batch` against the model and the KV cache geometry (num_blocks blocks of block_size tokens), sequence
// by sequence: num_tokens ≥ 1; its tokens [token_offset, token_offset + num_tokens) inside batch.token_ids and
// each id in [0, vocab_size); start_pos ≥ 0; the block table covers positions [0, start_pos + num_tokens) with
// block ids in [0, num_blocks); sampling parameters valid when it samples. Token ids that belong to no sequence
// are not checked (they are not computed).
// FAILED_PRECONDITION when the cache geometry is empty (Step before InitKvCache); INVALID_ARGUMENT naming the
// sequence (index and seq_id) and the field otherwise.
absl::Status ValidateStepBatch(const StepBatch& batch, const ModelSpec& spec, int num_blocks, int block_size);

}  // namespace moed
