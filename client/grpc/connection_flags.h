// The flags every gRPC client of moed shares (moectl, moe-bench): where the daemon is and how to reach it securely.
#pragma once

#include <memory>
#include <string>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"

ABSL_DECLARE_FLAG(std::string, addr);  // HOST:PORT of the daemon

namespace moed::client {

// The source file defining these flags, for cli::Program::flag_files.
inline constexpr char kConnectionFlagsFile[] = "client/grpc/connection_flags.cc";

// A channel to --addr with --tls-ca / --tls-cert / --tls-key and --token (default $MOED_TOKEN); errors name the
// flag (a PEM file that cannot be read, --tls-cert without --tls-ca).
absl::StatusOr<std::shared_ptr<grpc::Channel>> ChannelFromFlags();

}  // namespace moed::client
