// Front: the front end a request came through (gRPC or the OpenAI HTTP API) — the `front` label of the request metrics.
#pragma once

#include <string_view>

namespace moed::server {

enum class Front { kGrpc, kHttp, kCount };
std::string_view FrontName(Front f);  // "grpc" | "http"

}  // namespace moed::server
