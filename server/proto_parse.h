// Request bytes → a protobuf message, with a message that names what is wrong when they do not parse
// (truncated or malformed wire data, a string field that is not UTF-8). The gRPC front end takes its
// requests raw so that these reach the client as INVALID_ARGUMENT, not as gRPC's bare default.
#pragma once

#include <string>
#include <string_view>

#include <google/protobuf/message.h>
#include <grpcpp/support/byte_buffer.h>

#include "absl/status/status.h"

namespace moed::server {

// OK and `message` filled, or INVALID_ARGUMENT: "request does not parse as moed.v1.GenerateRequest: ...".
absl::Status ParseMessage(std::string_view bytes, google::protobuf::Message* message);
absl::Status ParseMessage(const grpc::ByteBuffer& buffer, google::protobuf::Message* message);

// `message` serialized into a ByteBuffer (for raw-method responses).
grpc::ByteBuffer ToByteBuffer(const google::protobuf::Message& message);

}  // namespace moed::server
