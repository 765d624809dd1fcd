// A CPU forward pass of one sequence that rounds to bf16 exactly where the CUDA backend stores bf16 — the normalised
// activations, K and V in the cache, the attention output, each FFN's gate/up projection and its SwiGLU output — and
// keeps fp32 everywhere else, as the backend does. Built from the CPU backend's fp32 ops. With a noise seed, each
// value is perturbed by up to ±4 fp32 ulps before it is rounded: a model of the backend's other fp32 summation
// orders (cuBLAS, block reductions, __expf), giving another bf16 realization of the same computation. The GPU tests
// bound the CUDA backend's logits by these realizations' distance from the fp32 CPU backend: what bf16 costs on the
// data, rounding flips included.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "engine/backend/cpu/cpu_weights.h"
#include "engine/backend/cpu/ops.h"
#include "engine/model/dtype.h"
#include "engine/model/model.h"
#include "engine/model/rope.h"
#include "engine/moe/router.h"
#include "gtest/gtest.h"

namespace moed::gpu_test {

class Bf16Reference {
 public:
  // round_like_gpu = false: no rounding at all, so the result must equal the fp32 CPU backend (a self-check).
  // noise_seed ≠ 0: perturb before rounding (see above), deterministically per seed.
  Bf16Reference(const Model& model, bool round_like_gpu, uint32_t noise_seed = 0)
      : spec_(model.spec), round_(round_like_gpu), noise_(noise_seed != 0), rng_(noise_seed) {
    auto w = cpu::ConvertWeights(model);
    EXPECT_TRUE(w.ok()) << w.status();
    if (w.ok()) w_ = std::move(w).value();
    inv_freq_ = RopeInvFreq(spec_.attention.rope);
    k_.resize(spec_.num_layers);
    v_.resize(spec_.num_layers);
  }

  struct Output {
    std::vector<float> logits;     // (vocab) of the last token of the call
    std::vector<int32_t> routing;  // (layers * experts) router assignments of this call's tokens
  };

  // Feeds `ids` at the sequence's next positions (no capacity limit: every assignment kept).
  Output Run(const std::vector<int32_t>& ids) {
    const ModelSpec& s = spec_;
    const int n = static_cast<int>(ids.size()), H = s.hidden_size, E = std::max(0, s.num_experts);
    Output out;
    out.routing.assign(static_cast<size_t>(s.num_layers) * E, 0);
    std::vector<float> x(static_cast<size_t>(n) * H), xn(x.size()), delta(x.size());
    for (int t = 0; t < n; ++t) std::copy_n(w_.embed.data() + static_cast<int64_t>(ids[t]) * H, H, x.data() + t * H);
    for (int l = 0; l < s.num_layers; ++l) {
      const cpu::CpuLayer& L = w_.layers[l];
      cpu::RmsNormTo(x.data(), n, H, L.input_norm.data(), s.rms_norm_eps, xn.data());
      Round(xn);
      Attention(l, n, xn, delta);
      for (size_t i = 0; i < x.size(); ++i) x[i] += delta[i];
      cpu::RmsNormTo(x.data(), n, H, L.post_attn_norm.data(), s.rms_norm_eps, xn.data());
      Round(xn);
      std::fill(delta.begin(), delta.end(), 0.0f);
      if (!s.layer_is_moe[l]) {
        Ffn(L.dense_mlp, xn.data(), n, delta.data(), 1.0f);
      } else {
        Moe(l, n, xn, delta, out.routing);
      }
      for (size_t i = 0; i < x.size(); ++i) x[i] += delta[i];
    }
    std::vector<float> last(x.end() - H, x.end()), logits(s.vocab_size);
    cpu::RmsNorm(last.data(), 1, H, w_.final_norm.data(), s.rms_norm_eps);
    Round(last);
    cpu::MatMul(last.data(), 1, H, w_.lm_head.data(), s.vocab_size, nullptr, logits.data(), nullptr);
    out.logits = std::move(logits);
    pos_ += n;
    return out;
  }

 private:
  void Round(std::vector<float>& v) {
    if (!round_) return;
    std::uniform_real_distribution<float> ulps(-4.0f, 4.0f);
    for (float& f : v) {
      if (noise_) f *= 1.0f + ulps(rng_) * std::ldexp(1.0f, -23);
      f = Bf16ToFloat(FloatToBf16(f));
    }
  }

  // delta (n, H) = o_proj(attention(xn)); appends this call's K/V (rounded) to the layer's cache.
  void Attention(int l, int n, const std::vector<float>& xn, std::vector<float>& delta) {
    const ModelSpec& s = spec_;
    const cpu::CpuLayer& L = w_.layers[l];
    const AttentionSpec& a = s.attention;
    const int H = s.hidden_size, qd = a.q_dim(), kvd = a.kv_dim(), hd = a.head_dim;
    std::vector<float> q(static_cast<size_t>(n) * qd), k(static_cast<size_t>(n) * kvd), v(k.size());
    cpu::MatMul(xn.data(), n, H, L.q_proj.data(), qd, L.q_bias.empty() ? nullptr : L.q_bias.data(), q.data(), nullptr);
    cpu::MatMul(xn.data(), n, H, L.k_proj.data(), kvd, L.k_bias.empty() ? nullptr : L.k_bias.data(), k.data(),
                nullptr);
    cpu::MatMul(xn.data(), n, H, L.v_proj.data(), kvd, L.v_bias.empty() ? nullptr : L.v_bias.data(), v.data(),
                nullptr);
    if (a.qk_norm == QkNorm::kPerHead) {
      cpu::RmsNorm(q.data(), static_cast<int64_t>(n) * a.num_heads, hd, L.q_norm.data(), s.rms_norm_eps);
      cpu::RmsNorm(k.data(), static_cast<int64_t>(n) * a.num_kv_heads, hd, L.k_norm.data(), s.rms_norm_eps);
    } else if (a.qk_norm == QkNorm::kFull) {
      cpu::RmsNorm(q.data(), n, qd, L.q_norm.data(), s.rms_norm_eps);
      cpu::RmsNorm(k.data(), n, kvd, L.k_norm.data(), s.rms_norm_eps);
    }
    for (int t = 0; t < n; ++t) {
      for (int h = 0; h < a.num_heads; ++h) ApplyRope(a.rope, inv_freq_.data(), pos_ + t, &q[t * qd + h * hd]);
      for (int h = 0; h < a.num_kv_heads; ++h) ApplyRope(a.rope, inv_freq_.data(), pos_ + t, &k[t * kvd + h * hd]);
    }
    Round(k);
    Round(v);
    k_[l].insert(k_[l].end(), k.begin(), k.end());
    v_[l].insert(v_[l].end(), v.begin(), v.end());
    std::vector<float> attn(static_cast<size_t>(n) * qd), scores;
    const int group = a.num_heads / a.num_kv_heads;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    for (int t = 0; t < n; ++t) {
      const int pos = pos_ + t;
      const int lo = a.sliding_window > 0 ? std::max(0, pos - a.sliding_window + 1) : 0;
      for (int h = 0; h < a.num_heads; ++h) {
        const float* qh = &q[t * qd + h * hd];
        const int64_t off = static_cast<int64_t>(h / group) * hd;
        scores.assign(pos - lo + 1, 0.0f);
        for (int p = lo; p <= pos; ++p) scores[p - lo] = cpu::Dot(qh, &k_[l][p * kvd + off], hd) * scale;
        cpu::Softmax(scores.data(), static_cast<int64_t>(scores.size()));
        float* o = &attn[t * qd + h * hd];
        for (int p = lo; p <= pos; ++p) {
          for (int d = 0; d < hd; ++d) o[d] += scores[p - lo] * v_[l][p * kvd + off + d];
        }
      }
    }
    Round(attn);
    cpu::MatMul(attn.data(), n, qd, L.o_proj.data(), H, nullptr, delta.data(), nullptr);
  }

  // y (n, H) += scale · down(bf16(silu(bf16(gate x)) · bf16(up x))) per row.
  void Ffn(const cpu::CpuFfn& f, const float* x, int n, float* y, float scale) {
    const int H = spec_.hidden_size, F = f.width;
    std::vector<float> g(static_cast<size_t>(n) * F), u(g.size()), d(static_cast<size_t>(n) * H);
    cpu::MatMul(x, n, H, f.gate.data(), F, nullptr, g.data(), nullptr);
    cpu::MatMul(x, n, H, f.up.data(), F, nullptr, u.data(), nullptr);
    Round(g);
    Round(u);
    cpu::SiluMul(g.data(), u.data(), g.size());
    Round(g);
    cpu::MatMul(g.data(), n, F, f.down.data(), H, nullptr, d.data(), nullptr);
    for (size_t i = 0; i < d.size(); ++i) y[i] += scale * d[i];
  }

  void Moe(int l, int n, const std::vector<float>& xn, std::vector<float>& delta, std::vector<int32_t>& routing) {
    const ModelSpec& s = spec_;
    const cpu::CpuLayer& L = w_.layers[l];
    const int H = s.hidden_size, E = s.num_experts, K = s.top_k;
    std::vector<float> logits(static_cast<size_t>(n) * E), weights(static_cast<size_t>(n) * K);
    std::vector<int32_t> experts(weights.size());
    cpu::MatMul(xn.data(), n, H, L.router.data(), E, nullptr, logits.data(), nullptr);
    RouteTopK(logits.data(), n, E, K, s.router, nullptr, experts.data(), weights.data());
    for (int t = 0; t < n; ++t) {
      for (int k = 0; k < K; ++k) {
        const int e = experts[t * K + k];
        ++routing[static_cast<size_t>(l) * E + e];
        Ffn(L.experts[e], &xn[t * H], 1, &delta[t * H], weights[t * K + k]);
      }
      if (L.shared_expert.width == 0) continue;
      const float g = L.shared_expert_gate.empty()
                          ? 1.0f
                          : 1.0f / (1.0f + std::exp(-cpu::Dot(&xn[t * H], L.shared_expert_gate.data(), H)));
      Ffn(L.shared_expert, &xn[t * H], 1, &delta[t * H], g);
    }
  }

  ModelSpec spec_;
  bool round_;
  bool noise_;
  std::mt19937 rng_;
  cpu::CpuWeights w_;
  std::vector<float> inv_freq_;
  std::vector<std::vector<float>> k_, v_;  // per layer: (positions, kv_dim)
  int pos_ = 0;
};

}  // namespace moed::gpu_test
