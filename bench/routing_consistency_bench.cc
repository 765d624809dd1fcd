// routing-consistency-bench: batch invariance of MoE routing. Each prompt is run alone, one token per step (prompt
// teacher-forced, then greedy decode), recording every token's top-k expert set per layer from the backend's
// per-sequence routing; then the same token stream runs again inside a busy batch of other sequences (chunked
// prefills and decodes) and the sets are compared token by token. Prints JSON: the share of (token, layer) pairs
// whose expert set is identical, per batch size, a repeat of the alone run as a determinism control, and the same
// measure between different prompts as the baseline of unrelated routing.
//
//   routing-consistency-bench [--model models/fortune-moe] [--prompts bench/prompts/fortune_prompts.txt]
//       [--backend cpu] [--threads 2] [--decode 24] [--batch 1,4,16,32] [--prompts-max 8]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "engine/backend/backend.h"
#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace moed {
namespace {

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "routing-consistency-bench: %s\n", what.c_str());
  std::exit(2);
}

// Per token, per layer: the sorted expert ids the token was routed to.
using Trace = std::vector<std::vector<std::vector<int>>>;

std::vector<std::vector<int>> ExpertSets(const std::vector<int32_t>& routing, int layers, int experts) {
  std::vector<std::vector<int>> sets(layers);
  for (int l = 0; l < layers && routing.size() == static_cast<size_t>(layers) * experts; ++l) {
    for (int e = 0; e < experts; ++e) {
      if (routing[static_cast<size_t>(l) * experts + e] > 0) sets[l].push_back(e);
    }
  }
  return sets;
}

struct Runner {
  Backend* backend;
  int block_size = 16;
  int blocks_per_seq = 0;

  // Runs `stream` (token ids fed one per step) as sequence 0, next to `others` (prompts prefilled in chunks of
  // `chunk` tokens, then decoding greedily) as sequences 1..n. Returns sequence 0's trace; `generated` (when not
  // null) receives its greedy tokens after the prompt's `prompt_len` tokens.
  Trace Run(const std::vector<int32_t>& stream, int prompt_len, int decode, const std::vector<std::vector<int32_t>>& others,
            int chunk, std::vector<int32_t>* generated) {
    const ModelSpec& spec = backend->spec();
    struct Seq {
      std::vector<int32_t> tokens;
      int pos = 0;       // tokens already processed
      int sampled = 0;
    };
    std::vector<Seq> seqs(others.size() + 1);
    seqs[0].tokens = std::vector<int32_t>(stream.begin(), stream.begin() + prompt_len);
    for (size_t i = 0; i < others.size(); ++i) seqs[i + 1].tokens = others[i];
    const int target_steps = prompt_len + decode - 1;  // the last sampled token is never fed
    Trace trace;
    SamplingParams greedy;
    greedy.temperature = 0.0f;
    for (int step = 0; step < target_steps; ++step) {
      StepBatch batch;
      for (size_t i = 0; i < seqs.size(); ++i) {
        Seq& s = seqs[i];
        const int limit = blocks_per_seq * block_size;
        const int avail = static_cast<int>(s.tokens.size()) - s.pos;
        int n = i == 0 ? 1 : std::min(avail, chunk);
        if (s.pos + n > limit) n = 0;  // a busy sequence that reached its KV budget just idles
        if (n <= 0) continue;
        SequenceStep st;
        st.seq_id = static_cast<int64_t>(i);
        st.token_offset = static_cast<int32_t>(batch.token_ids.size());
        st.num_tokens = n;
        st.start_pos = s.pos;
        st.block_table.resize(blocks_per_seq);
        std::iota(st.block_table.begin(), st.block_table.end(), static_cast<int32_t>(i) * blocks_per_seq);
        st.sample = s.pos + n == static_cast<int>(s.tokens.size());
        st.sampling = greedy;
        st.sample_index = s.sampled;
        st.want_routing = i == 0;
        batch.token_ids.insert(batch.token_ids.end(), s.tokens.begin() + s.pos, s.tokens.begin() + s.pos + n);
        batch.seqs.push_back(std::move(st));
      }
      StepOutput out;
      if (absl::Status st = backend->Step(batch, &out); !st.ok()) Fail(std::string(st.message()));
      for (size_t k = 0; k < batch.seqs.size(); ++k) {
        const SequenceStep& st = batch.seqs[k];
        Seq& s = seqs[st.seq_id];
        s.pos += st.num_tokens;
        if (st.seq_id == 0) trace.push_back(ExpertSets(out.results[k].routing, spec.num_layers, spec.num_experts));
        if (!st.sample) continue;
        ++s.sampled;
        // Sequence 0 follows `stream` (teacher forcing) once it is longer than the prompt; others decode freely.
        if (st.seq_id == 0) {
          if (generated != nullptr) generated->push_back(out.results[k].token);
          const size_t next = s.tokens.size();
          s.tokens.push_back(next < stream.size() ? stream[next] : out.results[k].token);
        } else {
          s.tokens.push_back(out.results[k].token);
        }
      }
    }
    return trace;
  }
};

int Main(int argc, char** argv) {
  std::string model_dir = "models/fortune-moe", prompts_path = "bench/prompts/fortune_prompts.txt", kind = "cpu";
  int threads = 2, decode = 24, prompts_max = 8;
  std::vector<int> batches = {1, 4, 16, 32};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) Fail("missing value for " + a);
    const std::string v = argv[++i];
    if (a == "--model") model_dir = v;
    else if (a == "--prompts") prompts_path = v;
    else if (a == "--backend") kind = v;
    else if (a == "--threads") threads = std::atoi(v.c_str());
    else if (a == "--decode") decode = std::atoi(v.c_str());
    else if (a == "--prompts-max") prompts_max = std::atoi(v.c_str());
    else if (a == "--batch") {
      batches.clear();
      for (absl::string_view b : absl::StrSplit(v, ',')) {
        int n = 0;
        if (!absl::SimpleAtoi(b, &n) || n < 1) Fail("--batch: bad size " + std::string(b));
        batches.push_back(n);
      }
    } else Fail("unknown flag " + a);
  }
  if (decode < 1) Fail("--decode must be ≥ 1");
  auto model = LoadModel(model_dir);
  if (!model.ok()) Fail(std::string(model.status().message()));
  auto tokenizer = LoadTokenizer(model_dir);
  if (!tokenizer.ok()) Fail(std::string(tokenizer.status().message()));
  BackendOptions options;
  options.num_threads = threads;
  auto backend = CreateBackend(kind, *model, options);
  if (!backend.ok()) Fail(std::string(backend.status().message()));

  std::vector<std::vector<int32_t>> prompts;
  std::ifstream in(prompts_path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto ids = (*tokenizer)->Encode(line);
    if (!ids.ok()) Fail(std::string(ids.status().message()));
    prompts.push_back(*ids);
  }
  if (prompts.size() < 2) Fail("need at least 2 prompts in " + prompts_path);
  const int max_batch = *std::max_element(batches.begin(), batches.end());
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  Runner runner{backend->get(), 16, 0};
  runner.blocks_per_seq = static_cast<int>((2 * longest + decode + 16 + 15) / 16);  // busy sequences decode on
  if (absl::Status st = (*backend)->InitKvCache({runner.blocks_per_seq * max_batch, 16}); !st.ok()) {
    Fail(std::string(st.message()));
  }

  nlohmann::json result = {{"model", model_dir}, {"backend", (*backend)->name()}, {"threads", threads},
                           {"decode_tokens", decode}, {"prompts", std::min<int>(prompts_max, prompts.size())}};
  nlohmann::json rows = nlohmann::json::array();
  int64_t control_same = 0, control_total = 0, other_same = 0, other_total = 0;
  Trace previous;  // the last prompt's alone trace: a baseline for unrelated tokens
  std::vector<int64_t> same(batches.size(), 0), total(batches.size(), 0), tokens_same(batches.size(), 0),
      tokens_total(batches.size(), 0);
  for (int p = 0; p < prompts_max && p < static_cast<int>(prompts.size()); ++p) {
    const std::vector<int32_t>& prompt = prompts[p];
    std::vector<int32_t> generated;
    const Trace alone = runner.Run(prompt, static_cast<int>(prompt.size()), decode, {}, 1, &generated);
    std::vector<int32_t> stream = prompt;
    stream.insert(stream.end(), generated.begin(), generated.end());
    const Trace again = runner.Run(stream, static_cast<int>(prompt.size()), decode, {}, 1, nullptr);
    for (size_t t = 0; t < alone.size(); ++t) {
      for (size_t l = 0; l < alone[t].size(); ++l) {
        control_same += alone[t][l] == again[t][l];
        ++control_total;
      }
    }
    for (size_t t = 0; t < alone.size() && t < previous.size(); ++t) {
      for (size_t l = 0; l < alone[t].size(); ++l) {
        other_same += alone[t][l] == previous[t][l];
        ++other_total;
      }
    }
    previous = alone;
    for (size_t b = 0; b < batches.size(); ++b) {
      std::vector<std::vector<int32_t>> others;
      for (int k = 1; k < batches[b]; ++k) others.push_back(prompts[(p + k) % prompts.size()]);
      const Trace busy = runner.Run(stream, static_cast<int>(prompt.size()), decode, others, 8, nullptr);
      for (size_t t = 0; t < alone.size() && t < busy.size(); ++t) {
        bool all = true;
        for (size_t l = 0; l < alone[t].size(); ++l) {
          const bool eq = alone[t][l] == busy[t][l];
          same[b] += eq;
          ++total[b];
          all = all && eq;
        }
        tokens_same[b] += all;
        ++tokens_total[b];
      }
    }
  }
  for (size_t b = 0; b < batches.size(); ++b) {
    rows.push_back({{"batch", batches[b]}, {"token_layer_pairs", total[b]},
                    {"identical_expert_sets", total[b] ? static_cast<double>(same[b]) / total[b] : 0.0},
                    {"tokens_identical_in_every_layer",
                     tokens_total[b] ? static_cast<double>(tokens_same[b]) / tokens_total[b] : 0.0}});
  }
  result["batches"] = rows;
  result["control_alone_twice"] = control_total ? static_cast<double>(control_same) / control_total : 0.0;
  // The same measure between two different prompts, position by position: what "not the same routing" looks like.
  result["baseline_different_prompts"] = other_total ? static_cast<double>(other_same) / other_total : 0.0;
  std::printf("%s\n", result.dump(2).c_str());
  return 0;
}

}  // namespace
}  // namespace moed

int main(int argc, char** argv) { return moed::Main(argc, argv); }
