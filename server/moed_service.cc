// The unary RPCs answer from immutable start-up facts or the engine's latest stats snapshot.
#include "server/moed_service.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "engine/moe/load_balance.h"
#include "server/balance_metrics.h"
#include "server/expert_profile_proto.h"
#include "server/routing_trace_rpc.h"
#include "server/generate_reactor.h"
#include "server/proto_parse.h"
#include "server/status_convert.h"

namespace moed::server {

grpc::ServerWriteReactor<grpc::ByteBuffer>* MoedService::Generate(grpc::CallbackServerContext* context,
                                                                  const grpc::ByteBuffer* request) {
  return new GenerateReactor(context, *request, core_, CallerOf(context));
}

absl::StatusOr<Caller> MoedService::CallerOf(grpc::CallbackServerContext* context) const {
  const auto& metadata = context->client_metadata();
  const auto it = metadata.find("authorization");
  if (it == metadata.end()) return auth_->Authenticate(nullptr);
  const std::string value(it->second.data(), it->second.size());
  return auth_->Authenticate(&value);
}

bool MoedService::AdmitOrFinish(grpc::CallbackServerContext* context, const grpc::ByteBuffer& request,
                                google::protobuf::Message* message, grpc::ServerUnaryReactor* reactor) {
  if (absl::StatusOr<Caller> caller = CallerOf(context); !caller.ok()) {
    reactor->Finish(ToGrpcStatus(caller.status()));
    return false;
  }
  absl::Status status = ParseMessage(request, message);
  if (status.ok()) return true;
  core_->Unparseable(status, Front::kGrpc);
  reactor->Finish(ToGrpcStatus(status));
  return false;
}

grpc::ServerUnaryReactor* MoedService::Tokenize(grpc::CallbackServerContext* context, const grpc::ByteBuffer* raw,
                                                grpc::ByteBuffer* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  v1::TokenizeRequest request;
  if (!AdmitOrFinish(context, *raw, &request, reactor)) return reactor;
  // The response and reactor live until Finish; the pool calls back once.
  core_->Tokenize(std::move(*request.mutable_text()), [reactor, response](absl::StatusOr<std::vector<int32_t>> ids) {
    if (!ids.ok()) return reactor->Finish(ToGrpcStatus(ids.status()));
    v1::TokenizeResponse out;
    out.mutable_token_ids()->Add(ids->begin(), ids->end());
    *response = ToByteBuffer(out);
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* MoedService::GetModelInfo(grpc::CallbackServerContext* context,
                                                    const grpc::ByteBuffer* raw, grpc::ByteBuffer* raw_response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  v1::GetModelInfoRequest request;
  if (!AdmitOrFinish(context, *raw, &request, reactor)) return reactor;
  v1::ModelInfo out;
  v1::ModelInfo* response = &out;
  const EngineInfo& info = core_->queue().info();
  const ModelSpec& spec = info.spec;
  response->set_model(core_->config().model);
  response->set_family(std::string(FamilyName(spec.family)));
  response->set_num_layers(spec.num_layers);
  response->set_num_experts(spec.num_experts);
  response->set_top_k(spec.top_k);
  response->set_context_length(core_->limits().context_length);
  response->set_backend(info.backend_name);
  response->set_hidden_size(spec.hidden_size);
  response->set_vocab_size(spec.vocab_size);
  response->set_num_heads(spec.attention.num_heads);
  response->set_num_kv_heads(spec.attention.num_kv_heads);
  response->set_head_dim(spec.attention.head_dim);
  response->set_moe_intermediate_size(spec.moe_intermediate_size);
  response->set_shared_expert(spec.shared_experts.count > 0);
  response->set_moe_capacity_factor(core_->config().moe_capacity_factor);
  response->set_max_tokens_limit(core_->limits().max_tokens_limit);
  for (int32_t id : core_->tokenizer().eos_ids()) response->add_eos_token_ids(id);
  const AttentionSpec& a = spec.attention;
  response->set_attention(a.kind == AttentionKind::kMla ? "mla" : "gqa");
  response->set_kv_lora_rank(a.kv_lora_rank);
  response->set_qk_rope_head_dim(a.rope.dim);
  response->set_v_head_dim(a.v_head_dim);
  response->set_kv_cache_bytes_per_token(info.config.kv_bytes_per_token);
  response->set_num_shared_experts(spec.shared_experts.count);
  *raw_response = ToByteBuffer(out);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

namespace {

void FillCacheStats(const cache::ExpertCacheStats& c, int num_layers, const ServerConfig& config,
                    v1::ExpertCacheStats* out) {
  out->set_enabled(c.enabled());
  if (!c.enabled()) return;
  out->set_policy(config.expert_cache_policy);
  out->set_prefetch(config.expert_cache_prefetch);
  out->set_capacity_experts(c.capacity_experts);
  out->set_resident_experts(c.resident_experts);
  for (int l = 0; l < num_layers; ++l) {
    const size_t i = static_cast<size_t>(l);
    out->add_hits(i < c.hit_assignments.size() ? c.hit_assignments[i] : 0);
    out->add_misses(i < c.miss_assignments.size() ? c.miss_assignments[i] : 0);
    out->add_evictions(i < c.evictions.size() ? c.evictions[i] : 0);
  }
  out->set_prefetch_issued(c.TotalPrefetchIssued());
  out->set_prefetch_used(c.TotalPrefetchUsed());
  out->set_prefetch_wasted(c.TotalPrefetchWasted());
  out->set_transfer_bytes(c.bytes_transferred);
  out->set_load_seconds(c.load_seconds);
  out->set_stall_seconds(c.stall_seconds);
}

// Balance per MoE layer over both windows, and the windowed matrix.
void FillBalance(const EngineStats& stats, const ModelSpec& spec, v1::ExpertStats* out) {
  const size_t cells = static_cast<size_t>(spec.num_layers) * spec.num_experts;
  if (stats.routed.size() != cells || stats.window_routed.size() != cells) return;
  out->mutable_window_routed_tokens()->Add(stats.window_routed.begin(), stats.window_routed.end());
  out->set_window_steps(stats.window_steps);
  for (int l = 0; l < spec.num_layers; ++l) {
    if (static_cast<size_t>(l) < spec.layer_is_moe.size() && !spec.layer_is_moe[l]) continue;
    for (size_t w = 0; w < kBalanceWindows.size(); ++w) {
      const std::vector<int64_t>& m = w == 0 ? stats.window_routed : stats.routed;
      const LoadBalance b = ComputeLoadBalance(
          absl::Span<const int64_t>(m).subspan(static_cast<size_t>(l) * spec.num_experts, spec.num_experts));
      v1::LayerBalance* lb = out->add_balance();
      lb->set_layer(l);
      lb->set_window(std::string(kBalanceWindows[w]));
      lb->set_gini(b.gini);
      lb->set_entropy(b.entropy);
      lb->set_max_over_mean(b.max_over_mean);
      lb->set_cv(b.cv);
      lb->set_assignments(b.assignments);
    }
  }
}

}  // namespace

grpc::ServerUnaryReactor* MoedService::GetExpertStats(grpc::CallbackServerContext* context,
                                                      const grpc::ByteBuffer* raw, grpc::ByteBuffer* raw_response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  v1::GetExpertStatsRequest request;
  if (!AdmitOrFinish(context, *raw, &request, reactor)) return reactor;
  v1::ExpertStats out;
  v1::ExpertStats* response = &out;
  const EngineStats stats = core_->queue().StatsSnapshot();
  const ModelSpec& spec = core_->queue().info().spec;
  const size_t cells = static_cast<size_t>(spec.num_layers) * spec.num_experts;
  response->set_num_layers(spec.num_layers);
  response->set_num_experts(spec.num_experts);
  response->set_top_k(spec.top_k);
  response->set_steps(stats.steps);
  response->set_prefix_cached_tokens(stats.prefix_cache_hits);
  for (size_t i = 0; i < cells; ++i) {
    response->add_routed_tokens(i < stats.routed.size() ? stats.routed[i] : 0);
    response->add_dropped_tokens(i < stats.dropped.size() ? stats.dropped[i] : 0);
    // Without the cache (no residency map) every expert is resident.
    const std::vector<uint8_t>& resident = stats.expert_cache.resident;
    response->add_resident(resident.empty() || (i < resident.size() && resident[i] != 0));
  }
  FillCacheStats(stats.expert_cache, spec.num_layers, core_->config(), response->mutable_cache());
  FillBalance(stats, spec, response);
  *raw_response = ToByteBuffer(out);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* MoedService::GetExpertProfile(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* raw, grpc::ByteBuffer* raw_response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  v1::GetExpertProfileRequest request;
  if (!AdmitOrFinish(context, *raw, &request, reactor)) return reactor;
  v1::ExpertProfile out;
  const EngineStats stats = core_->queue().StatsSnapshot();
  const absl::Status status = FillExpertProfile(stats.expert_profile.get(), core_->queue().info().spec,
                                                core_->tokenizer(), request.top_n(), &out);
  if (status.ok()) *raw_response = ToByteBuffer(out);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* MoedService::ControlRoutingTrace(grpc::CallbackServerContext* context,
                                                           const grpc::ByteBuffer* raw, grpc::ByteBuffer* raw_response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  v1::RoutingTraceRequest request;
  if (!AdmitOrFinish(context, *raw, &request, reactor)) return reactor;
  v1::RoutingTraceState out;
  const absl::Status status = ControlTrace(*trace_, core_->config(), request, &out);
  if (status.ok()) *raw_response = ToByteBuffer(out);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

}  // namespace moed::server
