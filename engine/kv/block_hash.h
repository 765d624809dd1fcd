// Prefix-cache block hashes: a deterministic 64-bit hash of one full KV block's token ids, chained through the
// hash of the block before it, the first block chained to a salt naming the model.
#pragma once

#include <cstdint>
#include <string_view>

#include "absl/types/span.h"

namespace moed {

// The chain's root: a hash of the model's identity (its source and shape), so blocks of two models never match.
uint64_t BlockHashSalt(std::string_view model_identity);

// Hash of a block holding `tokens`, whose preceding block hashed to `parent` (the salt for block 0).
// Deterministic across runs and machines. A key, not a proof: a lookup also compares the tokens and the parent.
uint64_t HashBlock(uint64_t parent, absl::Span<const int32_t> tokens);

}  // namespace moed
