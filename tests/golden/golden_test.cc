// Golden tests: the CPU backend, with its reference and its fast kernels, against transformers' float32 logits and
// greedy tokens for every fixture family and the built-in fortune-moe model, through whole, chunked and
// token-by-token prefill.
#include <cmath>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "engine/backend/backend.h"
#include "engine/model/model.h"
#include "engine/runtime/generate.h"
#include "engine/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace moed {
namespace {

// A greedy step whose top-2 margin is below this may legitimately flip: compare tokens up to it.
constexpr float kMarginTolerance = 1e-3f;

// One golden checkpoint and the logit error its data needs. Measured max |logit - golden| (fp32 CPU, with the
// goldens rounded to 1e-6): ~1.5e-6 on the tiny fixtures, 1.1e-5 on fortune-moe (larger, trained logits). The
// bounds leave ~10x (fixtures) and ~4x (fortune-moe) of margin; a wrong q/k-norm epsilon (1e-6 for 1e-5) gives
// ~4e-5 on tiny-qwen3-moe and fails. The same bound holds chunked and token-by-token prefill to the whole prompt.
// --cpu-kernels fast rounds the routed experts' inputs to bf16 (relative error ≤ 2⁻⁹ each). Measured max
// |logit - golden| (and the same from the reference): 3.9e-4 to 4.6e-3 on the fixtures (MLA ones run the reference:
// unchanged), 0.0267 on fortune-moe; greedy equal everywhere. The bounds leave ~2x.
constexpr float kFixtureBf16Tolerance = 1e-2f;
constexpr float kFortuneBf16Tolerance = 5e-2f;

struct Golden {
  std::string dir;        // relative to the source tree
  float logit_tolerance;  // max |logit - golden| allowed at the last prompt position
  // --cpu-kernels fast (routed experts' inputs rounded to bf16): max |logit - golden| and |logit - reference|.
  float bf16_tolerance = kFixtureBf16Tolerance;
};

void PrintTo(const Golden& g, std::ostream* os) { *os << g.dir; }

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return nlohmann::json::parse(in);
}

float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

// Greedy continuation and the logits at the last prompt position.
GenerateResult RunGreedy(Backend& backend, const std::vector<int32_t>& prompt, int max_tokens, int chunk) {
  GenerateOptions o;
  o.max_tokens = max_tokens;
  o.sampling.temperature = 0;
  o.ignore_eos = true;  // the goldens run a fixed number of steps
  o.prefill_chunk = chunk;
  o.want_prompt_logits = true;
  auto r = Generate(backend, prompt, o);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *std::move(r) : GenerateResult{};
}

class GoldenTest : public ::testing::TestWithParam<Golden> {
 protected:
  std::string Dir() const { return std::string(MOED_SOURCE_DIR) + "/" + GetParam().dir; }
};

// reference and fast-fp32 are held to the same bound: the fixtures' weights are bf16 and both multiply them exactly
// into fp32 sums, so only the summation order differs (fast-fp32: measured ≤ 2.3e-6 from the goldens; MLA layers run
// the reference in both). fast rounds the routed experts' inputs to bf16: its own measured bounds (above), within the
// issue's 2e-2 on the fixtures; greedy equal on every case.
TEST_P(GoldenTest, LogitsAndGreedyMatchTransformers) {
  auto model = LoadModel(Dir());
  ASSERT_TRUE(model.ok()) << model.status();
  const nlohmann::json golden = ReadJson(Dir() + "/golden.json");
  const bool fortune = golden["cases"][0].contains("greedy_ids");
  std::vector<std::vector<float>> reference_logits;  // per case, from the reference pass
  for (const char* kernels : {"reference", "fast-fp32", "fast"}) {
    SCOPED_TRACE(std::string("--cpu-kernels ") + kernels);
    const bool bf16 = std::string(kernels) == "fast";
    const float tolerance = bf16 ? GetParam().bf16_tolerance : GetParam().logit_tolerance;
    BackendOptions bo;
    bo.cpu_kernels = kernels;
    auto backend = CreateBackend("cpu", *model, bo);
    ASSERT_TRUE(backend.ok()) << backend.status();
    float worst = 0, worst_chunked = 0, worst_vs_reference = 0;
    size_t case_index = 0;
    for (const auto& c : golden["cases"]) {
      const auto ids = c["input_ids"].get<std::vector<int32_t>>();
      SCOPED_TRACE(c["prompt"].get<std::string>().substr(0, 60) + " (" + std::to_string(ids.size()) + " tokens)");
      const auto want_logits = c["last_logits"].get<std::vector<float>>();
      std::vector<int32_t> want_greedy;
      std::vector<float> margins;
      if (fortune) {
        want_greedy = c["greedy_ids"].get<std::vector<int32_t>>();
        margins.assign(want_greedy.size(), INFINITY);  // no margins given: every token must match
      } else {
        for (const auto& g : c["greedy"]) {
          want_greedy.push_back(g["token"].get<int32_t>());
          margins.push_back(g["margin"].get<float>());
        }
      }
      const GenerateResult whole = RunGreedy(**backend, ids, static_cast<int>(want_greedy.size()), 512);
      const float err = MaxAbsDiff(whole.prompt_logits, want_logits);
      EXPECT_LE(err, tolerance);
      worst = std::max(worst, err);
      if (std::string(kernels) == "reference") {
        reference_logits.push_back(whole.prompt_logits);
      } else {
        const float d = MaxAbsDiff(whole.prompt_logits, reference_logits[case_index]);
        EXPECT_LE(d, tolerance) << kernels << " vs reference";
        worst_vs_reference = std::max(worst_vs_reference, d);
      }
      ++case_index;
      ASSERT_EQ(whole.output_ids.size(), want_greedy.size());
      for (size_t i = 0; i < want_greedy.size(); ++i) {
        if (margins[i] < kMarginTolerance) break;  // a near-tie: either token is right from here on
        if (whole.output_ids[i] != want_greedy[i]) {  // later steps follow from a different token: stop comparing
          ADD_FAILURE() << "greedy step " << i << ": " << whole.output_ids[i] << " != golden " << want_greedy[i];
          break;
        }
      }
      // Chunked prefill (3 tokens per step) and one token per step reach the same logits.
      for (int chunk : {3, 1}) {
        const GenerateResult part = RunGreedy(**backend, ids, 0, chunk);
        const float d = MaxAbsDiff(part.prompt_logits, whole.prompt_logits);
        EXPECT_LE(d, GetParam().logit_tolerance) << "prefill chunk " << chunk;  // batch-invariant kernels: ~exact
        worst_chunked = std::max(worst_chunked, d);
      }
    }
    std::cout << "[golden] " << GetParam().dir << " (" << kernels << "): max |logit - golden| = " << worst
              << ", max |chunked - whole| = " << worst_chunked;
    if (std::string(kernels) != "reference") {
      std::cout << ", max |" << kernels << " - reference| = " << worst_vs_reference;
    }
    std::cout << "\n";
    RecordProperty(std::string("max_logit_error_") + kernels, std::to_string(worst));
  }
}

TEST(GoldenFortuneTest, GreedyTextMatches) {
  const std::string dir = std::string(MOED_SOURCE_DIR) + "/models/fortune-moe";
  auto model = LoadModel(dir);
  ASSERT_TRUE(model.ok()) << model.status();
  auto tokenizer = LoadTokenizer(dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  for (const char* kernels : {"reference", "fast-fp32", "fast"}) {
    SCOPED_TRACE(std::string("--cpu-kernels ") + kernels);
    BackendOptions bo;
    bo.cpu_kernels = kernels;
    auto backend = CreateBackend("cpu", *model, bo);
    ASSERT_TRUE(backend.ok()) << backend.status();
    for (const auto& c : ReadJson(dir + "/golden.json")["cases"]) {
      SCOPED_TRACE(c["prompt"].get<std::string>());
      auto ids = (*tokenizer)->Encode(c["prompt"].get<std::string>());
      ASSERT_TRUE(ids.ok()) << ids.status();
      EXPECT_EQ(*ids, c["input_ids"].get<std::vector<int32_t>>());
      GenerateOptions o;
      o.max_tokens = 32;
      o.sampling.temperature = 0;
      o.eos_ids = (*tokenizer)->eos_ids();
      auto r = Generate(**backend, *ids, o);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ((*tokenizer)->Decode(r->text_ids()), c["greedy_text"].get<std::string>());
    }
  }
}

constexpr float kFixtureTolerance = 2e-5f;
constexpr float kFortuneTolerance = 5e-5f;

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenTest,
                         ::testing::Values(Golden{"tests/fixtures/tiny-mixtral", kFixtureTolerance},
                                           Golden{"tests/fixtures/tiny-qwen2-moe", kFixtureTolerance},
                                           Golden{"tests/fixtures/tiny-qwen3-moe", kFixtureTolerance},
                                           Golden{"tests/fixtures/tiny-olmoe", kFixtureTolerance},
                                           Golden{"tests/fixtures/tiny-qwen3-moe-long", kFixtureTolerance},
                                           Golden{"tests/fixtures/tiny-mixtral-swa", kFixtureTolerance},
                                           Golden{"tests/fixtures/tiny-mixtral-hd24", kFixtureTolerance},
                                           Golden{"tests/fixtures/tiny-qwen2-moe-dense", kFixtureTolerance},
                                           // MLA + YaRN, greedy / group-limited / noaux_tc routing, shared experts,
                                           // a dense first layer: measured 1.5e-6 to 1.9e-6 (the issue asks ≤ 5e-5).
                                           Golden{"tests/fixtures/tiny-deepseek-v2-lite", kFixtureTolerance},
                                           Golden{"tests/fixtures/tiny-deepseek-v2", kFixtureTolerance},
                                           Golden{"tests/fixtures/tiny-deepseek-v3", kFixtureTolerance},
                                           Golden{"models/fortune-moe", kFortuneTolerance, kFortuneBf16Tolerance}),
                         [](const ::testing::TestParamInfo<Golden>& info) {
                           std::string name = info.param.dir.substr(info.param.dir.rfind('/') + 1);
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace moed
