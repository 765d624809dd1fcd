// The one end-of-sequence rule, shared by the engine core and Generate: a sampled EOS id (unless ignore_eos) ends
// generation; it is returned as the last output token (counted, with its logprob) and adds no text.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "engine/model/model_spec.h"
#include "engine/tokenizer/tokenizer.h"

namespace moed {

// The model's EOS ids: the tokenizer's and the config's (eos_token_id), without duplicates.
inline std::vector<int32_t> ModelEosIds(const ModelSpec& spec, const Tokenizer& tokenizer) {
  std::vector<int32_t> ids = tokenizer.eos_ids();
  for (int id : spec.eos_token_ids) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  }
  return ids;
}

// True when sampling `token` ends generation under the rule above.
inline bool EndsAtEos(const std::vector<int32_t>& eos_ids, int32_t token, bool ignore_eos) {
  return !ignore_eos && std::find(eos_ids.begin(), eos_ids.end(), token) != eos_ids.end();
}

}  // namespace moed
