// ControlRoutingTrace: the RPC's actions on the daemon's RoutingTrace.
#pragma once

#include "absl/status/status.h"
#include "engine/moe/routing_trace.h"
#include "moed/v1/moed.pb.h"
#include "server/config.h"

namespace moed::server {

// START uses the --routing-trace file (FAILED_PRECONDITION without one: a client never chooses a path on the
// daemon's filesystem) and the request's sample, else --routing-trace-sample; STOP / DUMP as RoutingTrace; every
// action fills `out` with the state afterwards (DUMP also with the dumped file).
absl::Status ControlTrace(RoutingTrace& trace, const ServerConfig& config, const v1::RoutingTraceRequest& request,
                          v1::RoutingTraceState* out);

}  // namespace moed::server
