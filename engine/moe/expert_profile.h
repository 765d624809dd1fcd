// ExpertProfiler: per (layer, expert) which tokens the router sends there — a SpaceSaving top-N of token ids and a
// token-class histogram — plus a bounded history of per-layer balance; published as immutable snapshots.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "absl/types/span.h"
#include "engine/moe/heavy_hitters.h"
#include "engine/moe/token_class.h"

namespace moed {

// Balance of every layer at one engine step, over the recent-load window (EngineStats::window_routed).
struct BalancePoint {
  int64_t step = 0;
  std::vector<float> gini;           // (num_layers); dense layers and layers without data: 0
  std::vector<float> entropy;        // (num_layers)
  std::vector<float> max_over_mean;  // (num_layers)
};

// What GetExpertProfile serves. Immutable once published; shared between the engine and RPC threads.
struct ExpertProfileSnapshot {
  int num_layers = 0;
  int num_experts = 0;
  int64_t tokens = 0;  // tokens profiled (each counted once per layer it was routed in)
  int64_t steps = 0;   // engine steps when the snapshot was taken
  std::vector<std::vector<SpaceSaving::Entry>> top;  // (num_layers * num_experts): the largest counts first
  std::vector<int64_t> class_counts;                  // (num_layers * num_experts * TokenClass::kCount)
  std::vector<BalancePoint> history;                  // oldest first
};

// Engine thread only.
class ExpertProfiler {
 public:
  // token_class: (vocab) the class of each token id. sketch_capacity: counters per (layer, expert);
  // history_points: balance points kept.
  ExpertProfiler(int num_layers, int num_experts, int sketch_capacity, std::vector<TokenClass> token_class,
                 int history_points);

  // One token's routing: `experts` (num_layers * top_k) layer-major, each layer's top-k expert ids (-1 on a dense
  // layer). Tokens outside the vocabulary, wrong sizes and expert ids outside the model are ignored.
  void AddToken(int32_t token, absl::Span<const int32_t> experts, int top_k);
  // Appends the balance of each layer of `window_routed` (num_layers * num_experts) at `step`.
  void AddBalancePoint(int64_t step, absl::Span<const int64_t> window_routed);
  // A copy of the state with at most `top_n` entries per expert.
  std::shared_ptr<const ExpertProfileSnapshot> Snapshot(int top_n, int64_t steps) const;

 private:
  int num_layers_;
  int num_experts_;
  std::vector<TokenClass> token_class_;
  size_t history_points_;
  int64_t tokens_ = 0;
  std::vector<SpaceSaving> sketches_;  // (num_layers * num_experts)
  std::vector<int64_t> class_counts_;  // (num_layers * num_experts * kCount)
  std::deque<BalancePoint> history_;
};

}  // namespace moed
