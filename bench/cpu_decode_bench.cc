// cpu-decode-bench: CPU backend decode throughput on a model directory (default models/fortune-moe) at batch 1, 8
// and 32 (all sequences in one Step), against a floor of weight bytes read per step / measured memcpy bandwidth.
//   cpu-decode-bench [--model DIR] [--threads N] [--steps N] [--reps N]
// Prints one JSON object.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "engine/backend/backend.h"
#include "engine/model/model.h"
#include "nlohmann/json.hpp"

namespace moed {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// Copy bandwidth in bytes/s (bytes copied per second; each is read once and written once), best of 5.
double MemcpyBandwidth() {
  const size_t n = size_t{256} << 20;
  std::vector<char> src(n, 1), dst(n, 0);
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
    std::memcpy(dst.data(), src.data(), n);
    const auto t1 = Clock::now();
    best = std::max(best, n / Seconds(t0, t1));
    src[r] = dst[n - 1 - r];  // keep the copies observable
  }
  return best;
}

// fp32 bytes of the weights one decode step reads, given how many distinct experts each MoE layer ran.
double WeightBytesPerStep(const ModelSpec& s, double experts_per_layer) {
  const double h = s.hidden_size, f = 4.0;
  const double attn = (2.0 * s.attention.q_dim() * h + 2.0 * s.attention.kv_dim() * h) * f;
  const double expert = 3.0 * s.moe_intermediate_size * h * f;
  const double shared = 3.0 * s.shared_experts.intermediate_size * h * f;
  double bytes = 0;
  for (int l = 0; l < s.num_layers; ++l) {
    const bool moe = l < static_cast<int>(s.layer_is_moe.size()) ? s.layer_is_moe[l] : true;
    bytes += attn + 2 * h * f;
    bytes += moe ? s.num_experts * h * f + experts_per_layer * expert + shared
                 : 3.0 * s.dense_intermediate_size * h * f;
  }
  return bytes + static_cast<double>(s.vocab_size) * h * f + h * f;
}

struct Result {
  int batch = 0;
  double tokens_per_s = 0;
  double ms_per_step = 0;
  double experts_per_layer = 0;  // distinct experts run per MoE layer per step (average)
};

// Decodes `batch` sequences together: a 16-token prefill each, 8 warm-up steps, then `reps` runs of `steps` steps;
// reports the median run.
Result BenchBatch(Backend& b, int batch, int steps, int reps) {
  const ModelSpec& s = b.spec();
  const int prompt = 16, block = 16;
  const int total = prompt + 8 + steps * reps + 1;
  const int blocks_per_seq = (total + block - 1) / block;
  if (!b.InitKvCache({blocks_per_seq * batch, block}).ok()) return {};
  std::vector<SequenceStep> seqs(batch);
  for (int i = 0; i < batch; ++i) {
    SequenceStep& q = seqs[i];
    q.seq_id = i;
    for (int k = 0; k < blocks_per_seq; ++k) q.block_table.push_back(i * blocks_per_seq + k);
    q.sample = true;
    q.sampling.temperature = 0;
  }
  std::vector<int32_t> last(batch);
  StepOutput out;
  for (int i = 0; i < batch; ++i) {
    StepBatch pre;
    for (int t = 0; t < prompt; ++t) pre.token_ids.push_back((1 + 37 * (t + i)) % s.vocab_size);
    SequenceStep q = seqs[i];
    q.num_tokens = prompt;
    pre.seqs = {q};
    if (!b.Step(pre, &out).ok()) return {};
    last[i] = out.results[0].token;
  }
  int pos = prompt;
  double experts_sum = 0;
  int64_t experts_samples = 0;
  auto decode = [&](int n) {
    for (int k = 0; k < n; ++k, ++pos) {
      StepBatch step;
      for (int i = 0; i < batch; ++i) {
        SequenceStep q = seqs[i];
        q.token_offset = i;
        q.num_tokens = 1;
        q.start_pos = pos;
        step.token_ids.push_back(last[i]);
        step.seqs.push_back(std::move(q));
      }
      if (!b.Step(step, &out).ok()) return false;
      for (int i = 0; i < batch; ++i) last[i] = out.results[i].token;
      for (size_t c = 0; c < out.routed.size(); ++c) experts_sum += out.routed[c] > 0 ? 1 : 0;
      experts_samples += s.num_layers;
    }
    return true;
  };
  decode(8);
  std::vector<double> runs;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    if (!decode(steps)) return {};
    runs.push_back(Seconds(t0, Clock::now()));
  }
  std::sort(runs.begin(), runs.end());
  const double median = runs[runs.size() / 2];
  Result res;
  res.batch = batch;
  res.ms_per_step = 1e3 * median / steps;
  res.tokens_per_s = batch * steps / median;
  res.experts_per_layer = experts_samples ? experts_sum / experts_samples : 0;
  return res;
}

int Run(int argc, char** argv) {
  std::string model_dir = "models/fortune-moe";
  int threads = 0, steps = 64, reps = 5;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], v = argv[i + 1];
    bool ok = true;
    if (flag == "--model") model_dir = v;
    else if (flag == "--threads") ok = absl::SimpleAtoi(v, &threads) && threads >= 0;
    else if (flag == "--steps") ok = absl::SimpleAtoi(v, &steps) && steps > 0;
    else if (flag == "--reps") ok = absl::SimpleAtoi(v, &reps) && reps > 0;
    else ok = false;
    if (!ok) {
      std::fprintf(stderr, "cpu-decode-bench: bad flag %s %s\n", flag.c_str(), v.c_str());
      return 2;
    }
  }
  auto model = LoadModel(model_dir);
  if (!model.ok()) {
    std::fprintf(stderr, "cpu-decode-bench: %s\n", std::string(model.status().message()).c_str());
    return 2;
  }
  BackendOptions bo;
  bo.num_threads = threads;
  auto backend = CreateBackend("cpu", *model, bo);
  if (!backend.ok()) {
    std::fprintf(stderr, "cpu-decode-bench: %s\n", std::string(backend.status().message()).c_str());
    return 2;
  }
  const double bandwidth = MemcpyBandwidth();
  nlohmann::json j;
  j["model"] = model_dir;
  j["threads"] = threads;
  j["steps_per_rep"] = steps;
  j["reps"] = reps;
  j["memcpy_bytes_per_s"] = bandwidth;
  for (int batch : {1, 8, 32}) {
    const Result r = BenchBatch(**backend, batch, steps, reps);
    const double bytes = WeightBytesPerStep((*model)->spec, r.experts_per_layer);
    const double floor_s = bytes / bandwidth;
    j["results"].push_back({{"batch", batch},
                            {"decode_tokens_per_s", r.tokens_per_s},
                            {"ms_per_step", r.ms_per_step},
                            {"distinct_experts_per_layer", r.experts_per_layer},
                            {"weight_bytes_per_step", bytes},
                            {"floor_ms_per_step", 1e3 * floor_s},
                            {"floor_tokens_per_s", batch / floor_s}});
  }
  std::cout << j.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace moed

int main(int argc, char** argv) { return moed::Run(argc, argv); }
