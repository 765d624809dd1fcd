// Metrics: families and start-up label sets, the cardinality budget, load-ratio and imbalance math,
// and per-step deltas from EngineStats.
#include "server/metrics.h"

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "moed/version.h"
#include "prometheus/text_serializer.h"

namespace moed::server {
namespace {

MetricsModelInfo Info(int layers, int experts) {
  MetricsModelInfo info;
  info.model = "fortune-moe";
  info.family = "mixtral";
  info.backend = "cpu";
  info.num_layers = layers;
  info.num_experts = experts;
  return info;
}

const prometheus::MetricFamily* Find(const std::vector<prometheus::MetricFamily>& families, const std::string& name) {
  for (const auto& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::set<std::string> LabelValues(const prometheus::MetricFamily& f, const std::string& label) {
  std::set<std::string> out;
  for (const auto& m : f.metric) {
    for (const auto& l : m.label) {
      if (l.name == label) out.insert(l.value);
    }
  }
  return out;
}

// The counter of one expert (layer 0) in a per-expert family.
double ExpertValue(const std::vector<prometheus::MetricFamily>& families, const std::string& name,
                   const std::string& expert) {
  for (const auto& m : Find(families, name)->metric) {
    for (const auto& l : m.label) {
      if (l.name == "expert" && l.value == expert) return m.counter.value;
    }
  }
  return -1;
}

TEST(ExpertLoad, RatiosAreCountsOverTheMean) {
  const std::vector<int64_t> counts = {4, 0, 2, 2};  // mean 2
  EXPECT_EQ(ExpertLoadRatios(counts), (std::vector<double>{2.0, 0.0, 1.0, 1.0}));
  EXPECT_TRUE(ExpertLoadRatios(std::vector<int64_t>{0, 0, 0}).empty());
}

TEST(ExpertLoad, ImbalanceOverASlidingWindow) {
  ImbalanceWindow w(/*layers=*/2, /*experts=*/2, /*window_steps=*/2);
  EXPECT_EQ(w.Ratio(0), 0.0);
  w.Add(std::vector<int64_t>{3, 1, 2, 2});  // layer 0: max 3 / mean 2; layer 1 balanced
  EXPECT_DOUBLE_EQ(w.Ratio(0), 1.5);
  EXPECT_DOUBLE_EQ(w.Ratio(1), 1.0);
  w.Add(std::vector<int64_t>{0, 0, 0, 0});  // empty steps are skipped
  w.Add(std::vector<int64_t>{1, 3, 4, 0});  // window: {3,1}+{1,3} = {4,4}; {2,2}+{4,0} = {6,2}
  EXPECT_DOUBLE_EQ(w.Ratio(0), 1.0);
  EXPECT_DOUBLE_EQ(w.Ratio(1), 1.5);
  w.Add(std::vector<int64_t>{2, 0, 0, 0});  // first step leaves: {1,3}+{2,0} = {3,3}; {4,0}+{0,0}
  EXPECT_DOUBLE_EQ(w.Ratio(0), 1.0);
  EXPECT_DOUBLE_EQ(w.Ratio(1), 2.0);
}

TEST(Metrics, EveryFamilyWithItsStartUpLabelSets) {
  ServerMetrics m(Info(4, 8), PerExpertMetrics::kAuto);
  EXPECT_TRUE(m.per_expert());
  const auto families = m.registry()->Collect();
  for (const char* name :
       {"moed_info", "moed_build_info", "moed_requests_total", "moed_requests_rejected_total",
        "moed_requests_running", "moed_streams_open",
        "moed_requests_waiting", "moed_time_to_first_token_seconds", "moed_inter_token_latency_seconds",
        "moed_request_duration_seconds", "moed_queue_time_seconds", "moed_batch_tokens", "moed_prompt_tokens_total",
        "moed_generated_tokens_total", "moed_kv_cache_usage_ratio", "moed_kv_cache_blocks_used",
        "moed_kv_cache_blocks_capacity", "moed_preemptions_total", "moed_prefix_cache_queries_total",
        "moed_prefix_cache_hits_total", "moed_engine_step_seconds",
        "moed_expert_tokens_total", "moed_expert_dropped_tokens_total", "moed_expert_load_ratio",
        "moed_expert_imbalance_ratio"}) {
    EXPECT_NE(Find(families, name), nullptr) << name;
  }
  EXPECT_EQ(Find(families, "moed_layer_tokens_total"), nullptr);
  EXPECT_EQ(LabelValues(*Find(families, "moed_requests_total"), "status"),
            (std::set<std::string>{"ok", "invalid_argument", "resource_exhausted", "deadline_exceeded", "cancelled",
                                   "unavailable", "unauthenticated", "permission_denied", "not_found", "internal"}));
  EXPECT_EQ(LabelValues(*Find(families, "moed_requests_total"), "front"), (std::set<std::string>{"grpc", "http"}));
  EXPECT_EQ(LabelValues(*Find(families, "moed_requests_rejected_total"), "reason"),
            (std::set<std::string>{"queue_full", "invalid_argument", "shutting_down", "unparseable", "unknown_model"}));
  EXPECT_EQ(LabelValues(*Find(families, "moed_requests_rejected_total"), "front"),
            (std::set<std::string>{"grpc", "http"}));
  EXPECT_EQ(LabelValues(*Find(families, "moed_build_info"), "version"), (std::set<std::string>{MOED_VERSION}));
  EXPECT_EQ(LabelValues(*Find(families, "moed_build_info"), "revision"), (std::set<std::string>{MOED_REVISION}));
  EXPECT_EQ(LabelValues(*Find(families, "moed_engine_step_seconds"), "phase"),
            (std::set<std::string>{"prefill", "decode", "mixed"}));
  EXPECT_EQ(Find(families, "moed_expert_tokens_total")->metric.size(), 32u);
  EXPECT_EQ(Find(families, "moed_expert_load_ratio")->metric.size(), 4u);
  const auto& buckets = Find(families, "moed_expert_load_ratio")->metric[0].histogram.bucket;
  ASSERT_EQ(buckets.size(), 12u);  // 11 bounds + +Inf
  EXPECT_EQ(buckets[0].upper_bound, 0.0);
  EXPECT_EQ(buckets[10].upper_bound, 8.0);
}

TEST(Metrics, CardinalityBudget) {
  // 64 layers x 128 experts = 8192 > 4096: auto falls back to per-layer totals.
  ServerMetrics over(Info(64, 128), PerExpertMetrics::kAuto);
  EXPECT_FALSE(over.per_expert());
  auto families = over.registry()->Collect();
  EXPECT_EQ(Find(families, "moed_expert_tokens_total"), nullptr);
  ASSERT_NE(Find(families, "moed_layer_tokens_total"), nullptr);
  EXPECT_EQ(Find(families, "moed_layer_tokens_total")->metric.size(), 64u);
  EXPECT_EQ(Find(families, "moed_layer_dropped_tokens_total")->metric.size(), 64u);
  EXPECT_TRUE(ServerMetrics(Info(64, 128), PerExpertMetrics::kOn).per_expert());
  EXPECT_FALSE(ServerMetrics(Info(4, 8), PerExpertMetrics::kOff).per_expert());
}

TEST(Metrics, EngineStepDeltas) {
  ServerMetrics m(Info(1, 2), PerExpertMetrics::kAuto);
  EngineStats s;
  s.kv_blocks_total = 10;
  m.OnEngineStep(s, 0);  // idle: gauges only
  s.steps = 1;
  s.running = 1;
  s.kv_blocks_used = 5;
  s.prompt_tokens = 6;  // a prefill step of 6 tokens
  s.generated_tokens = 1;
  s.last_step_tokens = 6;
  s.last_step_seconds = 0.01;
  s.routed = {9, 3};
  s.dropped = {1, 0};
  s.last_step_routed = {9, 3};
  m.OnEngineStep(s, 2);
  s.steps = 2;  // a decode step of 1 token
  s.generated_tokens = 2;
  s.last_step_tokens = 1;
  s.routed = {10, 4};
  s.last_step_routed = {1, 1};
  m.OnEngineStep(s, 0);

  const auto families = m.registry()->Collect();
  auto value = [&](const char* name) { return Find(families, name)->metric.at(0); };
  EXPECT_EQ(value("moed_prompt_tokens_total").counter.value, 6);
  EXPECT_EQ(value("moed_generated_tokens_total").counter.value, 2);
  EXPECT_EQ(value("moed_kv_cache_usage_ratio").gauge.value, 0.5);
  EXPECT_EQ(value("moed_requests_running").gauge.value, 1);
  EXPECT_EQ(value("moed_batch_tokens").histogram.sample_count, 2u);
  EXPECT_EQ(value("moed_batch_tokens").histogram.sample_sum, 7);
  EXPECT_EQ(ExpertValue(families, "moed_expert_tokens_total", "0"), 10);
  EXPECT_EQ(ExpertValue(families, "moed_expert_tokens_total", "1"), 4);
  EXPECT_EQ(ExpertValue(families, "moed_expert_dropped_tokens_total", "0"), 1);
  EXPECT_EQ(ExpertValue(families, "moed_expert_dropped_tokens_total", "1"), 0);
  // Load ratio: step 1 → 1.5, 0.5; step 2 → 1, 1: four observations summing to 4.
  const auto& ratio = Find(families, "moed_expert_load_ratio")->metric[0].histogram;
  EXPECT_EQ(ratio.sample_count, 4u);
  EXPECT_DOUBLE_EQ(ratio.sample_sum, 4.0);
  // Imbalance over both steps: {10, 4} → 10 / 7.
  EXPECT_DOUBLE_EQ(Find(families, "moed_expert_imbalance_ratio")->metric[0].gauge.value, 10.0 / 7.0);
  // Step phases: one prefill, one decode.
  for (const auto& metric : Find(families, "moed_engine_step_seconds")->metric) {
    const std::string phase = metric.label[0].value;
    EXPECT_EQ(metric.histogram.sample_count, phase == "mixed" ? 0u : 1u) << phase;
  }
}

TEST(Metrics, RequestCountersByStatusAndReason) {
  ServerMetrics m(Info(1, 2), PerExpertMetrics::kAuto);
  m.RequestFinished(RequestResultFromStatus(absl::CancelledError("x")));
  m.RequestFinished(RequestResultFromStatus(absl::OkStatus()));
  m.RequestFinished(RequestResultFromStatus(absl::NotFoundError("x")), Front::kHttp);
  m.RequestFinished(RequestResultFromStatus(absl::DataLossError("x")));  // anything else: internal
  m.RequestFinished(RequestResultFromStatus(absl::OkStatus()), Front::kHttp);
  m.Rejected(RejectReason::kQueueFull, Front::kGrpc);
  m.Rejected(RejectReason::kUnknownModel, Front::kHttp);
  const std::string text = prometheus::TextSerializer().Serialize(m.registry()->Collect());
  EXPECT_NE(text.find("moed_requests_total{front=\"grpc\",status=\"cancelled\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("moed_requests_total{front=\"grpc\",status=\"ok\"} 1"), std::string::npos);
  EXPECT_NE(text.find("moed_requests_total{front=\"grpc\",status=\"internal\"} 1"), std::string::npos);
  EXPECT_NE(text.find("moed_requests_total{front=\"http\",status=\"ok\"} 1"), std::string::npos);
  EXPECT_NE(text.find("moed_requests_total{front=\"http\",status=\"not_found\"} 1"), std::string::npos);
  EXPECT_NE(text.find("moed_requests_rejected_total{front=\"grpc\",reason=\"queue_full\"} 1"), std::string::npos);
  EXPECT_NE(text.find("moed_requests_rejected_total{front=\"http\",reason=\"queue_full\"} 0"), std::string::npos);
  EXPECT_NE(text.find("moed_requests_rejected_total{front=\"http\",reason=\"unknown_model\"} 1"), std::string::npos);
  EXPECT_NE(text.find("moed_requests_rejected_total{front=\"grpc\",reason=\"shutting_down\"} 0"), std::string::npos);
}

}  // namespace
}  // namespace moed::server
