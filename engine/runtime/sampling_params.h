// Per-request sampling parameters, shared by the engine, the backends and the server.
#pragma once

#include <cstdint>

namespace moed {

struct SamplingParams {
  float temperature = 1.0f;  // 0 → greedy (argmax)
  float top_p = 1.0f;        // nucleus mass in (0, 1]
  int top_k = 0;             // 0 → no limit
  uint64_t seed = 0;         // the random stream is a function of (seed, index of the generated token) only,
                             // so the same seed gives the same output whatever else is in the batch
  int logprobs = 0;          // number of top alternatives to return with each token (0 = none)
};

}  // namespace moed
