// SwiGLU FFN and grouped routed-expert execution with dynamic per-expert work distribution.
#include "engine/backend/cpu/experts.h"

#include <algorithm>
#include <atomic>

#include "engine/backend/cpu/ops.h"

namespace moed::cpu {

FfnView ViewOf(const CpuFfn& ffn) { return {ffn.width, ffn.gate.data(), ffn.up.data(), ffn.down.data()}; }

void RunFfn(const FfnView& ffn, const float* x, int64_t n, int hidden, float* y, ThreadPool* pool) {
  std::vector<float> g(n * ffn.width), u(n * ffn.width);
  MatMul(x, n, hidden, ffn.gate, ffn.width, nullptr, g.data(), pool);
  MatMul(x, n, hidden, ffn.up, ffn.width, nullptr, u.data(), pool);
  SiluMul(g.data(), u.data(), n * ffn.width);
  MatMul(g.data(), n, ffn.width, ffn.down, hidden, nullptr, y, pool);
}

void RunFfn(const CpuFfn& ffn, const float* x, int64_t n, int hidden, float* y, ThreadPool* pool) {
  RunFfn(ViewOf(ffn), x, n, hidden, y, pool);
}

void RunRoutedExperts(const std::vector<CpuFfn>& weights, const float* x, int num_tokens, int hidden,
                      const int32_t* experts, const float* routing_weights, const uint8_t* kept, int top_k,
                      float* out, ThreadPool* pool) {
  std::vector<FfnView> views;
  views.reserve(weights.size());
  for (const CpuFfn& w : weights) views.push_back(ViewOf(w));
  RunRoutedExperts(views, x, num_tokens, hidden, experts, routing_weights, kept, top_k, out, pool);
}

void RunRoutedExperts(const std::vector<FfnView>& weights, const float* x, int num_tokens, int hidden,
                      const int32_t* experts, const float* routing_weights, const uint8_t* kept, int top_k,
                      float* out, ThreadPool* pool) {
  const int num_experts = static_cast<int>(weights.size());
  const std::vector<std::vector<int32_t>> assigned = AssignmentsByExpert(experts, kept, num_tokens, top_k, num_experts);
  std::vector<int> active;
  for (int e = 0; e < num_experts; ++e) {
    if (!assigned[e].empty()) active.push_back(e);
  }
  // Largest first, so the dynamic hand-out below balances the threads.
  std::stable_sort(active.begin(), active.end(),
                   [&](int a, int b) { return assigned[a].size() > assigned[b].size(); });

  std::vector<std::vector<float>> results(num_experts);  // (tokens of e, hidden)
  // Gathers expert e's rows and runs it; `inner` parallelises inside its matmuls (nullptr = serial).
  auto run_expert = [&](int e, ThreadPool* inner) {
    const std::vector<int32_t>& rows = assigned[e];
    const int64_t n = static_cast<int64_t>(rows.size());
    std::vector<float> gathered(n * hidden);
    GatherAssignedRows(x, rows, top_k, hidden, gathered.data());
    results[e].resize(n * hidden);
    RunFfn(weights[e], gathered.data(), n, hidden, results[e].data(), inner);
  };
  if (pool == nullptr || pool->size() == 1 || active.size() == 1) {
    for (int e : active) run_expert(e, pool);
  } else {
    std::atomic<size_t> next{0};
    pool->ParallelFor(pool->size(), [&](int64_t, int64_t) {
      for (size_t i = next.fetch_add(1); i < active.size(); i = next.fetch_add(1)) run_expert(active[i], nullptr);
    });
  }
  AddWeightedExpertOutputs(assigned, results, routing_weights, top_k, hidden, out);
}

}  // namespace moed::cpu
