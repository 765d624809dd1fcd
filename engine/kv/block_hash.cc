// Block hashes: splitmix64 finalisation folded over the words; stable because it depends on nothing but its input.
#include "engine/kv/block_hash.h"

namespace moed {
namespace {

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

uint64_t Fold(uint64_t h, uint64_t word) { return Mix(h ^ Mix(word)); }

}  // namespace

uint64_t BlockHashSalt(std::string_view model_identity) {
  uint64_t h = Mix(0x6d6f65642d6b7631ULL);  // "moed-kv1"
  for (unsigned char c : model_identity) h = Fold(h, c);
  return Fold(h, model_identity.size());
}

uint64_t HashBlock(uint64_t parent, absl::Span<const int32_t> tokens) {
  uint64_t h = Mix(parent);
  for (int32_t t : tokens) h = Fold(h, static_cast<uint32_t>(t));
  return Fold(h, tokens.size());
}

}  // namespace moed
