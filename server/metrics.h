// ServerMetrics: every Prometheus family of the daemon, built once at start-up with all label sets.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "engine/runtime/engine_core.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/config.h"
#include "server/expert_cache_metrics.h"
#include "server/balance_metrics.h"
#include "server/expert_load.h"
#include "server/front.h"
#include "server/process_metrics.h"
#include "server/request_metrics.h"
#include "server/specialization_metrics.h"

namespace moed::server {

// moed_requests_total{front, status}: how each request ended, by front end.
enum class RequestResult {
  kOk, kInvalidArgument, kResourceExhausted, kDeadlineExceeded, kCancelled, kUnavailable, kUnauthenticated,
  kPermissionDenied, kNotFound, kInternal, kCount
};
std::string_view RequestResultName(RequestResult r);  // "ok", "invalid_argument", ...
RequestResult RequestResultFromStatus(const absl::Status& status);

// moed_requests_rejected_total{front, reason}: requests refused before reaching the engine.
// kUnparseable: the message could not be parsed (bad protobuf, invalid UTF-8 in a string field, a body that is not
// JSON). kUnknownModel: an HTTP request naming a model this daemon does not serve (404).
enum class RejectReason { kQueueFull, kInvalidArgument, kShuttingDown, kUnparseable, kUnknownModel, kCount };
std::string_view RejectReasonName(RejectReason r);  // "queue_full", "invalid_argument", ..., "unknown_model"

struct MetricsModelInfo {
  std::string model;    // --model value
  std::string family;   // mixtral, ...
  std::string backend;  // cpu | cuda
  int num_layers = 0;
  int num_experts = 0;
  int routed_experts = 0;  // MoE layers × experts (what the hot-expert cache can hold)
  std::vector<bool> layer_is_moe;  // (num_layers); empty = every layer is MoE
};

// Steps in the sliding window of moed_expert_imbalance_ratio.
inline constexpr int kImbalanceWindowSteps = 128;
// layers × experts up to which --metrics-per-expert=auto exports per-expert series.
inline constexpr int kPerExpertSeriesBudget = 4096;

// Request-level methods are thread-safe (prometheus-cpp metrics are). OnEngineStep is for the
// engine thread only (it keeps the previous cumulative stats to compute deltas).
class ServerMetrics {
 public:
  ServerMetrics(const MetricsModelInfo& info, PerExpertMetrics mode);

  std::shared_ptr<prometheus::Registry> registry() const { return registry_; }
  bool per_expert() const { return per_expert_; }

  void RequestFinished(RequestResult result, Front front = Front::kGrpc);
  void SetStreamsOpen(int n);
  void Rejected(RejectReason reason, Front front);
  void ObserveTimeToFirstToken(double seconds);
  void ObserveInterTokenLatency(double seconds);
  void ObserveQueueTime(double seconds);
  void ObserveRequestDuration(double seconds);
  // Once per request the engine finished: moed_requests_finished_total{finish_reason} and the length histograms.
  void RequestEnded(FinishReason reason, int prompt_tokens, int generation_tokens);

  // After each engine step (or idle pass): gauges from `stats`; counters and histograms from the
  // difference to the previous call when stats.steps advanced. `pending`: submitted requests not yet
  // handed to the engine (counted as waiting).
  void OnEngineStep(const EngineStats& stats, int pending);

 private:
  void UpdateExperts(const EngineStats& stats);

  std::shared_ptr<prometheus::Registry> registry_;
  bool per_expert_ = false;
  int num_layers_ = 0;
  int num_experts_ = 0;

  // [front][result]
  std::array<std::array<prometheus::Counter*, static_cast<size_t>(RequestResult::kCount)>,
             static_cast<size_t>(Front::kCount)> requests_{};
  // [front][reason]
  std::array<std::array<prometheus::Counter*, static_cast<size_t>(RejectReason::kCount)>,
             static_cast<size_t>(Front::kCount)> rejected_{};
  prometheus::Gauge* running_ = nullptr;
  prometheus::Gauge* streams_open_ = nullptr;
  prometheus::Gauge* waiting_ = nullptr;
  prometheus::Histogram* ttft_ = nullptr;
  prometheus::Histogram* itl_ = nullptr;
  prometheus::Histogram* duration_ = nullptr;
  prometheus::Histogram* queue_time_ = nullptr;
  prometheus::Histogram* batch_tokens_ = nullptr;
  prometheus::Counter* prompt_tokens_ = nullptr;
  prometheus::Counter* generated_tokens_ = nullptr;
  prometheus::Counter* preemptions_ = nullptr;
  prometheus::Counter* prefix_queries_ = nullptr;  // tokens
  prometheus::Counter* prefix_hits_ = nullptr;     // tokens
  prometheus::Gauge* kv_usage_ = nullptr;
  prometheus::Gauge* kv_used_ = nullptr;
  prometheus::Gauge* kv_total_ = nullptr;
  prometheus::Counter* steps_total_ = nullptr;
  std::array<prometheus::Histogram*, 3> step_seconds_{};  // prefill, decode, mixed

  // Per (layer, expert) when per_expert_, else per layer: routed and dropped assignments.
  std::vector<prometheus::Counter*> routed_;
  std::vector<prometheus::Counter*> dropped_;
  std::vector<prometheus::Histogram*> load_ratio_;  // per layer
  std::vector<prometheus::Gauge*> imbalance_;       // per layer

  std::unique_ptr<ExpertCacheMetrics> cache_;
  std::unique_ptr<BalanceMetrics> balance_;
  std::unique_ptr<RequestMetrics> request_lengths_;
  std::unique_ptr<SpecializationMetrics> specialization_;
  std::shared_ptr<const ExpertProfileSnapshot> profile_;  // the last snapshot fed to specialization_
  std::unique_ptr<ProcessMetrics> process_;

  // Engine-thread state: the previous cumulative stats.
  EngineStats prev_;
  ImbalanceWindow window_;
};

}  // namespace moed::server
