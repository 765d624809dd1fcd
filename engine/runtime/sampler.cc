// Sampler implementation. Candidates are ordered best-first by (logit desc, id asc) so ties are deterministic.
#include "engine/runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_format.h"

namespace moed {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

int32_t Argmax(absl::Span<const float> logits) {
  int32_t best = 0;
  for (int32_t i = 1; i < static_cast<int32_t>(logits.size()); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return best;
}

// log Σ exp(logits), computed in double.
double LogSumExp(absl::Span<const float> logits) {
  const float m = *std::max_element(logits.begin(), logits.end());
  double sum = 0.0;
  for (float v : logits) sum += std::exp(static_cast<double>(v) - m);
  return m + std::log(sum);
}

// Token ids sorted best-first; only the first `k` are guaranteed sorted (k ≤ size).
std::vector<int32_t> BestFirst(absl::Span<const float> logits, int k) {
  std::vector<int32_t> ids(logits.size());
  std::iota(ids.begin(), ids.end(), 0);
  auto better = [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); };
  std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), better);
  ids.resize(k);
  return ids;
}

int32_t SampleFiltered(absl::Span<const float> logits, const SamplingParams& p, int32_t sample_index) {
  const int vocab = static_cast<int>(logits.size());
  const bool need_order = p.top_p < 1.0f || (p.top_k > 0 && p.top_k < vocab);
  std::vector<int32_t> ids;
  if (need_order) {
    ids = BestFirst(logits, p.top_k > 0 ? std::min(p.top_k, vocab) : vocab);
  } else {
    ids.resize(vocab);
    std::iota(ids.begin(), ids.end(), 0);
  }
  const double inv_t = 1.0 / static_cast<double>(p.temperature);
  double m = -INFINITY;
  for (int32_t id : ids) m = std::max(m, logits[id] * inv_t);
  std::vector<double> w(ids.size());
  double total = 0.0;
  for (size_t i = 0; i < ids.size(); ++i) {
    w[i] = std::exp(logits[ids[i]] * inv_t - m);
    total += w[i];
  }
  size_t keep = ids.size();
  if (p.top_p < 1.0f) {
    const double target = static_cast<double>(p.top_p) * total;
    double cum = 0.0;
    for (size_t i = 0; i < ids.size(); ++i) {
      cum += w[i];
      if (cum >= target) {
        keep = i + 1;
        break;
      }
    }
    total = 0.0;
    for (size_t i = 0; i < keep; ++i) total += w[i];
  }
  const double u = CounterUniform(p.seed, static_cast<uint64_t>(sample_index)) * total;
  double cum = 0.0;
  for (size_t i = 0; i < keep; ++i) {
    cum += w[i];
    if (u < cum) return ids[i];
  }
  // Rounding can leave u just above the last cumulative sum: take the last kept candidate with weight.
  for (size_t i = keep; i-- > 0;) {
    if (w[i] > 0.0) return ids[i];
  }
  return ids[0];
}

}  // namespace

absl::Status ValidateSamplingParams(const SamplingParams& p, int vocab_size) {
  if (!std::isfinite(p.temperature) || p.temperature < 0.0f) {
    return absl::InvalidArgumentError(absl::StrFormat("temperature must be a finite number >= 0, got %g", p.temperature));
  }
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) {
    return absl::InvalidArgumentError(absl::StrFormat("top_p must be in (0, 1], got %g", p.top_p));
  }
  if (p.top_k < 0) {
    return absl::InvalidArgumentError(absl::StrFormat("top_k must be >= 0 (0 = no limit), got %d", p.top_k));
  }
  if (p.logprobs < 0 || p.logprobs > vocab_size) {
    return absl::InvalidArgumentError(
        absl::StrFormat("logprobs must be in [0, %d], got %d", vocab_size, p.logprobs));
  }
  return absl::OkStatus();
}

double CounterUniform(uint64_t seed, uint64_t index) {
  const uint64_t bits = SplitMix64(SplitMix64(seed) ^ (index * 0xd1b54a32d192ed03ull + 0x632be59bd9b4e019ull));
  return static_cast<double>(bits >> 11) * (1.0 / 9007199254740992.0);  // 53 random bits
}

SampledToken SampleToken(absl::Span<const float> logits, const SamplingParams& params, int32_t sample_index) {
  SampledToken out;
  if (logits.empty()) return out;
  out.token = params.temperature == 0.0f ? Argmax(logits) : SampleFiltered(logits, params, sample_index);
  const double lse = LogSumExp(logits);
  out.logprob = static_cast<float>(logits[out.token] - lse);
  if (params.logprobs <= 0) return out;
  for (int32_t id : BestFirst(logits, std::min<int>(params.logprobs, logits.size()))) {
    out.top_logprobs.push_back({id, static_cast<float>(logits[id] - lse)});
  }
  return out;
}

}  // namespace moed
