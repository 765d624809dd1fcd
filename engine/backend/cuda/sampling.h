// Sampling on the device: greedy, or temperature + top-k + top-p with the counter-based RNG of
// engine/runtime/sampler.h (a draw depends only on (seed, sample_index)); plus logprobs of the chosen token and
// the best alternatives. Only ids and logprobs go back to the host.
#pragma once

#include <cstdint>

#include <cuda_runtime.h>

namespace moed::cuda {

struct DeviceSamplingParams {
  float temperature = 0.0f;  // 0 → argmax (lowest id on ties)
  float top_p = 1.0f;
  int32_t top_k = 0;         // 0 → no limit
  int32_t logprobs = 0;      // best alternatives to return, ≤ the launch's max_logprobs
  uint64_t seed = 0;
  int32_t sample_index = 0;
  int32_t pad = 0;
};

// How the sampler finds top-k, the top-p cut and the draw (BackendOptions::cuda_sampling): radix select (8 passes
// over the vocabulary, fixed-point weights, host/radix_select.h) or bisection on the key (64 passes per select, the
// reference). Greedy rows take the argmax either way.
enum class SampleSelect { kRadix, kBisect };

// logits (rows, vocab) fp32; params (rows). Outputs: tokens (rows), logprobs (rows) = log_softmax(logits)[token];
// top_ids / top_logprobs (rows, max_logprobs): the params[r].logprobs best tokens of row r in no particular order
// (the host sorts them best-first); unused entries are left untouched. One block per row.
cudaError_t LaunchSample(const float* logits, int rows, int vocab, const DeviceSamplingParams* params,
                         int max_logprobs, int32_t* tokens, float* logprobs, int32_t* top_ids, float* top_logprobs,
                         cudaStream_t stream, SampleSelect select = SampleSelect::kRadix);

}  // namespace moed::cuda
