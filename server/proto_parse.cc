// ParseMessage: schema-free wire parse first (truncation, bad tags), then a UTF-8 walk of the declared string
// fields, then the real parse — so protobuf never gets (and never logs) bytes we could not name the fault of.
#include "server/proto_parse.h"

#include <vector>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/unknown_field_set.h>

#include "absl/strings/str_cat.h"
#include "engine/tokenizer/utf8.h"

namespace moed::server {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::UnknownField;
using google::protobuf::UnknownFieldSet;

constexpr int kMaxDepth = 16;

// The first problem in `bytes` as an encoding of `type`, with the field path ("sampling.stop[1]"); "" if none.
std::string FindProblem(const Descriptor& type, std::string_view bytes, const std::string& path, int depth) {
  if (depth > kMaxDepth) return absl::StrCat(path.empty() ? "the message" : path, " is nested too deeply");
  UnknownFieldSet fields;
  if (!fields.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::StrCat(path.empty() ? "the message" : path, " is truncated or malformed protobuf wire data");
  }
  std::vector<int> seen(static_cast<size_t>(type.field_count()), 0);
  for (int i = 0; i < fields.field_count(); ++i) {
    const UnknownField& f = fields.field(i);
    const FieldDescriptor* fd = type.FindFieldByNumber(f.number());
    if (fd == nullptr) continue;  // unknown fields are allowed (newer clients)
    const int index = seen[static_cast<size_t>(fd->index())]++;
    std::string name = path.empty() ? fd->name() : absl::StrCat(path, ".", fd->name());
    if (fd->is_repeated()) absl::StrAppend(&name, "[", index, "]");
    if (f.type() != UnknownField::TYPE_LENGTH_DELIMITED) continue;  // scalars: the real parse checks them
    if (fd->type() == FieldDescriptor::TYPE_STRING && !utf8::IsValid(f.length_delimited())) {
      return absl::StrCat(name, " is not valid UTF-8 (use prompt_ids for raw token ids)");
    }
    if (fd->type() == FieldDescriptor::TYPE_MESSAGE) {
      std::string inner = FindProblem(*fd->message_type(), f.length_delimited(), name, depth + 1);
      if (!inner.empty()) return inner;
    }
  }
  return "";
}

}  // namespace

absl::Status ParseMessage(std::string_view bytes, google::protobuf::Message* message) {
  const Descriptor& type = *message->GetDescriptor();
  std::string problem = FindProblem(type, bytes, "", 0);
  if (problem.empty() && !message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    problem = "the wire data does not match the message's fields";
  }
  if (problem.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("request does not parse as ", type.full_name(), ": ", problem));
}

absl::Status ParseMessage(const grpc::ByteBuffer& buffer, google::protobuf::Message* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return absl::InvalidArgumentError("request could not be read");
  std::string bytes;
  bytes.reserve(buffer.Length());
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return ParseMessage(bytes, message);
}

grpc::ByteBuffer ToByteBuffer(const google::protobuf::Message& message) {
  const std::string bytes = message.SerializeAsString();
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace moed::server
