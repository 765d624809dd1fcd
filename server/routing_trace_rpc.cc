// Start / stop / dump / status of the routing trace over gRPC.
#include "server/routing_trace_rpc.h"

#include <string>

namespace moed::server {

absl::Status ControlTrace(RoutingTrace& trace, const ServerConfig& config, const v1::RoutingTraceRequest& request,
                          v1::RoutingTraceState* out) {
  absl::Status status;
  switch (request.action()) {
    case v1::RoutingTraceRequest::START:
      if (config.routing_trace.empty()) {
        return absl::FailedPreconditionError("no trace file: start moed with --routing-trace FILE");
      }
      status = trace.Start({.path = config.routing_trace,
                            .sample = request.sample() != 0 ? request.sample() : config.routing_trace_sample});
      break;
    case v1::RoutingTraceRequest::STOP:
      status = trace.Stop();
      break;
    case v1::RoutingTraceRequest::DUMP: {
      absl::StatusOr<std::string> dumped = trace.Dump();
      status = dumped.status();
      if (dumped.ok()) out->set_dumped_path(*dumped);
      break;
    }
    default:
      break;
  }
  if (!status.ok()) return status;
  const RoutingTraceStatus st = trace.status();
  out->set_active(st.active);
  out->set_path(st.path.empty() ? config.routing_trace : st.path);
  out->set_sample(st.sample);
  out->set_records(st.records);
  out->set_dropped(st.dropped);
  out->set_bytes(st.bytes);
  out->set_rotations(st.rotations);
  return absl::OkStatus();
}

}  // namespace moed::server
