// Index math of the tensor-core prefill attention (engine/backend/cuda/flash_prefill.*), shared by its kernel and the
// host: which rows of a step go to query tiles and which to flash-decoding, each tile's key range, and which key
// blocks need the causal/window mask. Host and device; unit-tested on the CPU (tests/unit/backend/
// flash_prefill_plan_test.cc).
#pragma once

#include <cstdint>
#include <vector>

#ifdef __CUDACC__
#define MOED_PREFILL_HD __host__ __device__ __forceinline__
#else
#define MOED_PREFILL_HD inline
#endif

namespace moed::cuda {

constexpr int kPrefillTileRows = 64;  // query rows (tokens) of one CTA: 4 warps × 16 (one m16n8k16 row block each)
constexpr int kPrefillTileKeys = 64;  // keys per step of a CTA's loop
constexpr int kPrefillMinRows = 16;   // a sequence's chunk with fewer rows goes to flash-decoding (split context)

// One CTA's query rows, for every query head: rows [row0, row0 + rows) of the step, all of one sequence, at
// positions pos0 .. pos0 + rows - 1; the sequence's block table starts at block_tables[table_offset]. Uploaded as is
// (four int32, 16 bytes).
struct PrefillTile {
  int32_t row0 = 0;
  int32_t rows = 0;  // 1 .. kPrefillTileRows
  int32_t pos0 = 0;
  int32_t table_offset = 0;
};
static_assert(sizeof(PrefillTile) == 16, "PrefillTile is uploaded as four int32");

// Shapes the tile kernel takes: head_dim 64 or 128, heads a multiple of kv_heads (any GQA group). Otherwise every row
// goes to flash-decoding (or its fallback, the simple kernel), as before.
inline bool FlashPrefillSupported(int num_heads, int num_kv_heads, int head_dim) {
  return (head_dim == 64 || head_dim == 128) && num_kv_heads > 0 && num_heads % num_kv_heads == 0;
}

// Whether the query at position qp sees the key at position kp: causal, and within the last `window` positions
// when window > 0 (the simple kernel's and the CPU's rule: kp in [qp - window + 1, qp]).
MOED_PREFILL_HD bool PrefillVisible(int qp, int kp, int window) {
  return kp <= qp && (window <= 0 || kp > qp - window);
}

// Keys [*begin, *end) a tile (pos0, rows) reads: *end = its last position + 1; *begin = 0, or with a window the first
// position its first row sees.
MOED_PREFILL_HD void PrefillKeyRange(int pos0, int rows, int window, int* begin, int* end) {
  *end = pos0 + rows;
  const int lo = window > 0 ? pos0 - window + 1 : 0;
  *begin = lo > 0 ? lo : 0;
}

// Whether the key block [n0, n0 + kPrefillTileKeys) of a tile needs masking: false only when every key of the block
// is below kv_end and visible to every one of the tile's `rows` query rows.
MOED_PREFILL_HD bool PrefillBlockNeedsMask(int n0, int kv_end, int pos0, int rows, int window) {
  const int last_key = n0 + kPrefillTileKeys - 1;
  if (last_key >= kv_end) return true;  // a partial block: its tail is zero-filled, not a key
  if (last_key > pos0) return true;     // a key after the first row's position
  return window > 0 && n0 <= pos0 + rows - 1 - window;  // the last row no longer sees n0
}

// Splits a step's rows (row_seq, positions, table_offsets: StepPlan's) between the two kernels. Each maximal run of
// rows of one sequence at consecutive positions with at least kPrefillMinRows rows becomes ceil(n / kPrefillTileRows)
// tiles, in order; every other row goes to `decode_rows`, in row order. Tiles are sorted by descending key count
// (PrefillKeyRange with `window`; the longest start first), ties by row0. When no tile results, `decode_rows` is left
// empty: flash-decoding then takes every row, exactly as without this plan (so decode steps are unchanged).
void PlanFlashPrefill(const std::vector<int32_t>& row_seq, const std::vector<int32_t>& positions,
                      const std::vector<int32_t>& table_offsets, int window, std::vector<PrefillTile>* tiles,
                      std::vector<int32_t>* decode_rows);

}  // namespace moed::cuda
