// Host-side plan of one CUDA step (plain C++, no CUDA headers, unit-tested on the CPU): the batch checked
// by ValidateStepBatch (engine/backend/batch_validation.h), and the per-row index arrays uploaded before the launches.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "engine/backend/backend.h"
#include "engine/backend/cuda/host/flash_prefill_plan.h"
#include "engine/model/model_spec.h"

namespace moed::cuda {

// A row is one computed token. Rows are every sequence's tokens, sequences in batch.seqs order, tokens in order —
// the CPU backend's row order, so router capacity ranks assignments (row-major, then top-k slot) as the CPU does.
// Token ids of batch.token_ids that belong to no sequence are neither validated nor computed (as on the CPU); a
// token shared by two sequences is computed once for each.
struct StepPlan {
  int rows = 0;
  std::vector<int32_t> ids;            // (rows) token id
  std::vector<int32_t> positions;      // (rows)
  std::vector<int64_t> kv_rows;        // (rows) KV cache row: block_id * block_size + slot
  std::vector<int32_t> table_offsets;  // (rows) offset of the row's sequence table in block_tables
  std::vector<int32_t> block_tables;   // every sequence's block table (the blocks it needs), back to back
  std::vector<int32_t> row_seq;        // (rows) index in batch.seqs
  std::vector<int32_t> row_in_seq;     // (rows) the row's token index within its sequence's chunk
  std::vector<int32_t> out_rows;       // rows whose logits are needed (last row of a sequence that samples or
                                       // wants logits), in batch.seqs order
  std::vector<int32_t> out_row_seq;    // (out_rows) index in batch.seqs
  // Flash attention only (PlanFlashPrefill, filled by the backend after BuildStepPlan): the prefill query tiles, and
  // the rows left to flash-decoding (empty with no tile: flash-decoding takes every row).
  std::vector<PrefillTile> prefill_tiles;
  std::vector<int32_t> decode_rows;
  bool any_routing = false;        // some sequence wants_routing (per-sequence expert counts)
  bool any_token_routing = false;  // some sequence want_token_routing (per-token experts and weights)
};

// Validates `batch` with ValidateStepBatch (the checks every backend makes) and builds the plan.
// Bad batches → INVALID_ARGUMENT naming the sequence and the field.
absl::Status BuildStepPlan(const StepBatch& batch, const ModelSpec& spec, int num_blocks, int block_size,
                           StepPlan* plan);

}  // namespace moed::cuda
