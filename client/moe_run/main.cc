// moe-run: offline generation — loads a model directory (or a synthetic model), tokenizes, generates, prints text
// or JSON.
//   moe-run --model DIR|synthetic:NAME[-small] [--tokenizer DIR] (--prompt TEXT | --prompt-ids 1,2,3 | --prompts-file FILE) [--max-tokens N]
//           [--temperature T] [--top-p P] [--top-k K] [--seed S] [--json] [--logits-out FILE]
//           [--backend auto|cpu|cuda] [--threads N] [--cpu-kernels fast|reference] [--moe-capacity-factor F]
//           [--expert-cache-slots N] [--expert-cache-policy lru|lfu|load-aware] [--expert-cache-prefetch[=false]]
//           [--stats-out FILE]
// --prompts-file runs each non-empty line as its own generation, one after another on one backend (the expert
// cache stays warm across them), printing one output line (or JSON object) per prompt.
// --stats-out writes JSON: per layer the expert cache's hits, misses, evictions, prefetches issued/used/wasted and
// the routed-token count of every expert, plus totals.
// Bad arguments or a bad model directory: one line on stderr and exit code 2; other failures exit 1.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "engine/backend/backend.h"
#include "engine/runtime/model_source.h"
#include "engine/cache/cache_policy.h"
#include "engine/model/model.h"
#include "engine/runtime/eos.h"
#include "engine/runtime/generate.h"
#include "engine/tokenizer/tokenizer.h"
#include "common/cli/command_line.h"
#include "nlohmann/json.hpp"

namespace {
// The one place the flags' defaults live: the engine's own option structs.
const moed::SamplingParams kSampling;
const moed::BackendOptions kBackend;
}  // namespace

ABSL_FLAG(std::string, model, "", "model directory, or synthetic:<name>[-small] (random weights); required");
ABSL_FLAG(std::string, tokenizer, "", "tokenizer directory instead of the model's");
ABSL_FLAG(std::optional<std::string>, prompt, std::nullopt, "the prompt text");
ABSL_FLAG(std::optional<std::string>, prompt_ids, std::nullopt, "the prompt as token ids, 1,2,3");
ABSL_FLAG(std::optional<std::string>, prompts_file, std::nullopt,
          "one generation per non-empty line, one after another on one backend (the expert cache stays warm)");
ABSL_FLAG(int, max_tokens, 64, "tokens to generate");
ABSL_FLAG(float, temperature, kSampling.temperature, "sampling temperature; 0 = greedy");
ABSL_FLAG(float, top_p, kSampling.top_p, "nucleus sampling mass in (0, 1]");
ABSL_FLAG(int, top_k, kSampling.top_k, "sample among the K likeliest tokens; 0 = all");
ABSL_FLAG(uint64_t, seed, kSampling.seed, "sampling seed");
ABSL_FLAG(bool, json, false, "one JSON object per prompt: prompt_ids, output_ids, text");
ABSL_FLAG(std::string, logits_out, "", "write the prompt's last-position logits as a JSON array (one prompt only)");
ABSL_FLAG(std::string, backend, "auto", "auto | cpu | cuda");
ABSL_FLAG(int, threads, kBackend.num_threads, "CPU backend worker threads; 0 = all hardware threads");
ABSL_FLAG(std::string, cpu_kernels, "fast",
          "CPU kernels: fast (checkpoint-dtype weights, AVX2/AVX-512, routed experts' inputs rounded to bf16) | "
          "fast-fp32 (fast with fp32 activations) | reference (the fp32 reference backend)");
ABSL_FLAG(float, moe_capacity_factor, kBackend.moe_capacity_factor, "expert capacity factor; 0 = dropless");
ABSL_FLAG(int, expert_cache_slots, kBackend.expert_cache_slots,
          "hot-expert cache: resident routed experts in total; 0 = all resident");
ABSL_FLAG(std::string, expert_cache_policy, kBackend.expert_cache_policy, "lru | lfu | load-aware");
ABSL_FLAG(bool, expert_cache_prefetch, kBackend.expert_cache_prefetch,
          "hot-expert cache: prefetch the next layer's predicted experts");
ABSL_FLAG(std::string, stats_out, "",
          "write JSON: per layer the expert cache's hits, misses, evictions, prefetches and routed tokens, and totals");

namespace moed {
namespace {

constexpr char kSynopsis[] = R"(usage: moe-run --model DIR|synthetic:NAME[-small] [--tokenizer DIR]
           (--prompt TEXT | --prompt-ids 1,2,3 | --prompts-file FILE) [--max-tokens N]
           [--temperature T] [--top-p P] [--top-k K] [--seed S] [--json] [--logits-out FILE]
           [--backend auto|cpu|cuda] [--threads N] [--cpu-kernels fast|reference] [--moe-capacity-factor F]
           [--expert-cache-slots N] [--expert-cache-policy lru|lfu|load-aware] [--expert-cache-prefetch[=false]]
           [--stats-out FILE]
Offline generation on one backend, text to stdout. Bad arguments or a bad model directory: one line on stderr and
exit code 2; other failures exit 1.
)";

constexpr int kUsageError = cli::kExitUsage;
constexpr int kRuntimeError = 1;

struct Args {
  std::string model;
  std::optional<std::string> prompt;
  std::optional<std::string> prompt_ids;
  int max_tokens = 0;
  SamplingParams sampling;
  bool json = false;
  std::string logits_out;
  std::string backend;
  std::string tokenizer;  // tokenizer directory instead of the model's
  int threads = 0;
  std::string cpu_kernels;  // BackendOptions::cpu_kernels
  float capacity_factor = 0.0f;
  std::optional<std::string> prompts_file;
  int cache_slots = 0;
  std::string cache_policy;
  bool cache_prefetch = false;
  std::string stats_out;
};

// Thrown-free error channel: the message of the first problem found.
struct ArgError {
  std::string message;
};

int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "moe-run: %s\n", message.c_str());
  return code;
}

// The flags as Args, checked; the error names the flag.
std::optional<ArgError> ArgsFromFlags(Args& a) {
  a.model = absl::GetFlag(FLAGS_model);
  a.tokenizer = absl::GetFlag(FLAGS_tokenizer);
  a.prompt = absl::GetFlag(FLAGS_prompt);
  a.prompt_ids = absl::GetFlag(FLAGS_prompt_ids);
  a.prompts_file = absl::GetFlag(FLAGS_prompts_file);
  a.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  a.sampling.temperature = absl::GetFlag(FLAGS_temperature);
  a.sampling.top_p = absl::GetFlag(FLAGS_top_p);
  a.sampling.top_k = absl::GetFlag(FLAGS_top_k);
  a.sampling.seed = absl::GetFlag(FLAGS_seed);
  a.json = absl::GetFlag(FLAGS_json);
  a.logits_out = absl::GetFlag(FLAGS_logits_out);
  a.backend = absl::GetFlag(FLAGS_backend);
  a.cpu_kernels = absl::GetFlag(FLAGS_cpu_kernels);
  a.threads = absl::GetFlag(FLAGS_threads);
  a.capacity_factor = absl::GetFlag(FLAGS_moe_capacity_factor);
  a.cache_slots = absl::GetFlag(FLAGS_expert_cache_slots);
  a.cache_policy = absl::GetFlag(FLAGS_expert_cache_policy);
  a.cache_prefetch = absl::GetFlag(FLAGS_expert_cache_prefetch);
  a.stats_out = absl::GetFlag(FLAGS_stats_out);
  for (auto [flag, value] : {std::pair{"--max-tokens", a.max_tokens}, std::pair{"--top-k", a.sampling.top_k},
                             std::pair{"--threads", a.threads}, std::pair{"--expert-cache-slots", a.cache_slots}}) {
    if (value < 0) return ArgError{absl::StrFormat("%s must be an integer ≥ 0, got %d", flag, value)};
  }
  if (!cache::IsCachePolicyName(a.cache_policy)) {
    return ArgError{absl::StrFormat("--expert-cache-policy must be lru, lfu or load-aware, got '%s'", a.cache_policy)};
  }
  if (a.model.empty()) return ArgError{"--model DIR is required"};
  if (a.prompt.has_value() + a.prompt_ids.has_value() + a.prompts_file.has_value() != 1) {
    return ArgError{"exactly one of --prompt, --prompt-ids and --prompts-file is required"};
  }
  if (a.prompts_file.has_value() && !a.logits_out.empty()) {
    return ArgError{"--logits-out takes a single prompt, not --prompts-file"};
  }
  if (!(a.sampling.temperature >= 0) || !std::isfinite(a.sampling.temperature)) {
    return ArgError{absl::StrFormat("--temperature must be ≥ 0, got %g", a.sampling.temperature)};
  }
  if (!(a.sampling.top_p > 0 && a.sampling.top_p <= 1)) {
    return ArgError{absl::StrFormat("--top-p must be in (0, 1], got %g", a.sampling.top_p)};
  }
  if (!(a.capacity_factor >= 0) || !std::isfinite(a.capacity_factor)) {
    return ArgError{absl::StrFormat("--moe-capacity-factor must be ≥ 0, got %g", a.capacity_factor)};
  }
  if (a.cpu_kernels != "fast" && a.cpu_kernels != "fast-fp32" && a.cpu_kernels != "reference") {
    return ArgError{absl::StrFormat("--cpu-kernels must be fast, fast-fp32 or reference, got '%s'", a.cpu_kernels)};
  }
  if (a.backend != "auto" && a.backend != "cpu" && a.backend != "cuda") {
    return ArgError{absl::StrFormat("--backend must be auto, cpu or cuda, got '%s'", a.backend)};
  }
  return std::nullopt;
}

std::optional<ArgError> ParseIds(const std::string& text, int vocab, std::vector<int32_t>& ids) {
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    int32_t id;
    if (!absl::SimpleAtoi(part, &id) || id < 0 || id >= vocab) {
      return ArgError{absl::StrFormat("--prompt-ids: '%s' is not a token id in [0, %d)", std::string(part), vocab)};
    }
    ids.push_back(id);
  }
  return std::nullopt;
}

// Forwards to a backend and sums what each Step reports: routed assignments and the expert cache's deltas.
class StatsBackend : public Backend {
 public:
  explicit StatsBackend(Backend& inner)
      : inner_(inner), routed_(static_cast<size_t>(inner.spec().num_layers) * inner.spec().num_experts, 0) {}
  std::string_view name() const override { return inner_.name(); }
  const ModelSpec& spec() const override { return inner_.spec(); }
  int64_t KvBytesPerBlock(int block_size) const override { return inner_.KvBytesPerBlock(block_size); }
  absl::Status InitKvCache(const KvCacheConfig& config) override { return inner_.InitKvCache(config); }
  absl::Status Step(const StepBatch& batch, StepOutput* out) override {
    absl::Status s = inner_.Step(batch, out);
    if (!s.ok()) return s;
    ++steps_;
    for (size_t i = 0; i < out->routed.size() && i < routed_.size(); ++i) routed_[i] += out->routed[i];
    cache_.Add(out->expert_cache);
    return s;
  }

  int64_t steps() const { return steps_; }
  const std::vector<int64_t>& routed() const { return routed_; }  // (num_layers * num_experts)
  const cache::ExpertCacheStats& cache() const { return cache_; }

 private:
  Backend& inner_;
  int64_t steps_ = 0;
  std::vector<int64_t> routed_;
  cache::ExpertCacheStats cache_;
};

int64_t At(const std::vector<int64_t>& v, int i) { return i < static_cast<int>(v.size()) ? v[i] : 0; }

nlohmann::json StatsJson(const Args& a, const StatsBackend& b) {
  const ModelSpec& spec = b.spec();
  const cache::ExpertCacheStats& c = b.cache();
  nlohmann::json j;
  j["backend"] = std::string(b.name());
  j["steps"] = b.steps();
  j["expert_cache"] = {{"slots", c.capacity_experts}, {"requested_slots", a.cache_slots},
                       {"policy", a.cache_policy}, {"prefetch", a.cache_prefetch}};
  nlohmann::json layers = nlohmann::json::array();
  for (int l = 0; l < spec.num_layers; ++l) {
    const bool moe = l < static_cast<int>(spec.layer_is_moe.size()) && spec.layer_is_moe[l];
    std::vector<int64_t> routed(b.routed().begin() + static_cast<int64_t>(l) * spec.num_experts,
                                b.routed().begin() + static_cast<int64_t>(l + 1) * spec.num_experts);
    layers.push_back({{"layer", l}, {"moe", moe}, {"hits", At(c.hits, l)}, {"misses", At(c.misses, l)},
                      {"evictions", At(c.evictions, l)}, {"prefetch_issued", At(c.prefetch_issued, l)},
                      {"prefetch_used", At(c.prefetch_used, l)}, {"prefetch_wasted", At(c.prefetch_wasted, l)},
                      {"hit_assignments", At(c.hit_assignments, l)}, {"miss_assignments", At(c.miss_assignments, l)},
                      {"routed", routed}});
  }
  j["layers"] = layers;
  const int64_t accesses = c.TotalHits() + c.TotalMisses();
  j["totals"] = {{"hits", c.TotalHits()},
                 {"misses", c.TotalMisses()},
                 {"evictions", c.TotalEvictions()},
                 {"prefetch_issued", c.TotalPrefetchIssued()},
                 {"prefetch_used", c.TotalPrefetchUsed()},
                 {"prefetch_wasted", c.TotalPrefetchWasted()},
                 {"hit_rate", accesses > 0 ? static_cast<double>(c.TotalHits()) / accesses : 0.0},
                 {"hit_assignments", c.TotalHitAssignments()},
                 {"miss_assignments", c.TotalMissAssignments()},
                 {"bytes_transferred", c.bytes_transferred},
                 {"load_seconds", c.load_seconds},
                 {"stall_seconds", c.stall_seconds},
                 {"resident_experts", c.resident_experts},
                 {"capacity_experts", c.capacity_experts}};
  return j;
}

// The prompts of one run as token ids: the one prompt, or every non-empty line of --prompts-file.
std::optional<ArgError> ReadPrompts(const Args& a, const Tokenizer& tokenizer, int vocab,
                                    std::vector<std::vector<int32_t>>& prompts) {
  std::vector<std::string> texts;
  if (a.prompt_ids) {
    prompts.emplace_back();
    if (auto err = ParseIds(*a.prompt_ids, vocab, prompts.back())) return err;
  } else if (a.prompt) {
    texts.push_back(*a.prompt);
  } else {
    std::ifstream in(*a.prompts_file);
    if (!in) return ArgError{"--prompts-file: cannot read " + *a.prompts_file};
    for (std::string line; std::getline(in, line);) {
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) texts.push_back(line);
    }
    if (texts.empty()) return ArgError{"--prompts-file: no prompts in " + *a.prompts_file};
  }
  for (const std::string& text : texts) {
    auto ids = tokenizer.Encode(text);
    if (!ids.ok()) return ArgError{"--prompt: " + std::string(ids.status().message())};
    prompts.push_back(*std::move(ids));
  }
  for (const auto& p : prompts) {
    if (p.empty()) return ArgError{"the prompt has no tokens"};
  }
  return std::nullopt;
}

int Run(int argc, char** argv) {
  const cli::Program program{"moe-run", kSynopsis, {"client/moe_run/main.cc"}, "", false};
  if (std::optional<int> exit = cli::HandleCommandLine(program, argc, argv, cli::NoEnv())) return *exit;
  Args a;
  if (auto err = ArgsFromFlags(a)) return Fail(kUsageError, err->message);
  auto backend_kind = ResolveBackendKind(a.backend);
  if (!backend_kind.ok()) {
    return Fail(kUsageError, "--backend " + a.backend + ": " + std::string(backend_kind.status().message()));
  }
  ModelSourceOptions source;
  source.backend = *backend_kind;
  source.tokenizer_dir = a.tokenizer;
  auto opened = OpenModel(a.model, source);
  if (!opened.ok()) return Fail(kUsageError, std::string(opened.status().message()));
  const std::shared_ptr<const Model>* model = &opened->model;
  const std::shared_ptr<const Tokenizer>* tokenizer = &opened->tokenizer;
  const ModelSpec& spec = (*model)->spec;

  std::vector<std::vector<int32_t>> prompts;
  if (auto err = ReadPrompts(a, **tokenizer, spec.vocab_size, prompts)) return Fail(kUsageError, err->message);
  for (const auto& prompt : prompts) {
    const int64_t context = static_cast<int64_t>(prompt.size()) + a.max_tokens;
    if (spec.max_position_embeddings > 0 && context > spec.max_position_embeddings) {
      return Fail(kUsageError, absl::StrFormat("prompt (%d tokens) + --max-tokens %d exceeds the context of %d",
                                               prompt.size(), a.max_tokens, spec.max_position_embeddings));
    }
  }
  if (!a.stats_out.empty()) {
    std::ofstream probe(a.stats_out);
    if (!probe) return Fail(kUsageError, "--stats-out: cannot write " + a.stats_out);
  }

  BackendOptions bo;
  bo.num_threads = a.threads;
  bo.cpu_kernels = a.cpu_kernels;
  bo.moe_capacity_factor = a.capacity_factor;
  bo.expert_cache_slots = a.cache_slots;
  bo.expert_cache_policy = a.cache_policy;
  bo.expert_cache_prefetch = a.cache_prefetch;
  auto backend = CreateBackend(*backend_kind, *model, bo);
  if (!backend.ok()) {
    return Fail(kUsageError, "--backend " + a.backend + ": " + std::string(backend.status().message()));
  }
  StatsBackend stats(**backend);

  GenerateOptions go;
  go.max_tokens = a.max_tokens;
  go.sampling = a.sampling;
  go.eos_ids = ModelEosIds(spec, **tokenizer);
  go.want_prompt_logits = !a.logits_out.empty();
  for (const auto& prompt : prompts) {
    IncrementalDetokenizer detok(**tokenizer);
    go.on_token = nullptr;
    if (!a.json) {
      go.on_token = [&](int32_t id) {
        if (EndsAtEos(go.eos_ids, id, go.ignore_eos)) return true;  // the EOS has no text
        std::fputs(detok.Push(id).c_str(), stdout);
        std::fflush(stdout);
        return true;
      };
    }
    auto result = Generate(stats, prompt, go);
    if (!result.ok()) return Fail(kRuntimeError, std::string(result.status().message()));

    if (!a.logits_out.empty()) {
      std::ofstream out(a.logits_out);
      if (!out) return Fail(kUsageError, "--logits-out: cannot write " + a.logits_out);
      out << '[';
      for (size_t i = 0; i < result->prompt_logits.size(); ++i) {
        out << (i ? "," : "") << absl::StrFormat("%.9g", result->prompt_logits[i]);
      }
      out << "]\n";
      if (!out) return Fail(kRuntimeError, "--logits-out: write failed for " + a.logits_out);
    }
    if (a.json) {
      nlohmann::json j;
      j["prompt_ids"] = prompt;
      j["output_ids"] = result->output_ids;
      j["text"] = (*tokenizer)->Decode(result->text_ids());
      std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
      std::cout << detok.Finish() << "\n";
    }
  }
  if (!a.stats_out.empty()) {
    std::ofstream out(a.stats_out);
    out << StatsJson(a, stats).dump(1) << "\n";
    if (!out) return Fail(kRuntimeError, "--stats-out: write failed for " + a.stats_out);
  }
  return 0;
}

}  // namespace
}  // namespace moed

int main(int argc, char** argv) { return moed::Run(argc, argv); }
