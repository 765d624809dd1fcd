// The gRPC front end's conversions: moed.v1 messages ↔ the core's protocol-neutral types.
#pragma once

#include "absl/time/time.h"
#include "engine/runtime/engine_core.h"
#include "moed/v1/moed.pb.h"
#include "server/core_request.h"

namespace moed::server {

CoreRequest FromProto(const v1::GenerateRequest& request, absl::Time deadline);

// One engine output as a GenerateResponse. `request_id` is set only when non-empty (the first message);
// logprobs only when the request asked for `logprobs` > 0; routing (num_experts per layer) on the last one.
void ToProto(const RequestOutput& out, const std::string& request_id, int logprobs, int num_experts,
             v1::GenerateResponse* response);

}  // namespace moed::server
