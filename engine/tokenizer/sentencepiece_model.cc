// SentencePieceModel: loads the model twice, once with the dummy prefix switched off.
#include "engine/tokenizer/sentencepiece_model.h"

#include <sentencepiece_processor.h>

namespace moed {
namespace {

// Appending a NormalizerSpec (ModelProto field 3) holding add_dummy_prefix (its field 3) = false
// to a serialized ModelProto: protobuf merges repeated embedded messages, so this overrides the flag.
constexpr char kNoDummyPrefixPatch[] = {0x1A, 0x02, 0x18, 0x00};

}  // namespace

SentencePieceModel::SentencePieceModel()
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()),
      sp_no_prefix_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {}

SentencePieceModel::~SentencePieceModel() = default;

std::unique_ptr<SentencePieceModel> SentencePieceModel::Load(const std::string& path, std::string* error) {
  std::unique_ptr<SentencePieceModel> model(new SentencePieceModel());
  sentencepiece::util::Status status = model->sp_->Load(path);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  std::string proto = model->sp_->serialized_model_proto();
  proto.append(kNoDummyPrefixPatch, sizeof(kNoDummyPrefixPatch));
  status = model->sp_no_prefix_->LoadFromSerializedProto(proto);
  if (!status.ok()) {
    *error = status.ToString();
    return nullptr;
  }
  return model;
}

bool SentencePieceModel::Encode(std::string_view text, bool dummy_prefix, std::vector<int>* ids,
                                std::string* error) const {
  const sentencepiece::util::Status status = (dummy_prefix ? sp_ : sp_no_prefix_)->Encode(text, ids);
  if (status.ok()) return true;
  *error = status.ToString();
  return false;
}

int SentencePieceModel::size() const { return sp_->GetPieceSize(); }
std::string SentencePieceModel::IdToPiece(int id) const { return sp_->IdToPiece(id); }
bool SentencePieceModel::IsControl(int id) const { return sp_->IsControl(id); }
bool SentencePieceModel::IsUnknown(int id) const { return sp_->IsUnknown(id); }
bool SentencePieceModel::IsByte(int id) const { return sp_->IsByte(id); }
int SentencePieceModel::bos_id() const { return sp_->bos_id(); }
int SentencePieceModel::eos_id() const { return sp_->eos_id(); }

}  // namespace moed
