// Balance gauges: one series per MoE layer and window, values from the windowed and since-start matrices.
#include "server/balance_metrics.h"

#include <cmath>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "server/metrics.h"
#include "server/specialization_metrics.h"

namespace moed::server {
namespace {

// {family → {"layer/window" → value}} of every balance gauge in `registry`.
std::map<std::string, std::map<std::string, double>> Gauges(prometheus::Registry& registry) {
  std::map<std::string, std::map<std::string, double>> out;
  for (const auto& f : registry.Collect()) {
    if (f.name.rfind("moed_expert_load_", 0) != 0 || f.type != prometheus::MetricType::Gauge) continue;
    for (const auto& m : f.metric) {
      std::string layer, window;
      for (const auto& l : m.label) (l.name == "layer" ? layer : window) = l.value;
      out[f.name][layer + "/" + window] = m.gauge.value;
    }
  }
  return out;
}

TEST(BalanceMetrics, SeriesOnlyForMoeLayersAndBothWindows) {
  prometheus::Registry reg;
  BalanceMetrics b(reg, /*num_layers=*/3, /*num_experts=*/4, /*layer_is_moe=*/{false, true, true});
  const auto g = Gauges(reg);
  ASSERT_EQ(g.size(), 5u);
  for (const auto& [family, series] : g) {
    EXPECT_EQ(series.size(), 4u) << family;
    EXPECT_TRUE(series.contains("1/last_1000_steps") && series.contains("2/since_start")) << family;
    EXPECT_FALSE(series.contains("0/since_start")) << family;
  }
}

TEST(BalanceMetrics, ValuesFromEachWindow) {
  prometheus::Registry reg;
  BalanceMetrics b(reg, 2, 4, {});
  // Layer 0: window uniform, since start one-hot. Layer 1: window {4,1,2,1} (known skew), since start empty.
  b.Update(std::vector<int64_t>{5, 5, 5, 5, 4, 1, 2, 1}, std::vector<int64_t>{0, 9, 0, 0, 0, 0, 0, 0});
  auto g = Gauges(reg);
  EXPECT_DOUBLE_EQ(g["moed_expert_load_gini"]["0/last_1000_steps"], 0.0);
  EXPECT_DOUBLE_EQ(g["moed_expert_load_entropy"]["0/last_1000_steps"], 1.0);
  EXPECT_DOUBLE_EQ(g["moed_expert_load_max_mean_ratio"]["0/since_start"], 4.0);
  EXPECT_DOUBLE_EQ(g["moed_expert_load_gini"]["0/since_start"], 0.75);
  EXPECT_NEAR(g["moed_expert_load_entropy"]["1/last_1000_steps"], 0.875, 1e-12);
  EXPECT_NEAR(g["moed_expert_load_cv"]["1/last_1000_steps"], std::sqrt(1.5) / 2, 1e-12);
  EXPECT_EQ(g["moed_expert_load_assignments"]["1/last_1000_steps"], 8);
  EXPECT_EQ(g["moed_expert_load_assignments"]["1/since_start"], 0);
  EXPECT_EQ(g["moed_expert_load_entropy"]["1/since_start"], 0);
  // A wrong-sized matrix changes nothing.
  b.Update(std::vector<int64_t>{1, 2, 3}, std::vector<int64_t>{1, 2, 3});
  EXPECT_EQ(Gauges(reg), g);
}

TEST(BalanceMetrics, ServerMetricsFeedsThemFromEngineStats) {
  MetricsModelInfo info{"fortune-moe", "mixtral", "cpu", 1, 2};
  ServerMetrics m(info, PerExpertMetrics::kAuto);
  EngineStats s;
  s.steps = 1;
  s.routed = {30, 10};
  s.window_routed = {1, 3};
  s.last_step_routed = {1, 3};
  m.OnEngineStep(s, 0);
  auto g = Gauges(*m.registry());
  EXPECT_DOUBLE_EQ(g["moed_expert_load_max_mean_ratio"]["0/since_start"], 1.5);
  EXPECT_DOUBLE_EQ(g["moed_expert_load_max_mean_ratio"]["0/last_1000_steps"], 1.5);
  EXPECT_DOUBLE_EQ(g["moed_expert_load_gini"]["0/since_start"], 0.25);
  EXPECT_EQ(g["moed_expert_load_assignments"]["0/since_start"], 40);
}

TEST(SpecializationMetrics, CountersFollowTheProfileSnapshots) {
  prometheus::Registry reg;
  SpecializationMetrics m(reg, /*num_layers=*/2, /*num_experts=*/2, /*layer_is_moe=*/{false, true}, true);
  const auto families = reg.Collect();
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].metric.size(), 2u * 9u);  // layer 1 only: 2 experts x 9 classes
  ExpertProfiler profiler(2, 2, 4, {TokenClass::kDigits, TokenClass::kLetters}, 4);
  profiler.AddToken(0, std::vector<int32_t>{0, 1, 0, 1}, 2);
  auto first = profiler.Snapshot(4, 1);
  m.Update(first.get());
  m.Update(first.get());  // the same snapshot again: no double counting
  profiler.AddToken(1, std::vector<int32_t>{-1, 1}, 1);  // layer 0 dense
  auto second = profiler.Snapshot(4, 2);
  m.Update(second.get());
  m.Update(nullptr);
  std::map<std::string, double> value;
  const auto collected = reg.Collect();  // kept alive: the loop reads into it
  for (const auto& metric : collected[0].metric) {
    std::string key;
    for (const auto& l : metric.label) key += l.value + "/";
    value[key] = metric.counter.value;
  }
  // Keys: expert/layer/token_class (labels in name order). Token 0 (digits) went to both experts of layer 1,
  // token 1 (letters) to expert 1 only.
  EXPECT_EQ(value["0/1/digits/"], 1);
  EXPECT_EQ(value["0/1/letters/"], 0);
  EXPECT_EQ(value["1/1/digits/"], 1);
  EXPECT_EQ(value["1/1/letters/"], 1);
  SpecializationMetrics off(reg, 2, 2, {}, false);  // over budget: no family at all
  EXPECT_EQ(reg.Collect().size(), 1u);
}

}  // namespace
}  // namespace moed::server
