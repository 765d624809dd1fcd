// One streaming Generate call of moe-bench, driven by the gRPC callback API, and what it measured.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "moed/v1/moed.grpc.pb.h"

namespace moed::client {

using Clock = std::chrono::steady_clock;

struct CallResult {
  grpc::StatusCode code = grpc::OK;
  std::string error;                 // the status message when code != OK
  int prompt_tokens = 0;             // from the final Usage (0 when the call failed)
  int cached_tokens = 0;             // of them, served from the server's prefix cache (final Usage)
  int output_tokens = 0;             // token ids received
  double e2e_s = 0.0;                // start → end of stream
  double ttft_s = -1.0;              // start → first message with tokens; < 0 when none came
  std::vector<double> itl_s;         // per-token gaps after the first message: a message carrying
                                     // k tokens t seconds after the previous one adds k gaps of t/k
};

// Starts itself on construction; calls `on_done` exactly once from a gRPC thread with the result and
// then deletes itself. The stub must outlive the call.
class BenchCall : public grpc::ClientReadReactor<moed::v1::GenerateResponse> {
 public:
  BenchCall(moed::v1::Moed::Stub& stub, const moed::v1::GenerateRequest& request, Clock::duration timeout,
            std::function<void(CallResult)> on_done);

  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  grpc::ClientContext ctx_;
  moed::v1::GenerateRequest request_;
  moed::v1::GenerateResponse msg_;
  std::function<void(CallResult)> on_done_;
  Clock::time_point start_;
  Clock::time_point last_;
  CallResult result_;
};

}  // namespace moed::client
