// EngineCore on the real CPU backend with fortune-moe: continuous batching gives the same greedy
// outputs as transformers (golden) and as a single sequence, also under preemption; seeded sampling
// is batch-independent; aborts, deadlines, stop strings, max_tokens, EOS, routing and drop counters.
#include "engine/runtime/engine_core.h"

#include <algorithm>
#include <numeric>
#include <thread>

#include "absl/time/clock.h"
#include "engine/runtime/eos.h"
#include "engine/runtime/generate.h"
#include "gtest/gtest.h"
#include "tests/unit/runtime/engine_test_util.h"

namespace moed {
namespace {

using testing::Collected;
using testing::Greedy;
using testing::Load;
using testing::LoadedModel;
using testing::MakeBackend;
using testing::MakeEngine;
using testing::RunAll;

constexpr char kFortune[] = "fortune-moe";

struct GoldenRequest {
  EngineRequest request;
  std::vector<int32_t> expected;
};

// Ten requests of different prompt lengths: each golden prompt, and each golden prompt extended by
// the first 9 greedy tokens (its greedy continuation is the rest of the golden sequence).
std::vector<GoldenRequest> FortuneGoldenRequests() {
  nlohmann::json golden = testing::LoadGolden(kFortune);
  std::vector<GoldenRequest> out;
  int i = 0;
  for (const nlohmann::json& c : golden["cases"]) {
    std::vector<int32_t> prompt = c["input_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> greedy = c["greedy_ids"].get<std::vector<int32_t>>();
    for (int k : {0, 9}) {
      std::vector<int32_t> p = prompt;
      p.insert(p.end(), greedy.begin(), greedy.begin() + k);
      std::vector<int32_t> expected(greedy.begin() + k, greedy.end());
      out.push_back({Greedy("g" + std::to_string(i++), p, static_cast<int>(expected.size())), expected});
    }
  }
  return out;
}

void ExpectGoldenOutputs(EngineCore& engine, int stagger) {
  std::vector<GoldenRequest> golden = FortuneGoldenRequests();
  std::vector<EngineRequest> requests;
  std::vector<int> at_step;
  for (size_t i = 0; i < golden.size(); ++i) {
    requests.push_back(golden[i].request);
    at_step.push_back(static_cast<int>(i) * stagger);
  }
  std::map<std::string, Collected> got = RunAll(engine, requests, at_step);
  const Tokenizer& tok = *Load(kFortune).tokenizer;
  for (const GoldenRequest& g : golden) {
    const Collected& c = got[g.request.request_id];
    EXPECT_TRUE(c.finished);
    EXPECT_EQ(c.reason, FinishReason::kLength);
    EXPECT_EQ(c.tokens, g.expected) << g.request.request_id;
    EXPECT_EQ(c.text, tok.Decode(c.tokens)) << g.request.request_id;
    EXPECT_EQ(c.completion_tokens, static_cast<int>(g.expected.size()));
    EXPECT_EQ(c.prompt_tokens, static_cast<int>(g.request.prompt_ids.size()));
  }
  EXPECT_EQ(engine.stats().kv_blocks_used, 0);
  EXPECT_EQ(engine.stats().running, 0);
  EXPECT_EQ(engine.stats().waiting, 0);
}

TEST(EngineCoreTest, ConcurrentGreedyMatchesGolden) {
  // A small token budget forces chunked prefill next to the decodes of earlier requests.
  auto engine = MakeEngine(kFortune, {.max_running_seqs = 16, .max_batch_tokens = 24});
  ASSERT_NE(engine, nullptr);
  ExpectGoldenOutputs(*engine, /*stagger=*/2);
  EXPECT_EQ(engine->stats().preemptions, 0);
  EXPECT_EQ(engine->stats().generated_tokens, 5 * 32 + 5 * 23);
  // Fewer steps than the load window: the window holds everything routed since start.
  EXPECT_LT(engine->stats().steps, kLoadWindowSteps);
  EXPECT_EQ(engine->stats().window_routed, engine->stats().routed);
  EXPECT_GT(engine->stats().window_steps, 0);
  EXPECT_LE(engine->stats().window_steps, engine->stats().steps);
}

TEST(EngineCoreTest, GreedyUnderPreemptionStillMatchesGolden) {
  const int bytes_per_block = static_cast<int>(MakeBackend(kFortune)->KvBytesPerBlock(16));
  // Room for 5 blocks of 16 tokens: one 64-token sequence, never all ten at once.
  auto engine = MakeEngine(kFortune, {.max_running_seqs = 16, .max_batch_tokens = 48, .max_model_len = 64,
                                      .kv_block_size = 16, .kv_cache_bytes = int64_t{5} * bytes_per_block});
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->stats().kv_blocks_total, 5);
  ExpectGoldenOutputs(*engine, /*stagger=*/1);
  EXPECT_GT(engine->stats().preemptions, 0);
}

TEST(EngineCoreTest, SeededSamplingIsTheSameAloneAndInABatch) {
  nlohmann::json golden = testing::LoadGolden(kFortune);
  std::vector<EngineRequest> requests;
  for (int i = 0; i < 6; ++i) {
    EngineRequest r;
    r.request_id = "s" + std::to_string(i);
    r.prompt_ids = golden["cases"][i % 5]["input_ids"].get<std::vector<int32_t>>();
    r.max_tokens = 20;
    r.ignore_eos = true;
    r.sampling = {.temperature = 0.9f, .top_p = 0.95f, .top_k = 40, .seed = 1000u + i};
    requests.push_back(r);
  }
  // Alone: single-sequence generation, one fresh backend per request.
  std::vector<std::vector<int32_t>> alone;
  for (const EngineRequest& r : requests) {
    std::unique_ptr<Backend> backend = MakeBackend(kFortune);
    absl::StatusOr<GenerateResult> g = Generate(
        *backend, r.prompt_ids, {.max_tokens = r.max_tokens, .sampling = r.sampling, .ignore_eos = true});
    ASSERT_TRUE(g.ok()) << g.status();
    alone.push_back(g->output_ids);
  }
  EXPECT_NE(alone[0], alone[5]) << "different seeds on the same prompt should differ";
  // Batched, staggered, with a cache small enough to preempt.
  const int bytes_per_block = static_cast<int>(MakeBackend(kFortune)->KvBytesPerBlock(8));
  auto engine = MakeEngine(kFortune, {.max_running_seqs = 8, .max_batch_tokens = 20, .max_model_len = 40,
                                      .kv_block_size = 8, .kv_cache_bytes = int64_t{8} * bytes_per_block});
  ASSERT_NE(engine, nullptr);
  std::map<std::string, Collected> got = RunAll(*engine, requests, {0, 0, 1, 2, 3, 5});
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(got[requests[i].request_id].tokens, alone[i]) << requests[i].request_id;
  }
  EXPECT_GT(engine->stats().preemptions, 0);
}

TEST(EngineCoreTest, AbortFreesAllBlocks) {
  auto engine = MakeEngine(kFortune, {.max_running_seqs = 8, .max_batch_tokens = 64});
  ASSERT_NE(engine, nullptr);
  for (const char* id : {"a", "b", "c"}) {
    ASSERT_TRUE(engine->AddRequest(Greedy(id, {1, 370, 998, 695, 286}, 100)).ok());
  }
  std::map<std::string, Collected> got;
  for (int i = 0; i < 4; ++i) testing::Absorb(got, engine->Step());
  EXPECT_GT(engine->stats().kv_blocks_used, 0);
  engine->AbortRequest("b");
  engine->AbortRequest("no-such-request");
  testing::Absorb(got, engine->Step());
  EXPECT_TRUE(got["b"].finished);
  EXPECT_EQ(got["b"].reason, FinishReason::kAborted);
  EXPECT_EQ(got["b"].completion_tokens, 4);
  EXPECT_FALSE(got["a"].finished);
  engine->AbortRequest("a");
  engine->AbortRequest("c");
  testing::Absorb(got, engine->Step());
  EXPECT_EQ(got["a"].reason, FinishReason::kAborted);
  EXPECT_EQ(got["c"].reason, FinishReason::kAborted);
  EXPECT_FALSE(engine->HasUnfinished());
  EXPECT_EQ(engine->stats().kv_blocks_used, 0);
  EXPECT_EQ(engine->stats().running, 0);
  // The id is free again once finished.
  EXPECT_TRUE(engine->AddRequest(Greedy("a", {1, 370}, 2)).ok());
}

TEST(EngineCoreTest, DeadlineWhileQueuedNeverPrefills) {
  // The engine's clock is the test's: time moves only when the test moves it, so nothing depends on how long a
  // step takes.
  absl::Time now = absl::FromUnixSeconds(1'000'000);
  EngineConfig config{.max_running_seqs = 1, .max_batch_tokens = 64};
  config.clock = [&now] { return now; };
  auto engine = MakeEngine(kFortune, config);
  ASSERT_NE(engine, nullptr);
  ASSERT_TRUE(engine->AddRequest(Greedy("first", {1, 370, 998, 695}, 30)).ok());
  EngineRequest late = Greedy("late", {1, 370, 998, 695, 286, 710}, 5);
  late.deadline = now + absl::Seconds(1);
  ASSERT_TRUE(engine->AddRequest(late).ok());
  std::map<std::string, Collected> got;
  testing::Absorb(got, engine->Step());  // deadlines are checked when a step starts: "late" still waits
  EXPECT_EQ(engine->stats().waiting, 1);
  now = late.deadline - absl::Nanoseconds(1);
  testing::Absorb(got, engine->Step());
  EXPECT_FALSE(got["late"].finished);  // 1 ns before its deadline
  now = late.deadline;                 // a deadline is passed when it is reached
  testing::Absorb(got, engine->Step());
  ASSERT_TRUE(got["late"].finished);
  EXPECT_EQ(got["late"].reason, FinishReason::kDeadline);
  EXPECT_EQ(got["late"].status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(got["late"].tokens.empty());
  EXPECT_EQ(engine->stats().prompt_tokens, 4);  // only "first" was prefilled
  EXPECT_EQ(engine->stats().waiting, 0);

  // A running request past its deadline is finished too, and its blocks are freed.
  EngineRequest running = Greedy("running", {1, 370}, 50);
  running.deadline = now + absl::Seconds(1);
  ASSERT_TRUE(engine->AddRequest(running).ok());
  engine->AbortRequest("first");
  testing::Absorb(got, engine->Step());  // "first" aborted, "running" admitted
  testing::Absorb(got, engine->Step());
  EXPECT_FALSE(got["running"].finished);
  now = running.deadline;
  testing::Absorb(got, engine->Step());
  EXPECT_EQ(got["running"].reason, FinishReason::kDeadline);
  EXPECT_EQ(engine->stats().kv_blocks_used, 0);
}

// The one Request object carries what a front end attaches (EngineRequest::frontend) and why it was aborted: the
// slot comes back on every output of its request, the engine lets go of it once the request has finished, and
// AbortRequest / AbortAll report their reason (the first one given) as the finished output's status.
struct Tag final : FrontendSlot {
  explicit Tag(std::string n) : name(std::move(n)) {}
  std::string name;
};

TEST(EngineCoreTest, FrontendSlotAndAbortReasonLiveOnTheRequest) {
  auto engine = MakeEngine(kFortune, {.max_running_seqs = 8, .max_batch_tokens = 64});
  ASSERT_NE(engine, nullptr);
  std::map<std::string, std::weak_ptr<FrontendSlot>> held;
  for (const char* id : {"a", "b", "c", "d"}) {
    EngineRequest r = Greedy(id, {1, 370, 998, 695, 286}, id == std::string("d") ? 3 : 100);
    r.frontend = std::make_shared<Tag>(id);
    held[id] = r.frontend;
    ASSERT_TRUE(engine->AddRequest(std::move(r)).ok());
  }
  std::map<std::string, RequestOutput> last;
  for (int i = 0; i < 3 || engine->HasUnfinished(); ++i) {
    if (i == 3) {
      engine->AbortRequest("a", absl::ResourceExhaustedError("cut"));
      engine->AbortRequest("a", absl::CancelledError("a later reason loses"));
      engine->AbortRequest("b");
    }
    if (i == 4) engine->AbortAll(absl::UnavailableError("shutting down"));
    for (RequestOutput& out : engine->Step()) {
      ASSERT_NE(out.frontend, nullptr) << out.request_id;
      EXPECT_EQ(static_cast<Tag&>(*out.frontend).name, out.request_id);
      last[out.request_id] = std::move(out);
    }
  }
  EXPECT_EQ(last["d"].finish_reason, FinishReason::kLength);
  EXPECT_TRUE(last["d"].status.ok());
  EXPECT_EQ(last["a"].finish_reason, FinishReason::kAborted);
  EXPECT_EQ(last["a"].status, absl::ResourceExhaustedError("cut"));
  EXPECT_EQ(last["b"].finish_reason, FinishReason::kAborted);
  EXPECT_TRUE(last["b"].status.ok());  // aborted without a reason
  EXPECT_EQ(last["c"].finish_reason, FinishReason::kAborted);
  EXPECT_EQ(last["c"].status, absl::UnavailableError("shutting down"));
  last.clear();  // the outputs' references
  for (const auto& [id, slot] : held) EXPECT_TRUE(slot.expired()) << id << ": the engine still holds its slot";
}

// Greedy text of golden case `c` for `n` tokens, from the engine itself.
Collected RunOne(EngineCore& engine, EngineRequest r) {
  std::string id = r.request_id;
  return RunAll(engine, {std::move(r)}, {0})[id];
}

TEST(EngineCoreTest, StopStringsEndTheTextAndAreNeverEmitted) {
  auto engine = MakeEngine(kFortune, {.max_running_seqs = 8});
  ASSERT_NE(engine, nullptr);
  std::vector<int32_t> prompt = testing::LoadGolden(kFortune)["cases"][0]["input_ids"].get<std::vector<int32_t>>();
  Collected full = RunOne(*engine, Greedy("full", prompt, 32));
  ASSERT_GT(full.text.size(), 30u);
  // A stop string straddling tokens in the middle of the text, and a later one that must lose.
  const std::string stop = full.text.substr(12, 5);
  const std::string later = full.text.substr(25, 3);
  const std::string expected = full.text.substr(0, full.text.find(stop));
  EngineRequest r = Greedy("stopped", prompt, 32);
  r.stop = {later, stop};
  Collected got = RunOne(*engine, r);
  EXPECT_EQ(got.reason, FinishReason::kStop);
  EXPECT_EQ(got.text, expected);
  for (const std::string& d : got.text_deltas) EXPECT_EQ(d.find(stop), std::string::npos);
  EXPECT_LT(got.tokens.size(), full.tokens.size());
  EXPECT_EQ(got.tokens, std::vector<int32_t>(full.tokens.begin(), full.tokens.begin() + got.tokens.size()));

  // A stop string that never appears: everything held back comes out at the end.
  EngineRequest none = Greedy("none", prompt, 32);
  none.stop = {"\x01never"};
  Collected all = RunOne(*engine, none);
  EXPECT_EQ(all.reason, FinishReason::kLength);
  EXPECT_EQ(all.text, full.text);
}

TEST(EngineCoreTest, MaxTokensEndsWithLength) {
  auto engine = MakeEngine(kFortune, {.max_running_seqs = 8});
  ASSERT_NE(engine, nullptr);
  Collected got = RunOne(*engine, Greedy("m", {1, 370, 998}, 5));
  EXPECT_EQ(got.reason, FinishReason::kLength);
  EXPECT_EQ(got.tokens.size(), 5u);
  EXPECT_EQ(got.completion_tokens, 5);
  EXPECT_TRUE(got.status.ok());
}

TEST(EngineCoreTest, EosEndsGenerationUnlessIgnored) {
  // fortune-moe never produces its EOS greedily, so the test declares one of its greedy tokens EOS in a copy
  // of the model's spec (as a config.json with that eos_token_id would) and runs the real weights.
  const LoadedModel& fortune = Load(kFortune);
  const std::vector<int32_t> prompt = *fortune.tokenizer->Encode("Never trust a computer");
  auto plain = MakeEngine(kFortune, {.max_running_seqs = 8});
  ASSERT_NE(plain, nullptr);
  const std::vector<int32_t> greedy = RunOne(*plain, Greedy("plain", prompt, 16)).tokens;
  ASSERT_EQ(greedy.size(), 16u);
  size_t stop_at = 3;  // the first token from index 3 on that did not occur before it
  while (stop_at < greedy.size() &&
         std::find(greedy.begin(), greedy.begin() + stop_at, greedy[stop_at]) != greedy.begin() + stop_at) {
    ++stop_at;
  }
  ASSERT_LT(stop_at, greedy.size());

  auto model = std::make_shared<Model>(*fortune.model);
  model->spec.eos_token_ids = {greedy[stop_at]};
  absl::StatusOr<std::unique_ptr<Backend>> backend = CreateBackend("cpu", model, testing::TestBackendOptions());
  ASSERT_TRUE(backend.ok()) << backend.status();
  absl::StatusOr<std::unique_ptr<EngineCore>> engine =
      EngineCore::Create(*std::move(backend), fortune.tokenizer, {.max_running_seqs = 8});
  ASSERT_TRUE(engine.ok()) << engine.status();

  EngineRequest stop = Greedy("eos", prompt, 16);
  stop.ignore_eos = false;
  Collected c = RunOne(**engine, stop);
  EXPECT_EQ(c.reason, FinishReason::kEos);
  EXPECT_EQ(c.tokens, std::vector<int32_t>(greedy.begin(), greedy.begin() + stop_at + 1));
  EXPECT_EQ(c.completion_tokens, static_cast<int>(stop_at) + 1);
  EXPECT_EQ(c.text, fortune.tokenizer->Decode(std::vector<int32_t>(greedy.begin(), greedy.begin() + stop_at)))
      << "the EOS token's text is not emitted";

  c = RunOne(**engine, Greedy("ignore", prompt, 16));  // Greedy() sets ignore_eos
  EXPECT_EQ(c.reason, FinishReason::kLength);
  EXPECT_EQ(c.tokens, greedy);
}

// Generate and the engine core apply the one EOS rule (engine/runtime/eos.h) on a model that reaches EOS: the same
// tokens, EOS last, the same logprobs, and the EOS adds no text.
TEST(EngineCoreTest, EosIsHandledAsGenerateHandlesIt) {
  const LoadedModel& fortune = Load(kFortune);
  const std::vector<int32_t> prompt = *fortune.tokenizer->Encode("Never trust a computer");
  absl::StatusOr<GenerateResult> plain = Generate(*MakeBackend(kFortune), prompt,
                                                  {.max_tokens = 16, .sampling = {.temperature = 0.0f}});
  ASSERT_TRUE(plain.ok()) << plain.status();
  ASSERT_FALSE(plain->stopped_at_eos);
  auto model = std::make_shared<Model>(*fortune.model);
  model->spec.eos_token_ids = {plain->output_ids[5]};  // the sixth greedy token ends the sequence
  const std::vector<int32_t> eos_ids = ModelEosIds(model->spec, *fortune.tokenizer);

  for (const SamplingParams& sampling : {SamplingParams{.temperature = 0.0f},
                                         SamplingParams{.temperature = 0.7f, .top_k = 8, .seed = 3}}) {
    absl::StatusOr<std::unique_ptr<Backend>> backend = CreateBackend("cpu", model, testing::TestBackendOptions());
    ASSERT_TRUE(backend.ok()) << backend.status();
    absl::StatusOr<GenerateResult> generated =
        Generate(**backend, prompt, {.max_tokens = 16, .sampling = sampling, .eos_ids = eos_ids});
    ASSERT_TRUE(generated.ok()) << generated.status();

    backend = CreateBackend("cpu", model, testing::TestBackendOptions());
    ASSERT_TRUE(backend.ok()) << backend.status();
    absl::StatusOr<std::unique_ptr<EngineCore>> engine =
        EngineCore::Create(*std::move(backend), fortune.tokenizer, {.max_running_seqs = 8});
    ASSERT_TRUE(engine.ok()) << engine.status();
    EngineRequest r = Greedy("eos", prompt, 16);
    r.sampling = sampling;
    r.ignore_eos = false;
    const Collected c = RunOne(**engine, r);

    EXPECT_EQ(c.tokens, generated->output_ids);
    EXPECT_EQ(c.logprobs, generated->logprobs);
    EXPECT_EQ(c.reason == FinishReason::kEos, generated->stopped_at_eos);
    EXPECT_EQ(c.text, fortune.tokenizer->Decode(generated->text_ids()));
    if (sampling.temperature == 0.0f) {
      EXPECT_TRUE(generated->stopped_at_eos);
      EXPECT_EQ(generated->output_ids.size(), 6u);
      EXPECT_EQ(generated->output_ids.back(), plain->output_ids[5]);
    }
  }
}

int64_t Sum(const std::vector<int64_t>& v) { return std::accumulate(v.begin(), v.end(), int64_t{0}); }

TEST(EngineCoreTest, RoutingCountsEveryProcessedToken) {
  auto engine = MakeEngine(kFortune, {.max_running_seqs = 8, .max_batch_tokens = 16});
  ASSERT_NE(engine, nullptr);
  const ModelSpec& spec = engine->spec();
  const int64_t per_token = int64_t{spec.top_k} * spec.num_layers;
  std::vector<EngineRequest> requests;
  for (int i = 0; i < 4; ++i) {
    EngineRequest r = Greedy("r" + std::to_string(i), {1, 370, 998, 695, 286, 710, 4022}, 6 + i);
    r.prompt_ids.resize(3 + 4 * i, 303);
    r.include_routing = i % 2 == 0;
    requests.push_back(r);
  }
  int64_t processed = 0;
  std::map<std::string, Collected> got = RunAll(*engine, requests, {0, 0, 1, 3}, 5000, [&](EngineCore& e) {
    processed += e.stats().last_step_tokens;
    EXPECT_EQ(Sum(e.stats().last_step_routed), e.stats().last_step_tokens * per_token);
  });
  EXPECT_EQ(Sum(engine->stats().routed), processed * per_token);
  EXPECT_EQ(Sum(engine->stats().dropped), 0);
  EXPECT_EQ(engine->stats().prompt_tokens, 3 + 7 + 11 + 15);
  for (const EngineRequest& r : requests) {
    const Collected& c = got[r.request_id];
    if (!r.include_routing) {
      EXPECT_TRUE(c.routing.empty());
      continue;
    }
    ASSERT_EQ(c.routing.size(), static_cast<size_t>(spec.num_layers * spec.num_experts));
    // Every prompt token and every generated token but the last went through every layer.
    const int64_t tokens = static_cast<int64_t>(r.prompt_ids.size()) + r.max_tokens - 1;
    EXPECT_EQ(std::accumulate(c.routing.begin(), c.routing.end(), int64_t{0}), tokens * per_token);
  }
}

// The token routing observer sees every computed token once, prompt and generated, with its experts and weights;
// the expert profile counts the same tokens while a step stays within kProfileTokensPerStep.
TEST(EngineCoreTest, EveryComputedTokenReachesTheRoutingObserverAndProfile) {
  struct Seen {
    int32_t token;
    std::vector<int32_t> experts;
    std::vector<float> weights;
  };
  std::map<std::string, std::map<int32_t, Seen>> seen;  // request → position → what the observer got
  int duplicates = 0;
  EngineConfig config{.max_running_seqs = 8, .max_batch_tokens = 16, .enable_prefix_caching = false};
  config.token_routing_observer = [&](const TokenRoutingEvent& e) {
    auto [it, fresh] = seen[std::string(e.request_id)].try_emplace(
        e.position, Seen{e.token, {e.experts.begin(), e.experts.end()}, {e.weights.begin(), e.weights.end()}});
    duplicates += fresh ? 0 : 1;
  };
  auto engine = MakeEngine(kFortune, config);
  ASSERT_NE(engine, nullptr);
  const ModelSpec& spec = engine->spec();
  const size_t per_token = static_cast<size_t>(spec.top_k) * spec.num_layers;
  std::vector<EngineRequest> requests;
  for (int i = 0; i < 3; ++i) {
    EngineRequest r = Greedy("r" + std::to_string(i), {1, 370, 998, 695, 286, 710, 4022}, 4 + i);
    r.prompt_ids.resize(5 + 9 * i, 303);  // 23 tokens: chunked over two steps
    requests.push_back(r);
  }
  std::map<std::string, Collected> got = RunAll(*engine, requests, {0, 0, 2});
  EXPECT_EQ(duplicates, 0);
  std::vector<int64_t> from_events(static_cast<size_t>(spec.num_layers) * spec.num_experts, 0);
  int64_t computed = 0;
  for (const EngineRequest& r : requests) {
    const std::map<int32_t, Seen>& s = seen[r.request_id];
    // Every prompt token and every generated token but the last was computed.
    std::vector<int32_t> tokens = r.prompt_ids;
    tokens.insert(tokens.end(), got[r.request_id].tokens.begin(), got[r.request_id].tokens.end() - 1);
    ASSERT_EQ(s.size(), tokens.size()) << r.request_id;
    for (const auto& [pos, token] : s) {
      ASSERT_LT(pos, static_cast<int32_t>(tokens.size()));
      EXPECT_EQ(token.token, tokens[pos]) << r.request_id << " position " << pos;
      ASSERT_EQ(token.experts.size(), per_token);
      ASSERT_EQ(token.weights.size(), per_token);
      for (size_t a = 0; a < per_token; ++a) {
        ASSERT_GE(token.experts[a], 0);
        EXPECT_GT(token.weights[a], 0.0f);
        ++from_events[a / spec.top_k * spec.num_experts + token.experts[a]];
      }
    }
    computed += static_cast<int64_t>(tokens.size());
  }
  // The events add up to the engine's routed counters, and the profile counted the same tokens.
  EXPECT_EQ(from_events, engine->stats().routed);
  ASSERT_NE(engine->stats().expert_profile, nullptr);
  EXPECT_EQ(engine->stats().expert_profile->tokens, computed);
}

// A step over kProfileTokensPerStep computed tokens feeds an even stride of them to the profiler.
TEST(EngineCoreTest, ProfileSamplesLongPrefillSteps) {
  int observed = 0;
  EngineConfig config{.max_running_seqs = 8, .max_batch_tokens = 1024, .enable_prefix_caching = false};
  config.token_routing_observer = [&](const TokenRoutingEvent&) { ++observed; };
  auto engine = MakeEngine(kFortune, config);
  ASSERT_NE(engine, nullptr);
  EngineRequest r = Greedy("long", {1}, 3);
  r.prompt_ids.resize(600, 303);  // one 600-token step: every 2nd token profiled (300)
  RunAll(*engine, {r}, {0});
  EXPECT_EQ(observed, 600 + 2);   // the trace observer sees all of them, and the two decode inputs
  ASSERT_NE(engine->stats().expert_profile, nullptr);
  EXPECT_EQ(engine->stats().expert_profile->tokens, 300 + 2);
}

TEST(EngineCoreTest, CapacityFactorDropsAreCounted) {
  auto engine = MakeEngine(kFortune, {.max_running_seqs = 8, .max_batch_tokens = 64},
                           testing::TestBackendOptions(/*capacity_factor=*/1.0f));
  ASSERT_NE(engine, nullptr);
  std::vector<EngineRequest> requests;
  const nlohmann::json golden = testing::LoadGolden(kFortune);  // named: a temporary's ["cases"] would dangle
  for (const nlohmann::json& c : golden["cases"]) {
    requests.push_back(Greedy("c" + std::to_string(requests.size()), c["input_ids"].get<std::vector<int32_t>>(), 8));
  }
  int64_t processed = 0;
  RunAll(*engine, requests, {0, 0, 0, 0, 0}, 5000, [&](EngineCore& e) { processed += e.stats().last_step_tokens; });
  const EngineStats& s = engine->stats();
  EXPECT_EQ(Sum(s.routed), processed * engine->spec().top_k * engine->spec().num_layers);
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_GT(Sum(s.dropped), 0);
  for (size_t i = 0; i < s.routed.size(); ++i) EXPECT_LE(s.dropped[i], s.routed[i]);
}

}  // namespace
}  // namespace moed
