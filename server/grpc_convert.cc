// moed.v1 ↔ CoreRequest / RequestOutput.
#include "server/grpc_convert.h"

#include <string>
#include <vector>

#include "engine/moe/load_balance.h"

namespace moed::server {

CoreRequest FromProto(const v1::GenerateRequest& r, absl::Time deadline) {
  CoreRequest c;
  c.client_id = r.request_id();
  c.prompt = r.prompt();
  c.prompt_ids.assign(r.prompt_ids().begin(), r.prompt_ids().end());
  const v1::SamplingParams& s = r.sampling();
  if (s.has_temperature()) c.sampling.temperature = s.temperature();
  if (s.has_top_p()) c.sampling.top_p = s.top_p();
  c.sampling.top_k = s.top_k();
  if (s.has_seed()) c.sampling.seed = s.seed();
  if (s.has_max_tokens()) c.sampling.max_tokens = s.max_tokens();
  c.sampling.stop.assign(s.stop().begin(), s.stop().end());
  c.sampling.ignore_eos = s.ignore_eos();
  c.sampling.logprobs = s.logprobs();
  c.priority = r.priority();
  c.include_routing = r.include_routing();
  c.deadline = deadline;
  return c;
}

void ToProto(const RequestOutput& out, const std::string& request_id, int logprobs, int num_experts,
             v1::GenerateResponse* response) {
  response->Clear();
  if (!request_id.empty()) response->set_request_id(request_id);
  response->mutable_token_ids()->Add(out.new_token_ids.begin(), out.new_token_ids.end());
  response->set_text(out.new_text);
  if (logprobs > 0) {
    for (size_t i = 0; i < out.new_token_ids.size() && i < out.logprobs.size(); ++i) {
      v1::TokenLogprob* lp = response->add_logprobs();
      lp->set_token_id(out.new_token_ids[i]);
      lp->set_logprob(out.logprobs[i]);
      if (i >= out.top_logprobs.size()) continue;
      for (const TokenLogprob& alt : out.top_logprobs[i]) {
        v1::TopLogprob* top = lp->add_top();
        top->set_token_id(alt.token);
        top->set_logprob(alt.logprob);
      }
    }
  }
  if (!out.finished) return;
  response->set_finish_reason(std::string(FinishReasonName(out.finish_reason)));
  response->mutable_usage()->set_prompt_tokens(out.prompt_tokens);
  response->mutable_usage()->set_completion_tokens(out.completion_tokens);
  response->mutable_usage()->set_cached_tokens(out.cached_tokens);
  if (out.routing.empty() || num_experts <= 0) return;
  const int layers = static_cast<int>(out.routing.size()) / num_experts;
  for (int l = 0; l < layers; ++l) {
    v1::LayerRouting* layer = response->add_routing();
    layer->set_layer(l);
    const auto begin = out.routing.begin() + static_cast<ptrdiff_t>(l) * num_experts;
    layer->set_entropy(ComputeLoadBalance(std::vector<int64_t>(begin, begin + num_experts)).entropy);
    for (int e = 0; e < num_experts; ++e) {
      const int32_t count = out.routing[static_cast<size_t>(l) * num_experts + e];
      if (count == 0) continue;
      layer->add_expert_ids(e);
      layer->add_token_counts(count);
    }
  }
}

}  // namespace moed::server
