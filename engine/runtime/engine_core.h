// EngineCore: the single-threaded heart of the daemon — owns scheduler, KV blocks, backend and
// detokenization; one call to Step() runs one iteration of continuous batching.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/backend/backend.h"
#include "engine/moe/expert_profile.h"
#include "engine/moe/routing_trace.h"
#include "engine/runtime/engine_request.h"
#include "engine/runtime/sampling_params.h"
#include "engine/tokenizer/tokenizer.h"

namespace moed {

// What one Step() produced for one request. Text holds only whole UTF-8 characters; text that
// could still become a stop string is held back until it cannot.
struct RequestOutput {
  std::string request_id;
  std::shared_ptr<FrontendSlot> frontend;  // the request's EngineRequest::frontend (null when it had none)
  std::vector<int32_t> new_token_ids;
  std::vector<float> logprobs;                           // one per new token
  std::vector<std::vector<TokenLogprob>> top_logprobs;   // one list per new token (when asked)
  std::string new_text;
  bool finished = false;
  FinishReason finish_reason = FinishReason::kNone;
  absl::Status status;          // non-OK for kDeadline / kError; for kAborted the reason given to AbortRequest
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;  // total so far; an EOS that ended the request is counted (it adds no text)
  int32_t cached_tokens = 0;      // prompt tokens served from the prefix cache at the request's first admission
  std::vector<int32_t> routing;   // (layers * experts) this request's assignments; on the last output
                                  // when include_routing. Cached tokens are never routed: they are not in it.
};

struct EngineConfig {
  int max_running_seqs = 64;     // sequences in the running batch
  int max_batch_tokens = 512;    // tokens per step (prefill chunks + decode tokens)
  int max_queue = 256;           // waiting requests; more → RESOURCE_EXHAUSTED
  int max_model_len = 0;         // context limit; 0 → the model's max_position_embeddings
  int kv_block_size = 16;        // tokens per KV block
  int64_t kv_cache_bytes = 0;    // KV memory; 0 → enough for max_running_seqs full contexts
  // Prefix caching: full KV blocks are kept, indexed by a hash chained over their token ids, and a new request
  // starts from the longest cached run of whole blocks of its prompt. Output is the same with it on or off.
  bool enable_prefix_caching = true;
  std::string model_identity;    // the served model's source (path or synthetic name): salts the block hashes
  // Resolved by EngineCore::Create (ignored on input): KV bytes one token takes over all layers, as the backend
  // stores it (GQA: K and V per kv head; MLA: the latent and the rope key).
  int64_t kv_bytes_per_token = 0;
  // Called on the engine thread for every computed token (prompt and generated; cached prefix tokens are never
  // computed), with its experts and router weights per layer, e.g. RoutingTrace::Observe. The event's views live
  // for the call only.
  std::function<void(const TokenRoutingEvent&)> token_routing_observer;
  // The engine's clock (deadlines, timings); empty = absl::Now. Tests set one they move themselves.
  std::function<absl::Time()> clock;
};

// The recent-load window behind EngineStats::window_routed (and the "last_1000_steps" balance metrics).
inline constexpr int kLoadWindowSteps = 1000;
inline constexpr int kLoadWindowBucketSteps = 50;
// Expert specialization (EngineStats::expert_profile): SpaceSaving counters per (layer, expert), and balance
// points kept (one every kLoadWindowBucketSteps steps: 240 points = the last 12000 steps).
inline constexpr int kProfileSketchCapacity = 32;
inline constexpr int kProfileHistoryPoints = 240;
inline constexpr int kProfileTokensPerStep = 512;

// Counters and gauges the server turns into metrics. Cumulative unless said otherwise.
struct EngineStats {
  int running = 0;
  int waiting = 0;
  int kv_blocks_used = 0;
  int kv_blocks_total = 0;
  int64_t steps = 0;
  int64_t preemptions = 0;
  int64_t prompt_tokens = 0;      // prefilled (recomputation after preemption counted again; cached ones not)
  // Prefix cache, in tokens, over every admission (a preempted request's readmission counts again): tokens
  // looked up, and tokens served from cached blocks (never computed, never routed). 0 when prefix caching is off.
  int64_t prefix_cache_queries = 0;
  int64_t prefix_cache_hits = 0;
  int kv_blocks_cached = 0;       // blocks indexed by the prefix cache (held or free-but-findable)
  int64_t generated_tokens = 0;
  std::vector<int64_t> routed;    // (layers * experts) since start; computed tokens only (cached ones are not routed)
  std::vector<int64_t> dropped;   // (layers * experts) since start
  std::vector<int64_t> last_step_routed;  // (layers * experts) of the most recent step only
  // Assignments over the last kLoadWindowSteps steps that had any (engine/moe/load_balance.h StepWindow:
  // buckets of kLoadWindowBucketSteps), (layers * experts), and how many such steps that covers.
  std::vector<int64_t> window_routed;
  int64_t window_steps = 0;
  // Which tokens each expert receives: re-published every kLoadWindowBucketSteps steps and whenever the engine
  // runs out of work. Counts every computed token (prompt and generated) of steps of at most
  // kProfileTokensPerStep tokens; larger steps (long prefill chunks) contribute every n-th token, n the smallest
  // that keeps them within that bound.
  std::shared_ptr<const ExpertProfileSnapshot> expert_profile;
  double last_step_seconds = 0.0;
  int last_step_tokens = 0;
  // Hot-expert cache: counters since start (resident/capacity/residency as of the last step) and the most
  // recent step's delta (its load_durations feed the load-time histogram). capacity_experts 0 = cache off.
  cache::ExpertCacheStats expert_cache;
  cache::ExpertCacheStats last_step_expert_cache;
};

// Not thread-safe: the server's engine thread is the only caller (server/ owns the locking).
class EngineCore {
 public:
  static absl::StatusOr<std::unique_ptr<EngineCore>> Create(std::unique_ptr<Backend> backend,
                                                            std::shared_ptr<const Tokenizer> tokenizer,
                                                            const EngineConfig& config);
  virtual ~EngineCore() = default;

  // Queues a request. INVALID_ARGUMENT naming the field and limit for lengths over the context;
  // RESOURCE_EXHAUSTED when max_queue requests are waiting; ALREADY_EXISTS for a live request_id.
  virtual absl::Status AddRequest(EngineRequest request) = 0;
  // Marks a request aborted; its KV blocks are freed by the next Step(), which reports it finished
  // with kAborted and status `why` (the first reason given wins). Unknown ids are ignored.
  virtual void AbortRequest(const std::string& request_id, absl::Status why) = 0;
  void AbortRequest(const std::string& request_id) { AbortRequest(request_id, absl::OkStatus()); }
  // AbortRequest(id, why) for every live request.
  virtual void AbortAll(const absl::Status& why) = 0;
  virtual bool HasUnfinished() const = 0;
  // One iteration: expire deadlines, schedule, run the backend, sample, detokenize, check stops.
  // A backend failure fails the requests of that step (kError), not the engine.
  virtual std::vector<RequestOutput> Step() = 0;
  virtual const EngineStats& stats() const = 0;
  virtual const EngineConfig& config() const = 0;  // with defaults resolved
  virtual const ModelSpec& spec() const = 0;
  virtual std::string_view backend_name() const = 0;
};

}  // namespace moed
