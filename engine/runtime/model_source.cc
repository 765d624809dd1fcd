// OpenModel: a model directory through LoadModel + LoadTokenizer, or a synthetic model + a borrowed tokenizer.
#include "engine/runtime/model_source.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "engine/model/synthetic_model.h"

namespace moed {
namespace {

constexpr absl::string_view kSyntheticPrefix = "synthetic:";
constexpr absl::string_view kSmallSuffix = "-small";

class IdsOnlyTokenizer final : public Tokenizer {
 public:
  IdsOnlyTokenizer(int vocab_size, std::string hint) : vocab_size_(vocab_size), hint_(std::move(hint)) {}

  absl::StatusOr<std::vector<int32_t>> Encode(std::string_view) const override {
    return absl::InvalidArgumentError(absl::StrCat("prompt: this model has no tokenizer; send prompt_ids, or ", hint_));
  }
  std::string TokenBytes(int32_t id) const override {
    if (id < 0 || id >= vocab_size_) return "";
    return absl::StrCat("<", id, ">");
  }
  bool strips_leading_space() const override { return false; }
  int vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> bos_id() const override { return std::nullopt; }
  std::vector<int32_t> eos_ids() const override { return {}; }
  bool IsSpecial(int32_t) const override { return false; }

 private:
  int vocab_size_;
  std::string hint_;
};

absl::Status Prefixed(const std::string& prefix, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(prefix, s.message()));
}

}  // namespace

bool IsSyntheticModelName(std::string_view model) {
  return absl::StartsWith(absl::string_view(model.data(), model.size()), kSyntheticPrefix);
}

std::unique_ptr<Tokenizer> MakeIdsOnlyTokenizer(int vocab_size, std::string hint) {
  return std::make_unique<IdsOnlyTokenizer>(vocab_size, std::move(hint));
}

absl::StatusOr<OpenedModel> OpenModel(const std::string& model, const ModelSourceOptions& options) {
  if (options.backend != "cpu" && options.backend != "cuda") {
    return absl::InvalidArgumentError(absl::StrCat("OpenModel: backend must be resolved to cpu or cuda, got '",
                                                   options.backend, "'"));
  }
  OpenedModel out;
  if (IsSyntheticModelName(model)) {
    absl::string_view name = absl::StripPrefix(absl::string_view(model), kSyntheticPrefix);
    SyntheticOptions so;
    so.small = absl::ConsumeSuffix(&name, kSmallSuffix);
    so.materialize = options.backend == "cpu";
    so.router_skew = options.synthetic_router_skew;
    so.seed = options.synthetic_seed;
    so.num_layers = options.synthetic_layers;
    absl::StatusOr<std::shared_ptr<const Model>> m = CreateSyntheticModel(std::string_view(name.data(), name.size()), so);
    if (!m.ok()) return m.status();
    out.model = *std::move(m);
  } else {
    absl::StatusOr<std::shared_ptr<const Model>> m = LoadModel(model);
    if (!m.ok()) return m.status();
    out.model = *std::move(m);
  }

  if (!options.tokenizer_dir.empty()) {
    absl::StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizer(options.tokenizer_dir);
    if (!t.ok()) return Prefixed(absl::StrCat("tokenizer ", options.tokenizer_dir, ": "), t.status());
    if ((*t)->vocab_size() > out.model->spec.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("tokenizer ", options.tokenizer_dir, ": its vocabulary (",
                                                     (*t)->vocab_size(), ") is larger than the model's (",
                                                     out.model->spec.vocab_size, ")"));
    }
    out.tokenizer = *std::move(t);
  } else if (IsSyntheticModelName(model)) {
    out.tokenizer = MakeIdsOnlyTokenizer(out.model->spec.vocab_size, "start it with --tokenizer DIR");
  } else {
    absl::StatusOr<std::unique_ptr<Tokenizer>> t = LoadTokenizer(model);
    if (!t.ok()) return t.status();
    out.tokenizer = *std::move(t);
  }
  return out;
}

}  // namespace moed
