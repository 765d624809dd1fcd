// All Prometheus families of moed: names, help, buckets and start-up label sets live here only.
#include "server/metrics.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "moed/version.h"

namespace moed::server {
namespace {

using prometheus::BuildCounter;
using prometheus::BuildGauge;
using prometheus::BuildHistogram;
using Buckets = prometheus::Histogram::BucketBoundaries;

constexpr std::array<std::string_view, static_cast<size_t>(RequestResult::kCount)> kResultNames = {
    "ok", "invalid_argument", "resource_exhausted", "deadline_exceeded", "cancelled", "unavailable",
    "unauthenticated", "permission_denied", "not_found", "internal"};
constexpr std::array<std::string_view, static_cast<size_t>(RejectReason::kCount)> kRejectNames = {
    "queue_full", "invalid_argument", "shutting_down", "unparseable", "unknown_model"};
constexpr std::array<std::string_view, 3> kPhaseNames = {"prefill", "decode", "mixed"};

const Buckets kLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
const Buckets kItlBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
const Buckets kDurationBuckets = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
const Buckets kBatchTokenBuckets = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192};
const Buckets kStepBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
const Buckets kLoadRatioBuckets = {0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 4, 8};

int64_t At(const std::vector<int64_t>& v, size_t i) { return i < v.size() ? v[i] : 0; }

}  // namespace

std::string_view RequestResultName(RequestResult r) { return kResultNames.at(static_cast<size_t>(r)); }
std::string_view RejectReasonName(RejectReason r) { return kRejectNames.at(static_cast<size_t>(r)); }

RequestResult RequestResultFromStatus(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return RequestResult::kOk;
    case absl::StatusCode::kInvalidArgument: return RequestResult::kInvalidArgument;
    case absl::StatusCode::kResourceExhausted: return RequestResult::kResourceExhausted;
    case absl::StatusCode::kDeadlineExceeded: return RequestResult::kDeadlineExceeded;
    case absl::StatusCode::kCancelled: return RequestResult::kCancelled;
    case absl::StatusCode::kUnavailable: return RequestResult::kUnavailable;
    case absl::StatusCode::kUnauthenticated: return RequestResult::kUnauthenticated;
    case absl::StatusCode::kPermissionDenied: return RequestResult::kPermissionDenied;
    case absl::StatusCode::kNotFound: return RequestResult::kNotFound;
    default: return RequestResult::kInternal;
  }
}

ServerMetrics::ServerMetrics(const MetricsModelInfo& info, PerExpertMetrics mode)
    : registry_(std::make_shared<prometheus::Registry>()),
      num_layers_(info.num_layers),
      num_experts_(info.num_experts),
      window_(info.num_layers, info.num_experts, kImbalanceWindowSteps) {
  prometheus::Registry& reg = *registry_;
  const int64_t cells = static_cast<int64_t>(num_layers_) * num_experts_;
  per_expert_ = mode == PerExpertMetrics::kOn || (mode == PerExpertMetrics::kAuto && cells <= kPerExpertSeriesBudget);

  BuildGauge().Name("moed_info").Help("The model and backend this daemon serves (always 1).")
      .Register(reg).Add({{"model", info.model}, {"model_name", info.model}, {"family", info.family},
                          {"backend", info.backend}}).Set(1);
  BuildGauge().Name("moed_build_info").Help("The version and git revision this daemon was built from (always 1).")
      .Register(reg).Add({{"version", MOED_VERSION}, {"revision", MOED_REVISION}}).Set(1);
  request_lengths_ = std::make_unique<RequestMetrics>(reg, info.model);
  process_ = std::make_unique<ProcessMetrics>(reg, info.model);

  auto& requests = BuildCounter().Name("moed_requests_total")
      .Help("Generate requests (each choice of an HTTP request) by front end and how they ended (gRPC status, lower "
            "snake case).").Register(reg);
  for (size_t f = 0; f < requests_.size(); ++f) {
    for (size_t i = 0; i < requests_[f].size(); ++i) {
      requests_[f][i] = &requests.Add({{"front", std::string(FrontName(static_cast<Front>(f)))},
                                       {"status", std::string(kResultNames[i])}});
    }
  }
  auto& rejected = BuildCounter().Name("moed_requests_rejected_total")
      .Help("Generate requests refused before reaching the engine, by front end and reason.").Register(reg);
  for (size_t f = 0; f < rejected_.size(); ++f) {
    for (size_t i = 0; i < rejected_[f].size(); ++i) {
      rejected_[f][i] = &rejected.Add({{"front", std::string(FrontName(static_cast<Front>(f)))},
                                       {"reason", std::string(kRejectNames[i])}});
    }
  }

  streams_open_ = &BuildGauge().Name("moed_streams_open")
      .Help("Generate streams open: accepted and not yet ended (still generating, or waiting for the client).")
      .Register(reg).Add({});
  running_ = &BuildGauge().Name("moed_requests_running").Help("Sequences in the running batch.").Register(reg).Add({});
  waiting_ = &BuildGauge().Name("moed_requests_waiting")
      .Help("Requests queued for the running batch (engine queue plus not yet handed over).").Register(reg).Add({});
  ttft_ = &BuildHistogram().Name("moed_time_to_first_token_seconds")
      .Help("From the Generate call's arrival to its first token.").Register(reg).Add({}, kLatencyBuckets);
  itl_ = &BuildHistogram().Name("moed_inter_token_latency_seconds")
      .Help("Time between successive tokens of a stream (per token).").Register(reg).Add({}, kItlBuckets);
  duration_ = &BuildHistogram().Name("moed_request_duration_seconds")
      .Help("From the Generate call's arrival to its last output.").Register(reg).Add({}, kDurationBuckets);
  queue_time_ = &BuildHistogram().Name("moed_queue_time_seconds")
      .Help("From arrival to the start of the engine step that produced the request's first output.")
      .Register(reg).Add({}, kLatencyBuckets);
  batch_tokens_ = &BuildHistogram().Name("moed_batch_tokens")
      .Help("Tokens processed per engine step (prefill chunks plus decode tokens).")
      .Register(reg).Add({}, kBatchTokenBuckets);
  prompt_tokens_ = &BuildCounter().Name("moed_prompt_tokens_total")
      .Help("Prompt tokens prefilled (recomputation after preemption counted again; prefix-cache hits not).")
      .Register(reg).Add({});
  generated_tokens_ = &BuildCounter().Name("moed_generated_tokens_total").Help("Tokens generated.")
      .Register(reg).Add({});
  preemptions_ = &BuildCounter().Name("moed_preemptions_total")
      .Help("Sequences preempted (KV blocks freed, recomputed later).").Register(reg).Add({});
  prefix_queries_ = &BuildCounter().Name("moed_prefix_cache_queries_total")
      .Help("Tokens of admitted requests looked up in the prefix cache (readmission after preemption counted again).")
      .Register(reg).Add({});
  prefix_hits_ = &BuildCounter().Name("moed_prefix_cache_hits_total")
      .Help("Tokens served from the prefix cache (whole KV blocks): never computed, never routed.")
      .Register(reg).Add({});
  kv_usage_ = &BuildGauge().Name("moed_kv_cache_usage_ratio").Help("Used / total KV-cache blocks.")
      .Register(reg).Add({});
  kv_used_ = &BuildGauge().Name("moed_kv_cache_blocks_used").Help("KV-cache blocks in use.").Register(reg).Add({});
  // Not "_blocks_total": promtool rejects a _total suffix on a gauge.
  kv_total_ = &BuildGauge().Name("moed_kv_cache_blocks_capacity").Help("KV-cache blocks allocated at start-up.")
      .Register(reg).Add({});
  steps_total_ = &BuildCounter().Name("moed_engine_steps_total").Help("Engine steps run since start.")
      .Register(reg).Add({});
  auto& step_seconds = BuildHistogram().Name("moed_engine_step_seconds")
      .Help("Wall time of one engine step, by what it ran: prefill only, decode only, or mixed.").Register(reg);
  for (size_t i = 0; i < step_seconds_.size(); ++i) {
    step_seconds_[i] = &step_seconds.Add({{"phase", std::string(kPhaseNames[i])}}, kStepBuckets);
  }

  auto& load_ratio = BuildHistogram().Name("moed_expert_load_ratio")
      .Help("Each step, each expert's assignments divided by the layer's mean (observed once per expert).")
      .Register(reg);
  auto& imbalance = BuildGauge().Name("moed_expert_imbalance_ratio")
      .Help(absl::StrCat("Max / mean per-expert assignments over the last ", kImbalanceWindowSteps,
                         " steps with assignments (0 = no data).")).Register(reg);
  for (int l = 0; l < num_layers_; ++l) {
    const std::string layer = std::to_string(l);
    load_ratio_.push_back(&load_ratio.Add({{"layer", layer}}, kLoadRatioBuckets));
    imbalance_.push_back(&imbalance.Add({{"layer", layer}}));
  }

  cache_ = std::make_unique<ExpertCacheMetrics>(reg, num_layers_, info.routed_experts);
  balance_ = std::make_unique<BalanceMetrics>(reg, num_layers_, num_experts_, info.layer_is_moe);
  specialization_ = std::make_unique<SpecializationMetrics>(
      reg, num_layers_, num_experts_, info.layer_is_moe,
      per_expert_ && cells * static_cast<int64_t>(TokenClass::kCount) <= kPerExpertSeriesBudget);

  if (per_expert_) {
    auto& routed = BuildCounter().Name("moed_expert_tokens_total")
        .Help("Router assignments (token, top-k slot) per expert, dropped ones included; computed tokens only "
              "(prefix-cache hits are not routed).").Register(reg);
    auto& dropped = BuildCounter().Name("moed_expert_dropped_tokens_total")
        .Help("Assignments dropped by expert capacity, per expert.").Register(reg);
    for (int l = 0; l < num_layers_; ++l) {
      for (int e = 0; e < num_experts_; ++e) {
        const prometheus::Labels labels = {{"layer", std::to_string(l)}, {"expert", std::to_string(e)}};
        routed_.push_back(&routed.Add(labels));
        dropped_.push_back(&dropped.Add(labels));
      }
    }
  } else {
    auto& routed = BuildCounter().Name("moed_layer_tokens_total")
        .Help("Router assignments per layer, dropped ones included, computed tokens only (per-expert series over "
              "budget).").Register(reg);
    auto& dropped = BuildCounter().Name("moed_layer_dropped_tokens_total")
        .Help("Assignments dropped by expert capacity per layer (per-expert series over budget).").Register(reg);
    for (int l = 0; l < num_layers_; ++l) {
      routed_.push_back(&routed.Add({{"layer", std::to_string(l)}}));
      dropped_.push_back(&dropped.Add({{"layer", std::to_string(l)}}));
    }
  }
}

std::string_view FrontName(Front f) { return f == Front::kHttp ? "http" : "grpc"; }

void ServerMetrics::RequestFinished(RequestResult result, Front front) {
  requests_.at(static_cast<size_t>(front)).at(static_cast<size_t>(result))->Increment();
}
void ServerMetrics::SetStreamsOpen(int n) { streams_open_->Set(n); }
void ServerMetrics::Rejected(RejectReason reason, Front front) {
  rejected_.at(static_cast<size_t>(front)).at(static_cast<size_t>(reason))->Increment();
}
void ServerMetrics::ObserveTimeToFirstToken(double s) { ttft_->Observe(s); }
void ServerMetrics::ObserveInterTokenLatency(double s) { itl_->Observe(s); }
void ServerMetrics::ObserveQueueTime(double s) { queue_time_->Observe(s); }
void ServerMetrics::ObserveRequestDuration(double s) { duration_->Observe(s); }
void ServerMetrics::RequestEnded(FinishReason reason, int prompt_tokens, int generation_tokens) {
  request_lengths_->Finished(reason, prompt_tokens, generation_tokens);
}

void ServerMetrics::OnEngineStep(const EngineStats& stats, int pending) {
  running_->Set(stats.running);
  waiting_->Set(stats.waiting + pending);
  kv_used_->Set(stats.kv_blocks_used);
  kv_total_->Set(stats.kv_blocks_total);
  kv_usage_->Set(stats.kv_blocks_total > 0 ? static_cast<double>(stats.kv_blocks_used) / stats.kv_blocks_total : 0.0);
  if (stats.steps == prev_.steps) return;
  steps_total_->Increment(static_cast<double>(std::max<int64_t>(0, stats.steps - prev_.steps)));

  const int64_t prefill = std::max<int64_t>(0, stats.prompt_tokens - prev_.prompt_tokens);
  const int64_t decode = std::max<int64_t>(0, stats.last_step_tokens - prefill);
  prompt_tokens_->Increment(static_cast<double>(prefill));
  generated_tokens_->Increment(static_cast<double>(std::max<int64_t>(0, stats.generated_tokens - prev_.generated_tokens)));
  preemptions_->Increment(static_cast<double>(std::max<int64_t>(0, stats.preemptions - prev_.preemptions)));
  prefix_queries_->Increment(
      static_cast<double>(std::max<int64_t>(0, stats.prefix_cache_queries - prev_.prefix_cache_queries)));
  prefix_hits_->Increment(static_cast<double>(std::max<int64_t>(0, stats.prefix_cache_hits - prev_.prefix_cache_hits)));
  if (stats.last_step_tokens > 0) {
    batch_tokens_->Observe(stats.last_step_tokens);
    const size_t phase = prefill == 0 ? 1 : (decode == 0 ? 0 : 2);
    step_seconds_[phase]->Observe(stats.last_step_seconds);
  }
  UpdateExperts(stats);
  cache_->Update(stats.expert_cache, prev_.expert_cache, stats.last_step_expert_cache);
  prev_ = stats;
}

void ServerMetrics::UpdateExperts(const EngineStats& stats) {
  const size_t cells = static_cast<size_t>(num_layers_) * num_experts_;
  if (stats.routed.size() != cells) return;  // engine without routing stats: nothing to export
  for (size_t i = 0; i < cells; ++i) {
    const size_t series = per_expert_ ? i : i / num_experts_;
    const int64_t routed = stats.routed[i] - At(prev_.routed, i);
    const int64_t dropped = At(stats.dropped, i) - At(prev_.dropped, i);
    if (routed > 0) routed_[series]->Increment(static_cast<double>(routed));
    if (dropped > 0) dropped_[series]->Increment(static_cast<double>(dropped));
  }
  balance_->Update(stats.window_routed, stats.routed);
  if (stats.expert_profile != profile_) {
    profile_ = stats.expert_profile;  // kept alive so that a new snapshot never reuses its address
    specialization_->Update(profile_.get());
  }
  if (stats.last_step_routed.size() != cells) return;
  const absl::Span<const int64_t> step(stats.last_step_routed);
  for (int l = 0; l < num_layers_; ++l) {
    for (double r : ExpertLoadRatios(step.subspan(static_cast<size_t>(l) * num_experts_, num_experts_))) {
      load_ratio_[l]->Observe(r);
    }
  }
  window_.Add(step);
  for (int l = 0; l < num_layers_; ++l) imbalance_[l]->Set(window_.Ratio(l));
}

}  // namespace moed::server
