// The shared client flags --addr, --tls-ca, --tls-cert, --tls-key and --token.
#include "client/grpc/connection_flags.h"

#include <cstdlib>
#include <string>

#include "absl/flags/flag.h"
#include "client/grpc/grpc_util.h"

ABSL_FLAG(std::string, addr, "127.0.0.1:50051", "the daemon's gRPC address, HOST:PORT");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA bundle that signed the server's certificate: connect with TLS");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate for mTLS (with --tls-key and --tls-ca)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls-cert");
ABSL_FLAG(std::string, token, "", "bearer token sent as 'authorization: Bearer <token>'; empty = $MOED_TOKEN");

namespace moed::client {

absl::StatusOr<std::shared_ptr<grpc::Channel>> ChannelFromFlags() {
  ChannelSecurity s;
  s.tls_ca = absl::GetFlag(FLAGS_tls_ca);
  s.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  s.tls_key = absl::GetFlag(FLAGS_tls_key);
  s.token = absl::GetFlag(FLAGS_token);
  if (const char* env = std::getenv("MOED_TOKEN"); s.token.empty() && env != nullptr) s.token = env;
  return MakeChannel(absl::GetFlag(FLAGS_addr), s);
}

}  // namespace moed::client
