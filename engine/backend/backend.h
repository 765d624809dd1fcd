// The backend seam: one forward step over a mixed prefill/decode batch against a paged KV cache.
// Implementations: backend/cpu (fp32 reference) and backend/cuda (bf16 weights, cuBLAS).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/cache/expert_cache_stats.h"
#include "engine/model/model.h"
#include "engine/runtime/sampling_params.h"

namespace moed {

// One sequence's share of a step: a prefill chunk (num_tokens ≥ 1) or a decode token (num_tokens == 1).
struct SequenceStep {
  int64_t seq_id = 0;        // caller's id, echoed in the result
  int32_t token_offset = 0;  // index of this sequence's first token in StepBatch::token_ids
  int32_t num_tokens = 0;    // tokens processed this step, ≥ 1
  int32_t start_pos = 0;     // position of the first of them; KV for positions [0, start_pos) is cached
  // KV block ids covering positions [0, start_pos + num_tokens): position p lives in
  // block_table[p / block_size], slot p % block_size. Blocks are owned by the caller (engine/kv).
  std::vector<int32_t> block_table;

  bool sample = false;        // sample a next token after the last token of this chunk
  SamplingParams sampling;
  int32_t sample_index = 0;   // tokens this sequence has generated so far (the RNG counter)
  bool want_logits = false;   // return the full logits row of the last token
  bool want_routing = false;  // count this sequence's expert assignments per layer
  bool want_token_routing = false;  // report each token's experts and router weights (SequenceResult::token_*)
};

struct StepBatch {
  std::vector<int32_t> token_ids;     // all tokens of the step, sequences back to back
  std::vector<SequenceStep> seqs;
};

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;  // log-softmax of the raw logits (temperature 1, no filtering)
};

struct SequenceResult {
  int64_t seq_id = 0;
  int32_t token = -1;                     // sampled token when SequenceStep::sample, else -1
  float logprob = 0.0f;                   // of `token`
  std::vector<TokenLogprob> top_logprobs; // SamplingParams::logprobs best alternatives, best first
  std::vector<float> logits;              // (vocab) when want_logits
  std::vector<int32_t> routing;           // (num_layers * num_experts) when want_routing: this step's
                                          // router assignments of this sequence's tokens, layer-major
  // When want_token_routing: (num_tokens * num_layers * top_k), token-major, then layer, then the router's
  // top-k slots in its own order (the weights it mixes the experts with, after normalisation and scaling).
  // Assignments dropped by capacity are included. Dense layers hold expert -1 and weight 0.
  std::vector<int32_t> token_experts;
  std::vector<float> token_weights;
};

struct StepOutput {
  std::vector<SequenceResult> results;  // one per batch.seqs entry, same order
  std::vector<int64_t> routed;          // (num_layers * num_experts) assignments the router made this step
                                        // (kept + dropped); one per (token, top-k slot)
  std::vector<int64_t> dropped;         // (num_layers * num_experts) assignments dropped by capacity
  // The hot-expert cache's counters for this step (a delta) plus its resident/capacity after the step;
  // capacity_experts == 0 when the cache is off.
  cache::ExpertCacheStats expert_cache;
};

struct BackendOptions {
  // 0 = dropless. > 0: each expert of each layer takes at most
  // ceil(factor * assignments_in_step / num_experts) assignments per step, in token order; the rest
  // are dropped (the expert's contribution is omitted, the token keeps its residual).
  float moe_capacity_factor = 0.0f;
  int num_threads = 0;  // CPU worker threads; 0 = all hardware threads
  // CPU backend kernels: "reference" (fp32 weights, the parity baseline), "fast" (weights in the checkpoint's
  // dtype, SIMD kernels picked at run time; the routed experts' inputs rounded to bf16 as llama.cpp does, on
  // AVX512_BF16 CPUs: logits within ~3e-2 of the reference; MLA layers run the reference) or "fast-fp32" (fast with
  // fp32 activations everywhere: held to the reference within 1e-5). With the expert cache on
  // (expert_cache_slots/bytes > 0) every layer runs the reference.
  // The front ends (moed, moe-run) default to "fast".
  std::string cpu_kernels = "reference";
  // Hot-expert cache: routed experts resident in a bounded slot pool (the device tier), the rest in the host tier.
  int expert_cache_slots = 0;                 // resident routed experts in total; 0 = cache off (all resident);
                                              // more than the model's routed experts is clamped to that count
  int64_t expert_cache_bytes = 0;             // when slots == 0 and > 0: as many slots as this many bytes of the
                                              // backend's expert weights hold (at least one)
  std::string expert_cache_policy = "lru";    // lru | lfu | load-aware
  bool expert_cache_prefetch = true;          // predict layer l+1's experts after layer l and load them early
  // Benchmarks of the cache on synthetic weights (which route almost uniformly): > 0 adds
  // cache::ZipfLogitBias(layers, experts, router_zipf, seed 1) to every router's logits before top-k, so expert
  // popularity follows a Zipf skew of that exponent while routing stays hidden-state dependent. CUDA backend with the
  // cache on only (the CPU backend refuses it); 0 = off. Changes the model's output: never for serving.
  float router_zipf = 0.0f;
  // CUDA backend implementations (ignored by the CPU backend). Each old path stays as the reference.
  std::string cuda_moe = "grouped";      // grouped (device-side, no host sync) | per-expert (cuBLAS per expert)
  bool cuda_graphs = true;               // replay decode steps as CUDA graphs, one per batch size
  std::string cuda_attention = "flash";  // flash (split-context decode) | simple (one CTA per token and head)
  std::string cuda_sampling = "radix";   // radix (radix select, 8 passes) | bisect (bisection on the key, 64 passes)
};

struct KvCacheConfig {
  int num_blocks = 0;
  int block_size = 16;  // tokens per block
};

// Created once at start-up. Not thread-safe: one engine thread calls InitKvCache then Step.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;  // "cpu" or "cuda"
  virtual const ModelSpec& spec() const = 0;
  // Bytes one KV block of `block_size` tokens takes (all layers, K and V).
  virtual int64_t KvBytesPerBlock(int block_size) const = 0;
  // Allocates the paged KV cache. Must be called once before Step.
  virtual absl::Status InitKvCache(const KvCacheConfig& config) = 0;
  // Runs one forward step; fills `out` (resized by the backend). Bad batch descriptions
  // (token ids outside the vocabulary, positions past the block table) → INVALID_ARGUMENT.
  virtual absl::Status Step(const StepBatch& batch, StepOutput* out) = 0;
};

// "cpu" or "cuda" for `kind` ("auto": CUDA when compiled in and a device is usable, else CPU). INVALID_ARGUMENT for an
// unknown kind, UNAVAILABLE for "cuda" in a build without CUDA.
absl::StatusOr<std::string> ResolveBackendKind(std::string_view kind);

// kind: "cpu", "cuda", or "auto" (CUDA when a device is usable, else CPU).
absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(std::string_view kind,
                                                       std::shared_ptr<const Model> model,
                                                       const BackendOptions& options);

}  // namespace moed
