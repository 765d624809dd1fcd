// LoadModel: binds ModelWeights from a checkpoint through the family's weight-name map, checking presence and shapes.
#include <cstdint>
#include <string>

#include "engine/common/status_macros.h"
#include "engine/common/str_cat.h"
#include "engine/model/checkpoint.h"
#include "engine/model/families/family.h"
#include "engine/model/model.h"
#include "engine/model/weight_binder.h"

namespace moed {

absl::StatusOr<std::shared_ptr<const Model>> LoadModel(const std::string& model_dir) {
  auto model = std::make_shared<Model>();
  model->source = model_dir;
  MOED_ASSIGN_OR_RETURN(model->spec, LoadModelSpec(model_dir));
  MOED_ASSIGN_OR_RETURN(Checkpoint ckpt, Checkpoint::Open(model_dir));
  model->storage = ckpt.Mappings();

  const ModelSpec& spec = model->spec;
  const FamilyDef& family = FamilyDefOf(spec.family);
  const WeightBinder b(ckpt, model->storage);
  const int64_t V = spec.vocab_size, H = spec.hidden_size;
  ModelWeights& w = model->weights;
  MOED_ASSIGN_OR_RETURN(w.embed, b.Get("model.embed_tokens.weight", {V, H}));
  MOED_ASSIGN_OR_RETURN(w.final_norm, b.Get("model.norm.weight", {H}));
  if (spec.tie_word_embeddings) {
    w.lm_head = w.embed;
  } else {
    MOED_ASSIGN_OR_RETURN(w.lm_head, b.Get("lm_head.weight", {V, H}));
  }
  w.layers.resize(spec.num_layers);
  for (int l = 0; l < spec.num_layers; ++l) {
    const std::string p = Concat("model.layers.", l, ".");
    MOED_RETURN_IF_ERROR(BindLayerNorms(b, spec, p, w.layers[l]));
    MOED_RETURN_IF_ERROR(family.bind_layer(b, spec, l, p, w.layers[l]));
  }
  return std::shared_ptr<const Model>(std::move(model));
}

}  // namespace moed
