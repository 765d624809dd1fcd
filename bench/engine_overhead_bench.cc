// engine-overhead-bench: one greedy sequence through EngineCore (scheduler, paged KV, output processing — what the
// daemon runs) against Generate on a bare backend (what moe-run runs), same model, prompt, tokens and threads, in
// one process and alternating rounds, so machine noise hits both alike. Prints JSON with ms/token and the ratio.
//
//   engine-overhead-bench [--model models/fortune-moe] [--tokens 512] [--rounds 7] [--threads 1]
//                         [--max-running-seqs 64]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/model/model.h"
#include "engine/runtime/engine_core.h"
#include "engine/runtime/generate.h"
#include "engine/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace moed {
namespace {

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "engine-overhead-bench: %s\n", what.c_str());
  std::exit(2);
}

int Main(int argc, char** argv) {
  std::string model_dir = "models/fortune-moe";
  int tokens = 512, rounds = 7, threads = 1, max_running_seqs = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--model") model_dir = argv[i + 1];
    else if (flag == "--tokens") tokens = std::atoi(argv[i + 1]);
    else if (flag == "--rounds") rounds = std::atoi(argv[i + 1]);
    else if (flag == "--threads") threads = std::atoi(argv[i + 1]);
    else if (flag == "--max-running-seqs") max_running_seqs = std::atoi(argv[i + 1]);
    else Fail("unknown flag " + flag);
  }
  if (tokens < 2 || rounds < 1) Fail("--tokens must be ≥ 2 and --rounds ≥ 1");
  auto model = LoadModel(model_dir);
  if (!model.ok()) Fail(std::string(model.status().message()));
  auto tokenizer = LoadTokenizer(model_dir);
  if (!tokenizer.ok()) Fail(std::string(tokenizer.status().message()));
  std::shared_ptr<const Tokenizer> tok(std::move(*tokenizer));
  const std::vector<int32_t> prompt = *tok->Encode("Never trust a computer you can't throw out a window");

  BackendOptions options;
  options.num_threads = threads;
  auto bare = CreateBackend("cpu", *model, options);
  auto served = CreateBackend("cpu", *model, options);
  if (!bare.ok() || !served.ok()) Fail("cannot create the CPU backend");
  EngineConfig config;
  config.max_running_seqs = max_running_seqs;  // the daemon's default: 64 (it sizes the KV pool)
  config.max_batch_tokens = 512;
  auto engine = EngineCore::Create(std::move(*served), tok, config);
  if (!engine.ok()) Fail(std::string(engine.status().message()));

  GenerateOptions go;
  go.max_tokens = tokens;
  go.ignore_eos = true;
  std::vector<double> generate_s, engine_s;
  for (int r = 0; r < rounds; ++r) {
    auto start = std::chrono::steady_clock::now();
    auto result = Generate(**bare, prompt, go);
    if (!result.ok() || static_cast<int>(result->output_ids.size()) != tokens) Fail("Generate failed");
    generate_s.push_back(Seconds(start));

    EngineRequest request;
    request.request_id = "r" + std::to_string(r);
    request.prompt_ids = prompt;
    request.max_tokens = tokens;
    request.ignore_eos = true;
    start = std::chrono::steady_clock::now();
    if (!(*engine)->AddRequest(request).ok()) Fail("AddRequest failed");
    int produced = 0;
    while ((*engine)->HasUnfinished()) {
      for (const RequestOutput& out : (*engine)->Step()) produced += static_cast<int>(out.new_token_ids.size());
    }
    engine_s.push_back(Seconds(start));
    if (produced != tokens) Fail("EngineCore produced " + std::to_string(produced) + " tokens");
  }
  const double g_best = *std::min_element(generate_s.begin(), generate_s.end()) / tokens;
  const double e_best = *std::min_element(engine_s.begin(), engine_s.end()) / tokens;
  nlohmann::json j = {{"model", model_dir}, {"prompt_tokens", prompt.size()}, {"tokens", tokens},
                      {"rounds", rounds}, {"threads", threads},
                      {"generate_ms_per_token", {{"best", g_best * 1e3}, {"median", Median(generate_s) / tokens * 1e3}}},
                      {"engine_core_ms_per_token", {{"best", e_best * 1e3}, {"median", Median(engine_s) / tokens * 1e3}}},
                      {"ratio_best", g_best / e_best},
                      {"ratio_median", Median(generate_s) / Median(engine_s)}};
  std::printf("%s\n", j.dump(2).c_str());
  return 0;
}

}  // namespace
}  // namespace moed

int main(int argc, char** argv) { return moed::Main(argc, argv); }
