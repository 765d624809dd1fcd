// cpu-decode-bench: CPU backend decode throughput on a model (a directory, default models/fortune-moe, or
// synthetic:<name>) at each batch of --batches (all sequences in one Step), against a floor of weight bytes read
// per step / measured memcpy bandwidth; and with --prefill N, one N-token prefill Step against FLOPs / the measured
// register-only FMA rate on the same threads (fast on AVX512_BF16: the routed experts' share at the vdpbf16ps rate).
//   cpu-decode-bench [--model DIR|synthetic:NAME] [--cpu-kernels fast|fast-fp32|reference] [--threads N] [--steps N]
//                    [--reps N] [--batches 1,8,32] [--prefill N]
// Prints one JSON object.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "bench/cpu_peak.h"
#include "engine/backend/backend.h"
#include "engine/backend/cpu/kernels/isa.h"
#include "engine/model/model.h"
#include "engine/runtime/model_source.h"
#include "nlohmann/json.hpp"

namespace moed {
namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }


// Bytes of the weights one decode step reads (f bytes per weight: 4 for the fp32 reference, the checkpoint's 2 for
// the fast path), given how many distinct experts each MoE layer ran.
double WeightBytesPerStep(const ModelSpec& s, double experts_per_layer, double f) {
  const double h = s.hidden_size;
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
  double cpu_ms_per_step = 0;    // process CPU time per step, median run
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
  std::vector<double> runs, cpu;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    const double c0 = bench::ProcessCpuSeconds();
    if (!decode(steps)) return {};
    runs.push_back(Seconds(t0, Clock::now()));
    cpu.push_back(bench::ProcessCpuSeconds() - c0);
  }
  std::sort(runs.begin(), runs.end());
  std::sort(cpu.begin(), cpu.end());
  const double median = runs[runs.size() / 2];
  Result res;
  res.batch = batch;
  res.ms_per_step = 1e3 * median / steps;
  res.tokens_per_s = batch * steps / median;
  res.experts_per_layer = experts_samples ? experts_sum / experts_samples : 0;
  res.cpu_ms_per_step = 1e3 * cpu[cpu.size() / 2] / steps;
  return res;
}

// Multiply-adds of one prefill of n tokens (projections, router, top_k experts, causal attention; lm_head once), and
// the routed experts' share of them (what --cpu-kernels fast runs on vdpbf16ps).
struct PrefillWork {
  double macs = 0;
  double routed_expert_macs = 0;
};

PrefillWork PrefillMacs(const ModelSpec& s, int n) {
  const double h = s.hidden_size;
  const double attn_proj = 2.0 * s.attention.q_dim() * h + 2.0 * s.attention.kv_dim() * h;
  const double scores = 2.0 * s.attention.q_dim() * (n + 1) / 2.0;  // QK and PV over (pos + 1) keys, averaged
  double per_token = 0, routed_per_token = 0;
  for (int l = 0; l < s.num_layers; ++l) {
    const bool moe = l < static_cast<int>(s.layer_is_moe.size()) ? s.layer_is_moe[l] : true;
    const double routed = moe ? s.top_k * 3.0 * s.moe_intermediate_size * h : 0.0;
    per_token += attn_proj + scores;
    per_token += moe ? s.num_experts * h + routed + 3.0 * s.shared_experts.intermediate_size * h
                     : 3.0 * s.dense_intermediate_size * h;
    routed_per_token += routed;
  }
  return {per_token * n + static_cast<double>(s.vocab_size) * h, routed_per_token * n};
}

// Median wall and CPU seconds of one n-token prefill Step (fresh positions each rep).
std::pair<double, double> BenchPrefill(Backend& b, int n, int reps) {
  const ModelSpec& s = b.spec();
  const int block = 16, blocks = (n + block - 1) / block;
  if (!b.InitKvCache({blocks, block}).ok()) return {0, 0};
  StepBatch batch;
  SequenceStep q;
  q.num_tokens = n;
  for (int k = 0; k < blocks; ++k) q.block_table.push_back(k);
  q.sample = true;
  q.sampling.temperature = 0;
  batch.seqs = {q};
  for (int t = 0; t < n; ++t) batch.token_ids.push_back((1 + 37 * t + t * t) % s.vocab_size);
  StepOutput out;
  std::vector<double> runs, cpu;
  for (int r = 0; r < reps + 1; ++r) {  // the first is a warm-up
    const auto t0 = Clock::now();
    const double c0 = bench::ProcessCpuSeconds();
    if (!b.Step(batch, &out).ok()) return {0, 0};
    if (r == 0) continue;
    runs.push_back(Seconds(t0, Clock::now()));
    cpu.push_back(bench::ProcessCpuSeconds() - c0);
  }
  std::sort(runs.begin(), runs.end());
  std::sort(cpu.begin(), cpu.end());
  return {runs[runs.size() / 2], cpu[cpu.size() / 2]};
}

int Run(int argc, char** argv) {
  std::string model_dir = "models/fortune-moe", kernels = "fast";
  int threads = 0, steps = 64, reps = 5, prefill = 0;
  std::vector<int> batches = {1, 8, 32};
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], v = argv[i + 1];
    bool ok = true;
    if (flag == "--model") model_dir = v;
    else if (flag == "--threads") ok = absl::SimpleAtoi(v, &threads) && threads >= 0;
    else if (flag == "--steps") ok = absl::SimpleAtoi(v, &steps) && steps > 0;
    else if (flag == "--reps") ok = absl::SimpleAtoi(v, &reps) && reps > 0;
    else if (flag == "--cpu-kernels") ok = (kernels = v) == "fast" || v == "fast-fp32" || v == "reference";
    else if (flag == "--prefill") ok = absl::SimpleAtoi(v, &prefill) && prefill >= 0;
    else if (flag == "--batches") {
      batches.clear();
      for (absl::string_view part : absl::StrSplit(v, ',')) {
        int b = 0;
        ok = ok && absl::SimpleAtoi(part, &b) && b > 0;
        batches.push_back(b);
      }
    } else ok = false;
    if (!ok) {
      std::fprintf(stderr, "cpu-decode-bench: bad flag %s %s\n", flag.c_str(), v.c_str());
      return 2;
    }
  }
  auto opened = OpenModel(model_dir, {});
  if (!opened.ok()) {
    std::fprintf(stderr, "cpu-decode-bench: %s\n", std::string(opened.status().message()).c_str());
    return 2;
  }
  const std::shared_ptr<const Model> model = opened->model;
  BackendOptions bo;
  bo.num_threads = threads;
  bo.cpu_kernels = kernels;
  auto backend = CreateBackend("cpu", model, bo);
  if (!backend.ok()) {
    std::fprintf(stderr, "cpu-decode-bench: %s\n", std::string(backend.status().message()).c_str());
    return 2;
  }
  const bench::Rate copy = bench::MemcpyRate();
  const double bandwidth = copy.per_s;
  ThreadPool peak_pool(threads);
  const bench::Rate peak = bench::PeakMacRate(peak_pool, /*bf16=*/false);
  const double peak_macs = peak.per_s;
  // fast runs the routed experts on vdpbf16ps (twice the lanes): their share of the floor at that rate.
  const bench::Rate peak_bf16 =
      kernels == "fast" ? bench::PeakMacRate(peak_pool, /*bf16=*/true) : bench::Rate{};
  // Bytes per weight the kernels read: the checkpoint's dtype on the fast path, fp32 on the reference.
  const double weight_bytes = kernels != "reference" ? DTypeSize(model->weights.layers[0].q_proj.dtype) : 4.0;
  nlohmann::json j;
  j["model"] = model_dir;
  j["cpu_kernels"] = kernels;
  j["isa"] = kernels != "reference" ? std::string(cpu::IsaName(cpu::ActiveIsa())) : "reference";
  j["threads"] = threads;
  j["peak_fp32_fma_macs_per_s"] = peak_macs;
  // The same floors per CPU-second of this process (compare with the *_per_cpu_s figures on a shared machine).
  j["memcpy_bytes_per_cpu_s"] = copy.per_cpu_s;
  j["peak_fp32_fma_macs_per_cpu_s"] = peak.per_cpu_s;
  j["steps_per_rep"] = steps;
  j["reps"] = reps;
  j["memcpy_bytes_per_s"] = bandwidth;
  for (int batch : batches) {
    const Result r = BenchBatch(**backend, batch, steps, reps);
    const double bytes = WeightBytesPerStep(model->spec, r.experts_per_layer, weight_bytes);
    const double floor_s = bytes / bandwidth;
    j["results"].push_back({{"batch", batch},
                            {"decode_tokens_per_s", r.tokens_per_s},
                            {"ms_per_step", r.ms_per_step},
                            {"cpu_ms_per_step", r.cpu_ms_per_step},
                            {"decode_tokens_per_cpu_s", batch * 1e3 / r.cpu_ms_per_step},
                            {"distinct_experts_per_layer", r.experts_per_layer},
                            {"weight_bytes_per_step", bytes},
                            {"floor_ms_per_step", 1e3 * floor_s},
                            {"floor_tokens_per_s", batch / floor_s},
                            {"floor_tokens_per_cpu_s", batch * copy.per_cpu_s / bytes}});
  }
  if (prefill > 0) {
    const auto [secs, cpu_secs] = BenchPrefill(**backend, prefill, reps);
    const PrefillWork work = PrefillMacs(model->spec, prefill);
    const double macs = work.macs;
    // Seconds (and CPU-seconds) the multiply-adds take at the measured peaks: the floor.
    const bool bf16 = peak_bf16.per_s > 0;
    const double fp32_macs = bf16 ? macs - work.routed_expert_macs : macs;
    const double floor_s =
        peak_macs > 0 ? fp32_macs / peak_macs + (bf16 ? work.routed_expert_macs / peak_bf16.per_s : 0) : 0.0;
    const double floor_cpu_s =
        fp32_macs / peak.per_cpu_s + (bf16 ? work.routed_expert_macs / peak_bf16.per_cpu_s : 0);
    j["prefill"] = {{"tokens", prefill},
                    {"ms", 1e3 * secs},
                    {"tokens_per_s", prefill / secs},
                    {"cpu_ms", 1e3 * cpu_secs},
                    {"tokens_per_cpu_s", prefill / cpu_secs},
                    {"macs", macs},
                    {"gmacs_per_s", macs / secs / 1e9},
                    {"routed_expert_macs", work.routed_expert_macs},
                    {"peak_bf16_dot_macs_per_s", peak_bf16.per_s},
                    {"floor_ms", 1e3 * floor_s},
                    {"floor_tokens_per_s", floor_s > 0 ? prefill / floor_s : 0.0},
                    {"floor_tokens_per_cpu_s", prefill / floor_cpu_s}};
  }
  std::cout << j.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace moed

int main(int argc, char** argv) { return moed::Run(argc, argv); }
