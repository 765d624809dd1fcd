// The one conversion from absl::Status (engine and server errors) to grpc::Status (what clients see).
#pragma once

#include "absl/status/status.h"
#include <grpcpp/support/status.h>

namespace moed::server {

// Maps the code one to one (absl and gRPC share the canonical codes) and keeps the message.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace moed::server
