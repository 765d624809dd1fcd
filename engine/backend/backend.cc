// CreateBackend: picks the CPU reference backend or, when compiled in and a device is usable, the CUDA one.
#include "engine/backend/backend.h"

#include <string>

#include "absl/strings/str_format.h"
#include "engine/backend/cpu/cpu_backend.h"

#ifdef MOED_HAVE_CUDA
#include "engine/backend/cuda/cuda_backend.h"
#endif

namespace moed {

absl::StatusOr<std::string> ResolveBackendKind(std::string_view kind) {
  if (kind != "cpu" && kind != "cuda" && kind != "auto") {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown backend '%s' (expected auto, cpu or cuda)", std::string(kind)));
  }
#ifdef MOED_HAVE_CUDA
  if (kind == "cuda" || (kind == "auto" && CudaDeviceUsable())) return std::string("cuda");
#else
  if (kind == "cuda") return absl::UnavailableError("backend 'cuda': moed was built without CUDA");
#endif
  return std::string("cpu");
}

absl::StatusOr<std::unique_ptr<Backend>> CreateBackend(std::string_view kind, std::shared_ptr<const Model> model,
                                                       const BackendOptions& options) {
  if (kind != "cpu" && kind != "cuda" && kind != "auto") {
    return absl::InvalidArgumentError(
        absl::StrFormat("unknown backend '%s' (expected auto, cpu or cuda)", std::string(kind)));
  }
#ifdef MOED_HAVE_CUDA
  if (kind == "cuda" || (kind == "auto" && CudaDeviceUsable())) return CreateCudaBackend(std::move(model), options);
#else
  if (kind == "cuda") return absl::UnavailableError("backend 'cuda': moed was built without CUDA");
#endif
  auto cpu = cpu::CpuBackend::Create(std::move(model), options);
  if (!cpu.ok()) return cpu.status();
  return std::unique_ptr<Backend>(std::move(cpu).value());
}

}  // namespace moed
