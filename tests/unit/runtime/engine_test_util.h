// Helpers for the EngineCore tests: real models (fortune-moe, fixtures) on the real CPU backend,
// a driver that submits requests at chosen steps and collects every request's outputs.
#pragma once

#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/model/model.h"
#include "engine/runtime/engine_core.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace moed::testing {

inline std::string ModelDir(const std::string& name) {
  if (name == "fortune-moe") return std::string(MOED_SOURCE_DIR) + "/models/fortune-moe";
  return std::string(MOED_SOURCE_DIR) + "/tests/fixtures/" + name;
}

inline nlohmann::json LoadGolden(const std::string& name) {
  std::ifstream in(ModelDir(name) + "/golden.json");
  return nlohmann::json::parse(in);
}

// A loaded model directory, cached for the whole test binary (weights are mmap'd and immutable).
struct LoadedModel {
  std::shared_ptr<const Model> model;
  std::shared_ptr<const Tokenizer> tokenizer;
};

inline const LoadedModel& Load(const std::string& name) {
  static auto* cache = new std::map<std::string, LoadedModel>();
  auto it = cache->find(name);
  if (it != cache->end()) return it->second;
  absl::StatusOr<std::shared_ptr<const Model>> model = LoadModel(ModelDir(name));
  EXPECT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = LoadTokenizer(ModelDir(name));
  EXPECT_TRUE(tok.ok()) << tok.status();
  LoadedModel loaded;
  if (model.ok()) loaded.model = *model;
  if (tok.ok()) loaded.tokenizer = std::shared_ptr<const Tokenizer>(std::move(*tok));
  return (*cache)[name] = loaded;
}

inline BackendOptions TestBackendOptions(float capacity_factor = 0.0f) {
  BackendOptions o;
  o.moe_capacity_factor = capacity_factor;
  o.num_threads = 2;
  return o;
}

inline std::unique_ptr<Backend> MakeBackend(const std::string& name, const BackendOptions& options = TestBackendOptions()) {
  absl::StatusOr<std::unique_ptr<Backend>> b = CreateBackend("cpu", Load(name).model, options);
  EXPECT_TRUE(b.ok()) << b.status();
  return b.ok() ? std::move(*b) : nullptr;
}

inline std::unique_ptr<EngineCore> MakeEngine(const std::string& name, const EngineConfig& config,
                                              const BackendOptions& options = TestBackendOptions()) {
  absl::StatusOr<std::unique_ptr<EngineCore>> e = EngineCore::Create(MakeBackend(name, options), Load(name).tokenizer, config);
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? std::move(*e) : nullptr;
}

// Everything one request streamed.
struct Collected {
  std::vector<int32_t> tokens;
  std::vector<float> logprobs;
  std::vector<std::vector<TokenLogprob>> top_logprobs;
  std::string text;
  std::vector<std::string> text_deltas;
  int outputs = 0;
  bool finished = false;
  FinishReason reason = FinishReason::kNone;
  absl::Status status;
  int32_t prompt_tokens = 0;
  int32_t completion_tokens = 0;
  int32_t cached_tokens = 0;
  std::vector<int32_t> routing;
};

inline void Absorb(std::map<std::string, Collected>& all, const std::vector<RequestOutput>& outs) {
  for (const RequestOutput& o : outs) {
    Collected& c = all[o.request_id];
    EXPECT_FALSE(c.finished) << o.request_id << " reported after finishing";
    ++c.outputs;
    c.tokens.insert(c.tokens.end(), o.new_token_ids.begin(), o.new_token_ids.end());
    c.logprobs.insert(c.logprobs.end(), o.logprobs.begin(), o.logprobs.end());
    c.top_logprobs.insert(c.top_logprobs.end(), o.top_logprobs.begin(), o.top_logprobs.end());
    c.text += o.new_text;
    c.text_deltas.push_back(o.new_text);
    c.finished = o.finished;
    c.reason = o.finish_reason;
    c.status = o.status;
    c.prompt_tokens = o.prompt_tokens;
    c.completion_tokens = o.completion_tokens;
    c.cached_tokens = o.cached_tokens;
    if (!o.routing.empty()) c.routing = o.routing;
  }
}

// Submits request i before step at_step[i] (0 = before the first step), then steps until nothing is
// unfinished. `on_step` (may be empty) sees the engine after every step.
inline std::map<std::string, Collected> RunAll(EngineCore& engine, std::vector<EngineRequest> requests,
                                              std::vector<int> at_step, int max_steps = 5000,
                                              const std::function<void(EngineCore&)>& on_step = {}) {
  std::map<std::string, Collected> all;
  size_t submitted = 0;
  for (int step = 0; step < max_steps; ++step) {
    for (size_t i = 0; i < requests.size(); ++i) {
      if (at_step[i] != step) continue;
      absl::Status s = engine.AddRequest(requests[i]);
      EXPECT_TRUE(s.ok()) << s;
      ++submitted;
    }
    if (submitted == requests.size() && !engine.HasUnfinished()) break;
    Absorb(all, engine.Step());
    if (on_step) on_step(engine);
  }
  EXPECT_FALSE(engine.HasUnfinished()) << "still running after " << max_steps << " steps";
  return all;
}

inline EngineRequest Greedy(const std::string& id, std::vector<int32_t> prompt, int max_tokens) {
  EngineRequest r;
  r.request_id = id;
  r.prompt_ids = std::move(prompt);
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0.0f;
  r.ignore_eos = true;
  return r;
}

}  // namespace moed::testing
