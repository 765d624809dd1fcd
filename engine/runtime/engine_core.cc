// EngineCore: validation, KV sizing, and the step loop — schedule, build the StepBatch, run the
// backend, append sampled tokens, detokenize and finish requests (EOS, length, stop, abort, deadline, error).
#include "engine/runtime/engine_core.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_format.h"
#include "engine/common/status_macros.h"
#include "engine/kv/kv_block_manager.h"
#include "engine/kv/kv_sizing.h"
#include "engine/kv/block_hash.h"
#include "engine/moe/load_balance.h"
#include "engine/runtime/eos.h"
#include "engine/runtime/request.h"
#include "engine/runtime/sampler.h"
#include "engine/scheduler/scheduler.h"

namespace moed {

std::string_view FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "";
    case FinishReason::kLength: return "length";
    case FinishReason::kStop: return "stop";
    case FinishReason::kEos: return "eos";
    case FinishReason::kAborted: return "aborted";
    case FinishReason::kDeadline: return "deadline";
    case FinishReason::kError: return "error";
  }
  return "";
}

namespace {

absl::Status ValidateConfig(const EngineConfig& c, const ModelSpec& spec) {
  auto positive = [](const char* name, int64_t v) {
    return v > 0 ? absl::OkStatus()
                 : absl::InvalidArgumentError(absl::StrFormat("%s must be positive, got %d", name, v));
  };
  MOED_RETURN_IF_ERROR(positive("max_running_seqs", c.max_running_seqs));
  MOED_RETURN_IF_ERROR(positive("max_batch_tokens", c.max_batch_tokens));
  MOED_RETURN_IF_ERROR(positive("max_queue", c.max_queue));
  MOED_RETURN_IF_ERROR(positive("max_model_len", c.max_model_len));
  MOED_RETURN_IF_ERROR(positive("kv_block_size", c.kv_block_size));
  if (c.max_model_len > spec.max_position_embeddings) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_model_len (%d) exceeds the model's max_position_embeddings (%d)", c.max_model_len,
                        spec.max_position_embeddings));
  }
  return absl::OkStatus();
}

// The token class of every id of the vocabulary, from the bytes it decodes to.
std::vector<TokenClass> ClassifyVocabulary(const Tokenizer& tok, int vocab_size) {
  std::vector<TokenClass> out(static_cast<size_t>(std::max(0, vocab_size)));
  for (int32_t id = 0; id < vocab_size; ++id) {
    out[id] = ClassifyToken(tok.TokenBytes(id), tok.IsSpecial(id), tok.IsByteFallback(id));
  }
  return out;
}

class EngineCoreImpl final : public EngineCore {
 public:
  EngineCoreImpl(std::unique_ptr<Backend> backend, std::shared_ptr<const Tokenizer> tokenizer,
                 const EngineConfig& config, int num_blocks)
      : backend_(std::move(backend)),
        tokenizer_(std::move(tokenizer)),
        config_(config),
        kv_(num_blocks, config.kv_block_size,
            {.enabled = config.enable_prefix_caching, .salt = BlockHashSalt(ModelIdentity(config, backend_->spec()))}),
        scheduler_({.max_running_seqs = config.max_running_seqs, .max_batch_tokens = config.max_batch_tokens},
                   &kv_),
        load_window_(static_cast<int64_t>(backend_->spec().num_layers) * backend_->spec().num_experts,
                     kLoadWindowSteps, kLoadWindowBucketSteps),
        eos_ids_(ModelEosIds(backend_->spec(), *tokenizer_)) {
    const ModelSpec& spec = backend_->spec();
    const size_t cells = static_cast<size_t>(spec.num_layers) * spec.num_experts;
    stats_.routed.assign(cells, 0);
    stats_.dropped.assign(cells, 0);
    stats_.last_step_routed.assign(cells, 0);
    stats_.window_routed.assign(cells, 0);
    profiler_ = std::make_unique<ExpertProfiler>(spec.num_layers, spec.num_experts, kProfileSketchCapacity,
                                                 ClassifyVocabulary(*tokenizer_, spec.vocab_size),
                                                 kProfileHistoryPoints);
    stats_.expert_profile = profiler_->Snapshot(kProfileSketchCapacity, 0);
    stats_.kv_blocks_total = kv_.num_total();
  }
  ~EngineCoreImpl() override {
    for (auto& [id, r] : requests_) scheduler_.Remove(r.get());
  }

  absl::Status AddRequest(EngineRequest request) override;
  void AbortRequest(const std::string& request_id, absl::Status why) override;
  void AbortAll(const absl::Status& why) override;
  bool HasUnfinished() const override { return !requests_.empty(); }
  std::vector<RequestOutput> Step() override;
  const EngineStats& stats() const override { return stats_; }
  const EngineConfig& config() const override { return config_; }
  const ModelSpec& spec() const override { return backend_->spec(); }
  std::string_view backend_name() const override { return backend_->name(); }

 private:
  absl::Time Now() const { return config_.clock ? config_.clock() : absl::Now(); }

  // Collects this step's outputs, one per request touched, in first-touch order.
  class Outputs {
   public:
    RequestOutput& For(const Request& r) {
      auto [it, inserted] = index_.try_emplace(&r, list_.size());
      if (inserted) {
        list_.emplace_back();
        list_.back().request_id = r.request_id();
        list_.back().frontend = r.params.frontend;
        list_.back().prompt_tokens = r.prompt_len;
        list_.back().cached_tokens = std::max(0, r.cached_tokens);
      }
      return list_[it->second];
    }
    std::vector<RequestOutput> Take() { return std::move(list_); }

   private:
    absl::flat_hash_map<const Request*, size_t> index_;
    std::vector<RequestOutput> list_;
  };

  // Salt of the prefix cache's hash chains: the model's source and shape.
  static std::string ModelIdentity(const EngineConfig& config, const ModelSpec& spec) {
    return absl::StrFormat("%s|%s|L%d|H%d|V%d|E%d|K%d", config.model_identity, FamilyName(spec.family),
                           spec.num_layers, spec.hidden_size, spec.vocab_size, spec.num_experts, spec.top_k);
  }
  static Request& Of(SchedSequence* seq) { return *static_cast<Request*>(seq); }  // the scheduler holds Requests

  absl::Status ValidateRequest(const EngineRequest& r) const;
  // Expires deadlines and applies aborts, before scheduling.
  void FinishAbortedAndExpired(absl::Time now, Outputs& outputs);
  // Ends a request: final text, output fields, frees its blocks and forgets it.
  void Finish(Request& r, FinishReason reason, absl::Status status, Outputs& outputs);
  StepBatch BuildBatch(const SchedulePlan& plan) const;
  // Appends a sampled token and finishes the request on EOS, stop string or max_tokens.
  void AcceptToken(Request& r, const SequenceResult& result, absl::Time now, Outputs& outputs);
  void AccumulateStepCounters(const StepOutput& out);
  // Feeds chunk c's per-token routing to the profiler (tokens whose step index is a multiple of profile_stride;
  // first_step_token: the chunk's first token's index in the step) and to the token routing observer (all).
  void ObserveTokenRouting(const Request& r, const ScheduledChunk& c, const SequenceResult& result,
                           int profile_stride, int first_step_token);
  void UpdateGauges(const SchedulePlan& plan, absl::Time start);

  std::unique_ptr<Backend> backend_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  EngineConfig config_;
  KvBlockManager kv_;
  Scheduler scheduler_;
  const std::vector<int32_t> eos_ids_;
  absl::flat_hash_map<std::string, std::unique_ptr<Request>> requests_;  // every live request, by request_id
  int64_t next_seq_id_ = 1;
  StepWindow load_window_;  // recent routed assignments; copied into stats_.window_routed each step
  std::unique_ptr<ExpertProfiler> profiler_;
  EngineStats stats_;
};

absl::Status EngineCoreImpl::ValidateRequest(const EngineRequest& r) const {
  if (r.request_id.empty()) return absl::InvalidArgumentError("request_id is empty");
  if (r.prompt_ids.empty()) {
    return absl::InvalidArgumentError(absl::StrFormat("request %s: prompt is empty", r.request_id));
  }
  const int vocab = spec().vocab_size;
  for (size_t i = 0; i < r.prompt_ids.size(); ++i) {
    if (r.prompt_ids[i] < 0 || r.prompt_ids[i] >= vocab) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "request %s: prompt_ids[%d] = %d is outside the vocabulary of %d tokens", r.request_id, i,
          r.prompt_ids[i], vocab));
    }
  }
  if (r.max_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrFormat("request %s: max_tokens (%d) must be at least 1", r.request_id, r.max_tokens));
  }
  const int64_t total = static_cast<int64_t>(r.prompt_ids.size()) + r.max_tokens;
  if (total > config_.max_model_len) {
    return absl::InvalidArgumentError(
        absl::StrFormat("request %s: prompt (%d tokens) + max_tokens (%d) exceeds the context of %d tokens",
                        r.request_id, r.prompt_ids.size(), r.max_tokens, config_.max_model_len));
  }
  absl::Status sampling = ValidateSamplingParams(r.sampling, vocab);
  if (!sampling.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("request %s: %s", r.request_id, sampling.message()));
  }
  return absl::OkStatus();
}

absl::Status EngineCoreImpl::AddRequest(EngineRequest request) {
  MOED_RETURN_IF_ERROR(ValidateRequest(request));
  if (requests_.contains(request.request_id)) {
    return absl::AlreadyExistsError(absl::StrFormat("request %s is already live", request.request_id));
  }
  if (scheduler_.num_waiting() >= config_.max_queue) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "request %s: the waiting queue is full (%d requests, max_queue)", request.request_id, config_.max_queue));
  }
  auto r = std::make_unique<Request>();
  r->id = next_seq_id_++;
  r->priority = request.priority;
  r->arrival_time = request.arrival_time;
  r->tokens = std::move(request.prompt_ids);
  r->prompt_len = r->num_tokens();
  r->output = std::make_unique<OutputProcessor>(*tokenizer_, request.stop);
  if (request.include_routing) r->routing.assign(stats_.routed.size(), 0);
  r->params = std::move(request);
  MOED_RETURN_IF_ERROR(scheduler_.Add(r.get()));
  Request* raw = r.get();
  requests_[raw->request_id()] = std::move(r);
  stats_.waiting = scheduler_.num_waiting();
  return absl::OkStatus();
}

void EngineCoreImpl::AbortRequest(const std::string& request_id, absl::Status why) {
  auto it = requests_.find(request_id);
  if (it == requests_.end()) return;
  Request& r = *it->second;
  if (!r.abort_requested) r.abort_status = std::move(why);
  r.abort_requested = true;
}

void EngineCoreImpl::AbortAll(const absl::Status& why) {
  for (auto& [id, r] : requests_) AbortRequest(id, why);
}

void EngineCoreImpl::Finish(Request& r, FinishReason reason, absl::Status status, Outputs& outputs) {
  RequestOutput& out = outputs.For(r);
  if (reason == FinishReason::kLength || reason == FinishReason::kEos) out.new_text += r.output->Finish();
  out.finished = true;
  out.finish_reason = reason;
  out.status = std::move(status);
  out.completion_tokens = r.generated;
  if (r.params.include_routing) out.routing = std::move(r.routing);
  scheduler_.Remove(&r);
  requests_.erase(r.request_id());  // destroys r
}

void EngineCoreImpl::FinishAbortedAndExpired(absl::Time now, Outputs& outputs) {
  std::vector<Request*> ended;
  for (auto& [id, r] : requests_) {
    if (r->abort_requested || r->params.deadline <= now) ended.push_back(r.get());
  }
  std::sort(ended.begin(), ended.end(), [](const Request* a, const Request* b) { return a->id < b->id; });
  for (Request* r : ended) {
    if (r->abort_requested) {
      Finish(*r, FinishReason::kAborted, r->abort_status, outputs);
      continue;
    }
    absl::Status status = absl::DeadlineExceededError(absl::StrFormat(
        "request %s passed its deadline while %s", r->request_id(), r->running ? "running" : "queued"));
    Finish(*r, FinishReason::kDeadline, std::move(status), outputs);
  }
}

StepBatch EngineCoreImpl::BuildBatch(const SchedulePlan& plan) const {
  StepBatch batch;
  batch.token_ids.reserve(plan.num_tokens);
  batch.seqs.reserve(plan.chunks.size());
  for (const ScheduledChunk& c : plan.chunks) {
    const Request& r = Of(c.seq);
    SequenceStep s;
    s.seq_id = r.id;
    s.token_offset = static_cast<int32_t>(batch.token_ids.size());
    s.num_tokens = c.num_tokens;
    s.start_pos = c.start_pos;
    s.block_table = r.kv.blocks;
    s.sample = c.reaches_end;
    s.sampling = r.params.sampling;
    s.sample_index = r.generated;
    s.want_routing = r.params.include_routing;
    s.want_token_routing = true;  // every computed token feeds the profiler and the routing trace
    batch.token_ids.insert(batch.token_ids.end(), r.tokens.begin() + c.start_pos,
                           r.tokens.begin() + c.start_pos + c.num_tokens);
    batch.seqs.push_back(std::move(s));
  }
  return batch;
}

void EngineCoreImpl::AcceptToken(Request& r, const SequenceResult& result, absl::Time now, Outputs& outputs) {
  const int32_t token = result.token;
  r.tokens.push_back(token);
  ++r.generated;
  ++stats_.generated_tokens;
  if (r.generated == 1) r.first_token = now;

  RequestOutput& out = outputs.For(r);
  out.new_token_ids.push_back(token);
  out.logprobs.push_back(result.logprob);
  if (r.params.sampling.logprobs > 0) out.top_logprobs.push_back(result.top_logprobs);
  out.completion_tokens = r.generated;

  if (EndsAtEos(eos_ids_, token, r.params.ignore_eos)) {
    Finish(r, FinishReason::kEos, absl::OkStatus(), outputs);
    return;
  }
  OutputProcessor::Delta delta = r.output->Push(token);
  out.new_text += delta.text;
  if (delta.stopped) {
    Finish(r, FinishReason::kStop, absl::OkStatus(), outputs);
    return;
  }
  if (r.generated >= r.params.max_tokens) Finish(r, FinishReason::kLength, absl::OkStatus(), outputs);
}

void EngineCoreImpl::ObserveTokenRouting(const Request& r, const ScheduledChunk& c, const SequenceResult& result,
                                         int profile_stride, int first_step_token) {
  const ModelSpec& spec = backend_->spec();
  const size_t per_token = static_cast<size_t>(spec.num_layers) * std::max(0, spec.top_k);
  if (per_token == 0 || result.token_experts.size() != per_token * c.num_tokens ||
      result.token_weights.size() != result.token_experts.size()) {
    return;
  }
  for (int t = 0; t < c.num_tokens; ++t) {
    const int32_t pos = c.start_pos + t;
    const absl::Span<const int32_t> experts(result.token_experts.data() + t * per_token, per_token);
    if ((first_step_token + t) % profile_stride == 0) profiler_->AddToken(r.tokens[pos], experts, spec.top_k);
    if (config_.token_routing_observer) {
      config_.token_routing_observer(
          {r.request_id(), pos, r.tokens[pos], spec.top_k, experts,
           absl::Span<const float>(result.token_weights.data() + t * per_token, per_token)});
    }
  }
}

void EngineCoreImpl::AccumulateStepCounters(const StepOutput& out) {
  const size_t cells = stats_.routed.size();
  std::fill(stats_.last_step_routed.begin(), stats_.last_step_routed.end(), 0);
  for (size_t i = 0; i < cells && i < out.routed.size(); ++i) {
    stats_.routed[i] += out.routed[i];
    stats_.last_step_routed[i] = out.routed[i];
  }
  for (size_t i = 0; i < cells && i < out.dropped.size(); ++i) stats_.dropped[i] += out.dropped[i];
  load_window_.Add(stats_.last_step_routed);
  stats_.window_routed = load_window_.sums();
  stats_.window_steps = load_window_.steps();
  stats_.expert_cache.Add(out.expert_cache);
  stats_.last_step_expert_cache = out.expert_cache;
}

void EngineCoreImpl::UpdateGauges(const SchedulePlan& plan, absl::Time start) {
  stats_.running = scheduler_.num_running();
  stats_.waiting = scheduler_.num_waiting();
  stats_.kv_blocks_used = kv_.num_used();
  stats_.kv_blocks_total = kv_.num_total();
  stats_.kv_blocks_cached = kv_.num_cached();
  ++stats_.steps;
  stats_.last_step_tokens = plan.num_tokens;
  stats_.last_step_seconds = absl::ToDoubleSeconds(Now() - start);
}

std::vector<RequestOutput> EngineCoreImpl::Step() {
  const absl::Time start = Now();
  Outputs outputs;
  FinishAbortedAndExpired(start, outputs);

  const SchedulePlan plan = scheduler_.Schedule();
  stats_.preemptions += static_cast<int64_t>(plan.preempted.size());
  stats_.prefix_cache_queries += plan.prefix_queried_tokens;
  stats_.prefix_cache_hits += plan.prefix_hit_tokens;
  for (SchedSequence* seq : plan.preempted) {
    Request& r = Of(seq);
    std::fill(r.routing.begin(), r.routing.end(), 0);  // recomputation routes the computed positions again
  }
  for (const ScheduledChunk& c : plan.chunks) {
    Request& r = Of(c.seq);
    if (r.cached_tokens < 0) {  // first admission
      r.cached_tokens = r.num_cached;
      r.first_scheduled = start;
    }
  }
  if (plan.chunks.empty()) {
    std::fill(stats_.last_step_routed.begin(), stats_.last_step_routed.end(), 0);
    UpdateGauges(plan, start);
    return outputs.Take();
  }

  const StepBatch batch = BuildBatch(plan);
  StepOutput out;
  absl::Status status = backend_->Step(batch, &out);
  if (status.ok() && out.results.size() != batch.seqs.size()) {
    status = absl::InternalError(absl::StrFormat("backend returned %d results for %d sequences",
                                                 out.results.size(), batch.seqs.size()));
  }
  if (!status.ok()) {
    absl::Status failed(status.code(), absl::StrFormat("%s backend step failed: %s", backend_->name(),
                                                       status.message()));
    for (const ScheduledChunk& c : plan.chunks) Finish(Of(c.seq), FinishReason::kError, failed, outputs);
    std::fill(stats_.last_step_routed.begin(), stats_.last_step_routed.end(), 0);
    UpdateGauges(plan, start);
    return outputs.Take();
  }

  AccumulateStepCounters(out);
  // The step wrote the KV of every chunk: its full blocks join the prefix cache before any request can finish.
  for (const ScheduledChunk& c : plan.chunks) kv_.Commit(c.seq->kv, c.seq->tokens, c.seq->num_computed);
  const absl::Time now = Now();
  // A step of more than kProfileTokensPerStep computed tokens (long prefills) feeds every stride-th of them to the
  // profiler, so its cost per step stays bounded.
  const int profile_stride = std::max(1, (plan.num_tokens + kProfileTokensPerStep - 1) / kProfileTokensPerStep);
  int step_token = 0;
  for (size_t i = 0; i < plan.chunks.size(); ++i) {
    const ScheduledChunk& c = plan.chunks[i];
    const SequenceResult& result = out.results[i];
    Request& r = Of(c.seq);
    stats_.prompt_tokens += c.num_prefill_tokens;
    if (r.params.include_routing) {
      for (size_t j = 0; j < r.routing.size() && j < result.routing.size(); ++j) r.routing[j] += result.routing[j];
    }
    ObserveTokenRouting(r, c, result, profile_stride, step_token);
    step_token += c.num_tokens;
    if (c.reaches_end) AcceptToken(r, result, now, outputs);  // may finish and erase r
  }
  UpdateGauges(plan, start);
  if (stats_.steps % kLoadWindowBucketSteps == 0) profiler_->AddBalancePoint(stats_.steps, stats_.window_routed);
  if (stats_.steps % kLoadWindowBucketSteps == 0 || requests_.empty()) {
    stats_.expert_profile = profiler_->Snapshot(kProfileSketchCapacity, stats_.steps);
  }
  return outputs.Take();
}

}  // namespace

absl::StatusOr<std::unique_ptr<EngineCore>> EngineCore::Create(std::unique_ptr<Backend> backend,
                                                              std::shared_ptr<const Tokenizer> tokenizer,
                                                              const EngineConfig& config) {
  if (backend == nullptr) return absl::InvalidArgumentError("EngineCore::Create: backend is null");
  if (tokenizer == nullptr) return absl::InvalidArgumentError("EngineCore::Create: tokenizer is null");
  const ModelSpec& spec = backend->spec();
  EngineConfig resolved = config;
  if (resolved.max_model_len == 0) resolved.max_model_len = spec.max_position_embeddings;
  MOED_RETURN_IF_ERROR(ValidateConfig(resolved, spec));

  const int64_t bytes_per_block = backend->KvBytesPerBlock(resolved.kv_block_size);
  MOED_ASSIGN_OR_RETURN(int num_blocks, ComputeNumKvBlocks({.kv_cache_bytes = resolved.kv_cache_bytes,
                                                            .bytes_per_block = bytes_per_block,
                                                            .block_size = resolved.kv_block_size,
                                                            .max_model_len = resolved.max_model_len,
                                                            .max_running_seqs = resolved.max_running_seqs}));
  resolved.kv_cache_bytes = bytes_per_block * num_blocks;
  resolved.kv_bytes_per_token = bytes_per_block / resolved.kv_block_size;
  MOED_RETURN_IF_ERROR(
      backend->InitKvCache({.num_blocks = num_blocks, .block_size = resolved.kv_block_size}));
  return std::unique_ptr<EngineCore>(
      new EngineCoreImpl(std::move(backend), std::move(tokenizer), resolved, num_blocks));
}

}  // namespace moed
