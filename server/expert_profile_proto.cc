// GetExpertProfile's answer: top tokens with decoded text, token-class histograms, balance history.
#include "server/expert_profile_proto.h"

#include "absl/strings/str_format.h"
#include "engine/runtime/engine_core.h"

namespace moed::server {

std::string PrintableTokenText(const std::string& bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size();) {
    const auto b = static_cast<unsigned char>(bytes[i]);
    const size_t len = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
    bool whole = len > 0 && i + len <= bytes.size();
    for (size_t k = 1; whole && k < len; ++k) whole = (static_cast<unsigned char>(bytes[i + k]) >> 6) == 0x2;
    if (!whole) {
      out += absl::StrFormat("<0x%02X>", b);
      ++i;
      continue;
    }
    out.append(bytes, i, len);
    i += len;
  }
  return out;
}

absl::Status FillExpertProfile(const ExpertProfileSnapshot* snapshot, const ModelSpec& spec, const Tokenizer& tok,
                               int top_n, v1::ExpertProfile* out) {
  if (top_n < 0 || top_n > kProfileSketchCapacity) {
    return absl::InvalidArgumentError(
        absl::StrFormat("top_n (%d) must be in [0, %d] (0 = %d)", top_n, kProfileSketchCapacity, kDefaultProfileTopN));
  }
  if (top_n == 0) top_n = kDefaultProfileTopN;
  if (snapshot == nullptr) return absl::UnavailableError("the engine keeps no expert profile");
  const int L = snapshot->num_layers;
  const int E = snapshot->num_experts;
  constexpr size_t kClasses = static_cast<size_t>(TokenClass::kCount);
  out->set_num_layers(L);
  out->set_num_experts(E);
  for (std::string_view name : kTokenClassNames) out->add_token_classes(std::string(name));
  out->set_tokens_profiled(snapshot->tokens);
  out->set_steps(snapshot->steps);
  for (int l = 0; l < L; ++l) {
    if (static_cast<size_t>(l) < spec.layer_is_moe.size() && !spec.layer_is_moe[l]) continue;
    for (int e = 0; e < E; ++e) {
      const size_t cell = static_cast<size_t>(l) * E + e;
      v1::ExpertTokens* x = out->add_experts();
      x->set_layer(l);
      x->set_expert(e);
      int64_t tokens = 0;
      for (size_t c = 0; c < kClasses; ++c) {
        const int64_t n = snapshot->class_counts.at(cell * kClasses + c);
        x->add_class_counts(n);
        tokens += n;
      }
      x->set_tokens(tokens);
      const auto& top = snapshot->top.at(cell);
      for (size_t i = 0; i < top.size() && static_cast<int>(i) < top_n; ++i) {
        v1::TokenCount* t = x->add_top_tokens();
        t->set_token_id(top[i].item);
        t->set_count(top[i].count);
        t->set_error(top[i].error);
        t->set_text(PrintableTokenText(tok.TokenBytes(top[i].item)));
      }
    }
  }
  for (const BalancePoint& p : snapshot->history) {
    v1::BalancePoint* b = out->add_balance_history();
    b->set_step(p.step);
    b->mutable_gini()->Add(p.gini.begin(), p.gini.end());
    b->mutable_entropy()->Add(p.entropy.begin(), p.entropy.end());
    b->mutable_max_over_mean()->Add(p.max_over_mean.begin(), p.max_over_mean.end());
  }
  return absl::OkStatus();
}

}  // namespace moed::server
