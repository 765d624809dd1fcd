// Prefix caching on the real CPU backend, with and without it: on fortune-moe and every fixture, with shared
// prefixes, under preemption and eviction by a tiny KV pool, and with capacity drops. Greedy and seeded tokens are
// always the same. Logits and logprobs are bit-identical, with the reference and the fast CPU kernels: both are
// batch-invariant (a row's sums never depend on the rows computed beside it: cpu/ops.cc, cpu/kernels/linear.h), so
// the different batches caching makes change nothing. Cached tokens are reported and never routed.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <numeric>
#include <random>

#include "engine/runtime/engine_core.h"
#include "gtest/gtest.h"
#include "tests/unit/runtime/engine_test_util.h"

namespace moed {
namespace {

using testing::Collected;

struct Outcome {
  std::map<std::string, Collected> got;
  EngineStats stats;
};

Outcome RunWith(const std::string& model, EngineConfig config, bool caching, const std::vector<EngineRequest>& requests,
            const std::vector<int>& at_step, const BackendOptions& options = testing::TestBackendOptions()) {
  config.enable_prefix_caching = caching;
  config.model_identity = model;
  auto engine = testing::MakeEngine(model, config, options);
  if (engine == nullptr) return {};
  Outcome run;
  run.got = testing::RunAll(*engine, requests, at_step);
  run.stats = engine->stats();
  EXPECT_EQ(run.stats.kv_blocks_used, 0) << "blocks still held after every request finished";
  return run;
}

// Same tokens, text and ending; logprobs and the top alternatives' logprobs within `bound` (0: bit-identical, and
// the alternatives' ids equal too). Returns the largest logprob difference seen.
float ExpectSame(const Outcome& off, const Outcome& on, float bound) {
  float worst = 0.0f;
  EXPECT_EQ(off.got.size(), on.got.size());
  for (const auto& [id, a] : off.got) {
    if (!on.got.contains(id)) continue;
    const Collected& b = on.got.at(id);
    EXPECT_EQ(a.tokens, b.tokens) << id;
    EXPECT_EQ(a.text, b.text) << id;
    EXPECT_EQ(a.reason, b.reason) << id;
    EXPECT_EQ(a.completion_tokens, b.completion_tokens) << id;
    if (a.logprobs.size() != b.logprobs.size() || a.top_logprobs.size() != b.top_logprobs.size()) {
      ADD_FAILURE() << id << ": different numbers of logprobs";
      continue;
    }
    auto compare = [&](float x, float y, const std::string& what) {
      worst = std::max(worst, std::abs(x - y));
      if (bound == 0.0f) {
        EXPECT_EQ(x, y) << id << " " << what;
      } else {
        EXPECT_NEAR(x, y, bound) << id << " " << what;
      }
    };
    for (size_t i = 0; i < a.logprobs.size(); ++i) compare(a.logprobs[i], b.logprobs[i], "token " + std::to_string(i));
    for (size_t i = 0; i < a.top_logprobs.size(); ++i) {
      EXPECT_EQ(a.top_logprobs[i].size(), b.top_logprobs[i].size()) << id;
      for (size_t j = 0; j < std::min(a.top_logprobs[i].size(), b.top_logprobs[i].size()); ++j) {
        // Best first: the j-th best value is comparable even where a near-tie swaps two ids.
        compare(a.top_logprobs[i][j].logprob, b.top_logprobs[i][j].logprob, "alternative " + std::to_string(j));
        if (bound == 0.0f) EXPECT_EQ(a.top_logprobs[i][j].token, b.top_logprobs[i][j].token) << id;
      }
    }
  }
  return worst;
}
void ExpectIdentical(const Outcome& off, const Outcome& on) { ExpectSame(off, on, 0.0f); }

// `n` requests over `num_prefixes` shared prefixes of `prefix_len` random ids, each with its own 1–12 token tail;
// greedy and seeded sampling alternate; every request asks for 5 alternatives per token.
std::vector<EngineRequest> SharedPrefixRequests(int vocab, int n, int num_prefixes, int prefix_len, int max_tokens,
                                                uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<std::vector<int32_t>> prefixes(num_prefixes);
  for (auto& p : prefixes) {
    for (int i = 0; i < prefix_len; ++i) p.push_back(static_cast<int32_t>(1 + rng() % (vocab - 1)));
  }
  std::vector<EngineRequest> out;
  for (int i = 0; i < n; ++i) {
    EngineRequest r = testing::Greedy("r" + std::to_string(i), prefixes[i % num_prefixes], max_tokens);
    const int tail = 1 + static_cast<int>(rng() % 12);
    for (int t = 0; t < tail; ++t) r.prompt_ids.push_back(static_cast<int32_t>(1 + rng() % (vocab - 1)));
    if (i % 2 == 1) r.sampling = {.temperature = 0.8f, .top_p = 0.9f, .top_k = 20, .seed = 77u + i};
    r.sampling.logprobs = 5;
    out.push_back(r);
  }
  return out;
}

std::vector<int> Staggered(size_t n, int every) {
  std::vector<int> at(n);
  for (size_t i = 0; i < n; ++i) at[i] = static_cast<int>(i) * every;
  return at;
}

// A model and the CPU kernels ("reference" or "fast") it runs on.
class PrefixCacheModelTest : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {
 protected:
  BackendOptions Options() const {
    BackendOptions o = testing::TestBackendOptions();
    o.cpu_kernels = std::get<1>(GetParam());
    return o;
  }
};

TEST_P(PrefixCacheModelTest, SharedPrefixesGiveTheSameOutputWithAndWithoutCaching) {
  const std::string model = std::get<0>(GetParam());
  const int vocab = testing::Load(model).model->spec.vocab_size;
  const std::vector<EngineRequest> requests = SharedPrefixRequests(vocab, 10, 3, 21, 8, 11);
  const std::vector<int> at = Staggered(requests.size(), 2);
  const EngineConfig config{.max_running_seqs = 4, .max_batch_tokens = 24, .kv_block_size = 4};
  const Outcome off = RunWith(model, config, false, requests, at, Options());
  const Outcome on = RunWith(model, config, true, requests, at, Options());
  ExpectIdentical(off, on);
  EXPECT_EQ(off.stats.prefix_cache_hits, 0);
  EXPECT_GT(on.stats.prefix_cache_hits, 0);
  EXPECT_LT(on.stats.prompt_tokens, off.stats.prompt_tokens);
  EXPECT_EQ(off.stats.prompt_tokens - on.stats.prompt_tokens, on.stats.prefix_cache_hits)
      << "every cached token is a prompt token not computed";
  int64_t reported = 0;
  for (const auto& [id, c] : on.got) {
    EXPECT_EQ(c.cached_tokens % 4, 0) << "whole blocks only";
    EXPECT_LT(c.cached_tokens, c.prompt_tokens) << "the last prompt token is always computed";
    reported += c.cached_tokens;
  }
  EXPECT_EQ(reported, on.stats.prefix_cache_hits);  // no preemption here: one admission each
}

TEST_P(PrefixCacheModelTest, TinyKvPoolPreemptsAndEvictsWithoutChangingOutput) {
  const std::string model = std::get<0>(GetParam());
  const int vocab = testing::Load(model).model->spec.vocab_size;
  const std::vector<EngineRequest> requests = SharedPrefixRequests(vocab, 10, 2, 18, 14, 5);
  const std::vector<int> at = Staggered(requests.size(), 1);
  const int64_t bytes_per_block = testing::MakeBackend(model, Options())->KvBytesPerBlock(4);
  // 12 blocks of 4 tokens: one 48-token context; ten requests of up to 44 tokens preempt each other.
  const EngineConfig config{.max_running_seqs = 6, .max_batch_tokens = 20, .max_model_len = 48, .kv_block_size = 4,
                            .kv_cache_bytes = 12 * bytes_per_block};
  const Outcome off = RunWith(model, config, false, requests, at, Options());
  const Outcome on = RunWith(model, config, true, requests, at, Options());
  ExpectIdentical(off, on);
  EXPECT_GT(off.stats.preemptions, 0);
  EXPECT_GT(on.stats.preemptions, 0);
  EXPECT_GT(on.stats.prefix_cache_hits, 0);
}

// One token per step: every row is computed alone, with or without caching, so the outputs are bit-identical,
// alternatives included.
TEST_P(PrefixCacheModelTest, RowAtATimeIsBitIdentical) {
  const std::string model = std::get<0>(GetParam());
  const int vocab = testing::Load(model).model->spec.vocab_size;
  const std::vector<EngineRequest> requests = SharedPrefixRequests(vocab, 6, 2, 13, 6, 17);
  const std::vector<int> at(requests.size(), 0);
  const EngineConfig config{.max_running_seqs = 4, .max_batch_tokens = 1, .kv_block_size = 4};
  const Outcome off = RunWith(model, config, false, requests, at, Options());
  const Outcome on = RunWith(model, config, true, requests, at, Options());
  ExpectIdentical(off, on);
  EXPECT_EQ(on.stats.prefix_cache_hits, 4 * 12);  // requests 2..5 find their prefix's 3 whole blocks
}

INSTANTIATE_TEST_SUITE_P(Models, PrefixCacheModelTest,
                         ::testing::Combine(
                             ::testing::Values("fortune-moe", "tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe",
                                               "tiny-olmoe", "tiny-qwen3-moe-long", "tiny-mixtral-swa",
                                               "tiny-mixtral-hd24", "tiny-qwen2-moe-dense",
                                               // MLA: the cached blocks hold the latent and the rope key
                                               "tiny-deepseek-v2-lite", "tiny-deepseek-v2", "tiny-deepseek-v3"),
                             ::testing::Values("reference", "fast")),
                         [](const auto& info) {
                           std::string n = std::get<0>(info.param) + "_" + std::get<1>(info.param);
                           for (char& ch : n) if (ch == '-') ch = '_';
                           return n;
                         });

// A prefix's KV written by one sequence, read by another that computes only its tail, gives bit-identical logits
// to computing the same chunks in the sequence's own blocks (the cache hands out exactly the KV recomputation
// writes) and to the whole prompt in one chunk (the backend is batch-invariant).
TEST_P(PrefixCacheModelTest, CachedPrefixGivesTheLogitsOfRecomputation) {
  const std::string model = std::get<0>(GetParam());
  std::unique_ptr<Backend> backend = testing::MakeBackend(model, Options());
  ASSERT_NE(backend, nullptr);
  const int kBlock = 4;
  ASSERT_TRUE(backend->InitKvCache({.num_blocks = 16, .block_size = kBlock}).ok());
  std::mt19937 rng(3);
  std::vector<int32_t> prompt;
  for (int i = 0; i < 3 * kBlock + 3; ++i) {
    prompt.push_back(static_cast<int32_t>(1 + rng() % (backend->spec().vocab_size - 1)));
  }
  auto step = [&](int64_t id, std::vector<int32_t> table, int start, int len, bool logits) {
    StepBatch batch;
    batch.token_ids.assign(prompt.begin() + start, prompt.begin() + start + len);
    SequenceStep s;
    s.seq_id = id;
    s.num_tokens = len;
    s.start_pos = start;
    s.block_table = std::move(table);
    s.want_logits = logits;
    batch.seqs = {s};
    StepOutput out;
    EXPECT_TRUE(backend->Step(batch, &out).ok());
    return out.results.empty() ? std::vector<float>() : out.results[0].logits;
  };
  const int n = static_cast<int>(prompt.size());
  const int p = 3 * kBlock;
  const std::vector<float> whole = step(1, {0, 1, 2, 3}, 0, n, true);
  step(2, {4, 5, 6, 7}, 0, p, false);  // the same sequence's own prefix chunk, then its tail
  const std::vector<float> recomputed = step(2, {4, 5, 6, 7}, p, n - p, true);
  step(3, {8, 9, 10}, 0, p, false);    // another sequence writes the prefix blocks
  const std::vector<float> cached = step(4, {8, 9, 10, 11}, p, n - p, true);
  ASSERT_FALSE(cached.empty());
  EXPECT_EQ(recomputed, cached);
  EXPECT_EQ(whole, cached) << "cached prefix vs whole prompt";
}

// With capacity drops, which assignments drop depends on everything the step routes: caching changes the output
// only by changing what is computed together. Served one at a time, with the prefix one budget-sized chunk, the
// steps are the same with and without caching, and so is every output, drops included.
TEST(PrefixCacheTest, CapacityDropsGiveTheSameOutputWhenTheStepsAreTheSame) {
  const std::string model = "fortune-moe";
  const int vocab = testing::Load(model).model->spec.vocab_size;
  std::vector<EngineRequest> requests = SharedPrefixRequests(vocab, 6, 1, 32, 10, 21);
  const EngineConfig config{.max_running_seqs = 1, .max_batch_tokens = 32, .kv_block_size = 16};
  const BackendOptions capacity = testing::TestBackendOptions(/*capacity_factor=*/1.0f);
  const std::vector<int> at(requests.size(), 0);
  const Outcome off = RunWith(model, config, false, requests, at, capacity);
  const Outcome on = RunWith(model, config, true, requests, at, capacity);
  ExpectIdentical(off, on);
  EXPECT_EQ(on.stats.prefix_cache_hits, 5 * 32);
  const auto sum = [](const std::vector<int64_t>& v) { return std::accumulate(v.begin(), v.end(), int64_t{0}); };
  EXPECT_GT(sum(on.stats.dropped), 0);
  EXPECT_GT(sum(off.stats.dropped), sum(on.stats.dropped)) << "the cached prefixes were not routed again";
}

// Prefixes that differ only in their first token share every later block's token ids, never its KV: each block
// is found through the hash chain of everything before it (and the pool compares the predecessor too).
TEST(PrefixCacheTest, BlocksAfterADifferentFirstBlockAreNeverShared) {
  const std::string model = "fortune-moe";
  const int vocab = testing::Load(model).model->spec.vocab_size;
  std::vector<EngineRequest> requests = SharedPrefixRequests(vocab, 8, 1, 24, 6, 29);
  for (size_t i = 0; i < requests.size(); ++i) requests[i].prompt_ids[0] = static_cast<int32_t>(5 + i % 2);
  const std::vector<int> at = Staggered(requests.size(), 3);
  const EngineConfig config{.max_running_seqs = 4, .max_batch_tokens = 32, .kv_block_size = 4};
  const Outcome off = RunWith(model, config, false, requests, at);
  const Outcome on = RunWith(model, config, true, requests, at);
  ExpectIdentical(off, on);
  EXPECT_GT(on.stats.prefix_cache_hits, 0);
}

// A cached prefix is never routed: a request's routing and the engine's counters cover computed tokens only,
// and the request reports how many of its prompt tokens came from the cache.
TEST(PrefixCacheTest, CachedTokensAreReportedAndNeverRouted) {
  const std::string model = "fortune-moe";
  auto engine = testing::MakeEngine(model, {.max_running_seqs = 4, .max_batch_tokens = 64, .kv_block_size = 8,
                                            .enable_prefix_caching = true, .model_identity = model});
  ASSERT_NE(engine, nullptr);
  const ModelSpec& spec = engine->spec();
  const int64_t per_token = int64_t{spec.top_k} * spec.num_layers;
  std::vector<EngineRequest> requests = SharedPrefixRequests(spec.vocab_size, 3, 1, 24, 5, 8);
  for (EngineRequest& r : requests) r.include_routing = true;
  int64_t processed = 0;
  std::map<std::string, Collected> got = testing::RunAll(*engine, requests, {0, 10, 20}, 5000, [&](EngineCore& e) {
    processed += e.stats().last_step_tokens;
  });
  EXPECT_EQ(got["r0"].cached_tokens, 0);
  EXPECT_EQ(got["r1"].cached_tokens, 24);
  EXPECT_EQ(got["r2"].cached_tokens, 24);
  int64_t expected_processed = 0;
  for (const EngineRequest& r : requests) {
    const Collected& c = got[r.request_id];
    const int64_t computed = static_cast<int64_t>(r.prompt_ids.size()) - c.cached_tokens + r.max_tokens - 1;
    expected_processed += computed;
    EXPECT_EQ(std::accumulate(c.routing.begin(), c.routing.end(), int64_t{0}), computed * per_token)
        << r.request_id;
  }
  EXPECT_EQ(processed, expected_processed);
  const auto& routed = engine->stats().routed;
  EXPECT_EQ(std::accumulate(routed.begin(), routed.end(), int64_t{0}), processed * per_token);
  EXPECT_EQ(engine->stats().prefix_cache_hits, 48);
}

// The hot-expert cache's policy (load-aware here) is fed by the router, so it sees exactly the computed tokens: the
// assignments its accesses served add up to the kept assignments of computed tokens, with the prefix cache on, and
// the cached prefix is missing from its view by exactly the assignments it would have had.
TEST(PrefixCacheTest, ExpertCacheSeesComputedTokensOnly) {
  const std::string model = "fortune-moe";
  BackendOptions options = testing::TestBackendOptions();
  options.expert_cache_slots = 4;  // half a layer's experts: evictions every step
  options.expert_cache_policy = "load-aware";
  const int vocab = testing::Load(model).model->spec.vocab_size;
  const std::vector<EngineRequest> requests = SharedPrefixRequests(vocab, 6, 2, 20, 6, 4);
  const std::vector<int> at = Staggered(requests.size(), 3);
  const EngineConfig config{.max_running_seqs = 4, .max_batch_tokens = 32, .kv_block_size = 4};
  const Outcome off = RunWith(model, config, false, requests, at, options);
  const Outcome on = RunWith(model, config, true, requests, at, options);
  ExpectIdentical(off, on);
  ASSERT_GT(on.stats.prefix_cache_hits, 0);
  for (const Outcome* run : {&off, &on}) {
    const auto sum = [](const std::vector<int64_t>& v) { return std::accumulate(v.begin(), v.end(), int64_t{0}); };
    EXPECT_EQ(sum(run->stats.expert_cache.hit_assignments) + sum(run->stats.expert_cache.miss_assignments),
              sum(run->stats.routed) - sum(run->stats.dropped));
  }
  const auto sum = [](const std::vector<int64_t>& v) { return std::accumulate(v.begin(), v.end(), int64_t{0}); };
  const int64_t per_token = int64_t{2} * 4;  // fortune-moe: top-2 of each of 4 layers
  EXPECT_EQ(sum(off.stats.routed) - sum(on.stats.routed), on.stats.prefix_cache_hits * per_token);
}

}  // namespace
}  // namespace moed
