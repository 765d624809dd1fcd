// config.json → ModelSpec: the fields every family shares, then the family's own parser (engine/model/families).
#include <cmath>
#include <limits>

#include "absl/strings/str_join.h"
#include "engine/common/file_io.h"
#include "engine/common/status_macros.h"
#include "engine/common/str_cat.h"
#include "engine/model/config_fields.h"
#include "engine/model/families/family.h"
#include "engine/model/json_fields.h"
#include "engine/model/model_spec.h"

namespace moed {
namespace {

using config::PositiveInt;

// A token id: a non-negative integer that fits an int.
absl::Status CheckTokenId(const JsonFields& f, std::string_view name, int64_t id) {
  if (id < 0 || id > std::numeric_limits<int>::max()) {
    return f.FieldError(name, Concat("holds token id ", id, ", outside [0, 2^31)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<const FamilyDef*> ParseFamily(const JsonFields& f) {
  MOED_ASSIGN_OR_RETURN(std::string type, f.String("model_type"));
  if (const FamilyDef* def = FindFamily(type)) return def;
  std::vector<absl::string_view> names;
  for (std::string_view n : SupportedModelTypes()) names.push_back(ToAbsl(n));
  return f.FieldError("model_type", Concat("is '", type, "', not one of the supported types: ",
                                           absl::StrJoin(names, ", ")),
                      absl::StatusCode::kUnimplemented);
}

// Quantised checkpoints (DeepSeek-V3's own release is FP8 with 128×128 block scales) are refused by name.
absl::Status RejectQuantization(const JsonFields& cfg) {
  const nlohmann::json* q = cfg.Find("quantization_config");
  if (q == nullptr || q->is_null()) return absl::OkStatus();
  std::string method = "unknown";
  if (q->is_object() && q->contains("quant_method") && (*q)["quant_method"].is_string()) {
    method = (*q)["quant_method"].get<std::string>();
  }
  const bool fp8 = method == "fp8";
  return cfg.FieldError("quantization_config",
                        Concat("names quant_method '", method, "': ",
                               fp8 ? "FP8 block-scaled checkpoints (weight_scale_inv tensors) are not supported; "
                                     "convert the weights to bf16 first"
                                   : "quantised checkpoints are not supported"),
                        absl::StatusCode::kUnimplemented);
}

absl::Status ParseSpecialTokens(const JsonFields& cfg, ModelSpec& spec) {
  MOED_ASSIGN_OR_RETURN(std::optional<int64_t> bos, cfg.OptionalInt("bos_token_id"));
  if (bos) {
    MOED_RETURN_IF_ERROR(CheckTokenId(cfg, "bos_token_id", *bos));
    spec.bos_token_id = static_cast<int>(*bos);
  }
  MOED_ASSIGN_OR_RETURN(std::vector<int64_t> eos, cfg.IntOrIntList("eos_token_id"));
  for (int64_t id : eos) {
    MOED_RETURN_IF_ERROR(CheckTokenId(cfg, "eos_token_id", id));
    spec.eos_token_ids.push_back(static_cast<int>(id));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelSpec> ParseModelConfig(std::string_view json_text, std::string_view source) {
  MOED_ASSIGN_OR_RETURN(nlohmann::json root, ParseJsonText(json_text, source));
  if (!root.is_object()) {
    return absl::InvalidArgumentError(Concat(source, ": top level must be a JSON object"));
  }
  const JsonFields cfg(root, source);
  ModelSpec spec;
  MOED_ASSIGN_OR_RETURN(const FamilyDef* family, ParseFamily(cfg));
  spec.family = family->family;
  MOED_RETURN_IF_ERROR(RejectQuantization(cfg));
  MOED_ASSIGN_OR_RETURN(std::optional<std::string> act, cfg.OptionalString("hidden_act"));
  if (act && *act != "silu") {
    return cfg.FieldError("hidden_act", Concat("is '", *act, "': only 'silu' is supported"),
                          absl::StatusCode::kUnimplemented);
  }
  MOED_ASSIGN_OR_RETURN(spec.vocab_size, PositiveInt(cfg, "vocab_size", config::kMaxVocab));
  MOED_ASSIGN_OR_RETURN(spec.hidden_size, PositiveInt(cfg, "hidden_size"));
  MOED_ASSIGN_OR_RETURN(spec.num_layers, PositiveInt(cfg, "num_hidden_layers", config::kMaxLayers));
  MOED_ASSIGN_OR_RETURN(spec.max_position_embeddings,
                        PositiveInt(cfg, "max_position_embeddings", std::numeric_limits<int>::max()));
  MOED_ASSIGN_OR_RETURN(double eps, cfg.NumberOr("rms_norm_eps", family->default_rms_norm_eps));
  if (!std::isfinite(eps) || eps <= 0 || eps >= 1) {
    return cfg.FieldError("rms_norm_eps", Concat("must be in (0, 1), found ", eps));
  }
  spec.rms_norm_eps = static_cast<float>(eps);
  MOED_RETURN_IF_ERROR(family->parse(cfg, source, spec));
  MOED_ASSIGN_OR_RETURN(spec.tie_word_embeddings, cfg.BoolOr("tie_word_embeddings", false));
  MOED_RETURN_IF_ERROR(ParseSpecialTokens(cfg, spec));
  return spec;
}

absl::StatusOr<ModelSpec> LoadModelSpec(const std::string& model_dir) {
  const std::string path = JoinPath(model_dir, "config.json");
  MOED_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  return ParseModelConfig(text, path);
}

}  // namespace moed
