// Synthetic models at published shapes (mixtral-8x7b, olmoe-1b-7b, qwen3-30b-a3b, deepseek-v2-lite, and
// deepseek-v3-4l: DeepSeek-V3 with 4 layers): a ModelSpec from a name and
// random bf16 weights generated without files, either on the host (every tensor materialised) or left for the CUDA
// backend to generate on the device from the same per-tensor (seed, scale) rule.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/model/model.h"
#include "engine/model/model_spec.h"

namespace moed {

struct SyntheticOptions {
  // Small variant for CPU tests: 2 layers, hidden 128, ffn 64, vocab 512; keeps the family, expert count, top-k,
  // q/k norm kind and GQA ratio of the named shape (MLA: 4 heads, latent 32, the first layer dense, the router).
  bool small = false;
  // Router skew ≥ 0: row e of every router is scaled by exp(-skew · e / num_experts), so low-numbered experts get
  // larger logits spread and are picked more often (0 = uniform random routing).
  float router_skew = 0.0f;
  uint64_t seed = 1;
  // > 0: only the first num_layers layers of the shape (benchmarks that keep a layer's geometry with less memory);
  // more than the shape has is refused. 0 = all.
  int num_layers = 0;
  // true: every tensor is generated on the host (needed by the CPU backend). false: only norms, biases and routers
  // are; the large tensors stay absent (data == nullptr, shape and name set) and the CUDA backend fills them with
  // SyntheticTensorFill values on the device.
  bool materialize = true;
};

// Names accepted by SyntheticModelSpec / CreateSyntheticModel ("mixtral-8x7b", …, "deepseek-v3-4l").
std::vector<std::string> SyntheticModelNames();

// The published shape of `name` (or its small variant). NOT_FOUND lists the known names.
absl::StatusOr<ModelSpec> SyntheticModelSpec(std::string_view name, bool small);

// `name` may carry the "synthetic:" prefix. Model::source becomes "synthetic:<name>;seed=<seed>".
absl::StatusOr<std::shared_ptr<const Model>> CreateSyntheticModel(std::string_view name,
                                                                  const SyntheticOptions& options);

// How one tensor's values are generated: value i = bf16(scale · (2·U(seed, i) − 1)), U uniform in [0, 1) from
// SyntheticUniform. Linear weights (out, in) use scale sqrt(3 / in) (unit-variance outputs); embeddings scale 1.
struct SyntheticFill {
  uint64_t seed = 0;
  float scale = 0.0f;
};

// The fill of tensor `t` of a synthetic model (Model::source starts with "synthetic:"); INVALID_ARGUMENT otherwise.
absl::StatusOr<SyntheticFill> SyntheticTensorFill(const Model& model, const TensorView& t);

// Uniform in [0, 1) from (seed, index): splitmix64 mixing, 24 bits. The CUDA fill kernel computes the same.
inline float SyntheticUniform(uint64_t seed, uint64_t index) {
  uint64_t x = seed ^ (index * 0x9e3779b97f4a7c15ull);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return static_cast<float>(x >> 40) * (1.0f / 16777216.0f);
}

}  // namespace moed
