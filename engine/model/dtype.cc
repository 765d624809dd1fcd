// Names of checkpoint element types (safetensors spelling).
#include "engine/model/dtype.h"

namespace moed {

std::string_view DTypeName(DType t) {
  switch (t) {
    case DType::kBF16: return "BF16";
    case DType::kF16: return "F16";
    case DType::kF32: return "F32";
  }
  return "?";
}

}  // namespace moed
