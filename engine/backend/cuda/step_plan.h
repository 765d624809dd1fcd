// Host-side plan of one CUDA step: validation of the batch and the per-token index arrays uploaded before launch.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "engine/backend/backend.h"
#include "engine/model/model_spec.h"

namespace moed::cuda {

struct StepPlan {
  int tokens = 0;
  std::vector<int32_t> positions;      // (tokens)
  std::vector<int64_t> kv_rows;        // (tokens) block_id * block_size + slot
  std::vector<int32_t> table_offsets;  // (tokens) offset of the token's sequence table in block_tables
  std::vector<int32_t> block_tables;   // every sequence's block table, back to back
  std::vector<int32_t> token_seq;      // (tokens) index in batch.seqs
  std::vector<int32_t> out_rows;       // tokens whose logits are needed (sample or want_logits), one per such seq
  std::vector<int32_t> out_row_seq;    // (out_rows) index in batch.seqs
  bool any_routing = false;
};

// Validates `batch` against the spec and the KV cache geometry and builds the plan. Bad batches →
// INVALID_ARGUMENT naming the sequence and the field.
absl::Status BuildStepPlan(const StepBatch& batch, const ModelSpec& spec, int num_blocks, int block_size,
                           StepPlan* plan);

}  // namespace moed::cuda
