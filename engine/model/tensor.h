// A non-owning, typed view of one weight tensor (row-major, as stored in the checkpoint).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/model/dtype.h"

namespace moed {

// Points into memory owned elsewhere (an mmap'd safetensors file or a Model's arena);
// valid as long as the owning Model lives. Empty (data == nullptr) means "absent".
struct TensorView {
  std::string name;            // checkpoint key, e.g. "model.layers.0.self_attn.q_proj.weight"
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // row-major; a Linear weight is (out_features, in_features)
  const void* data = nullptr;

  bool present() const { return data != nullptr; }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
  int64_t bytes() const { return numel() * DTypeSize(dtype); }
  float at(int64_t i) const { return LoadAsFloat(data, dtype, i); }
};

}  // namespace moed
