// BpeModel: lowest-rank-first merging with a heap over adjacent pairs (leftmost wins ties).
#include "engine/tokenizer/bpe_model.h"

#include <queue>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/tokenizer/utf8.h"

namespace moed {

absl::StatusOr<BpeModel> BpeModel::Create(absl::flat_hash_map<std::string, int32_t> vocab,
                                          const std::vector<std::pair<std::string, std::string>>& merges,
                                          BpeOptions options) {
  BpeModel model;
  model.vocab_ = std::move(vocab);
  model.options_ = options;
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    const auto l = model.vocab_.find(left);
    const auto r = model.vocab_.find(right);
    const auto m = model.vocab_.find(left + right);
    if (l == model.vocab_.end() || r == model.vocab_.end() || m == model.vocab_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("merge #", rank, " '", left, " ", right, "' uses a piece missing from the vocabulary"));
    }
    model.merges_.try_emplace(PairKey(l->second, r->second), Merge{static_cast<int32_t>(rank), m->second});
  }
  model.byte_ids_.assign(256, -1);
  if (options.byte_fallback) {
    for (int b = 0; b < 256; ++b) {
      const auto it = model.vocab_.find(absl::StrFormat("<0x%02X>", b));
      if (it != model.vocab_.end()) model.byte_ids_[b] = it->second;
    }
  }
  return model;
}

absl::Status BpeModel::InitialSymbols(std::string_view piece, std::vector<int32_t>& symbols) const {
  bool previous_unk = false;
  size_t pos = 0;
  while (pos < piece.size()) {
    const size_t len = std::max<size_t>(1, utf8::ValidCharLength(piece, pos));
    const std::string_view ch = piece.substr(pos, len);
    pos += len;
    const auto it = vocab_.find(absl::string_view(ch.data(), ch.size()));
    if (it != vocab_.end()) {
      symbols.push_back(it->second);
      previous_unk = false;
      continue;
    }
    if (options_.byte_fallback) {
      bool all_bytes = true;
      for (char c : ch) all_bytes = all_bytes && byte_ids_[static_cast<unsigned char>(c)] >= 0;
      if (all_bytes) {
        for (char c : ch) symbols.push_back(byte_ids_[static_cast<unsigned char>(c)]);
        previous_unk = false;
        continue;
      }
    }
    if (!options_.unk_id) {
      return absl::InvalidArgumentError(absl::StrCat("character '", std::string(ch), "' is not in the vocabulary and the BPE model has no unk token"));
    }
    if (!(options_.fuse_unk && previous_unk)) symbols.push_back(*options_.unk_id);
    previous_unk = true;
  }
  return absl::OkStatus();
}

absl::Status BpeModel::Encode(std::string_view piece, std::vector<int32_t>& ids) const {
  if (options_.ignore_merges) {
    const auto it = vocab_.find(absl::string_view(piece.data(), piece.size()));
    if (it != vocab_.end()) {
      ids.push_back(it->second);
      return absl::OkStatus();
    }
  }
  std::vector<int32_t> sym;  // symbol ids; merged-away symbols get -1
  if (absl::Status s = InitialSymbols(piece, sym); !s.ok()) return s;
  const int n = static_cast<int>(sym.size());
  std::vector<int> next(n), prev(n);
  for (int i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  struct Candidate {
    int32_t rank;
    int left, right;
    int32_t left_id, right_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto consider = [&](int left) {
    if (left < 0 || next[left] < 0) return;
    const int right = next[left];
    const auto it = merges_.find(PairKey(sym[left], sym[right]));
    if (it != merges_.end()) heap.push({it->second.rank, left, right, sym[left], sym[right]});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    // Stale when either side was merged since the candidate was queued.
    if (sym[c.left] != c.left_id || sym[c.right] != c.right_id || next[c.left] != c.right) continue;
    sym[c.left] = merges_.at(PairKey(c.left_id, c.right_id)).result;
    sym[c.right] = -1;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0) prev[next[c.right]] = c.left;
    consider(prev[c.left]);
    consider(c.left);
  }
  for (int i = 0; i < n; ++i) {
    if (sym[i] >= 0) ids.push_back(sym[i]);
  }
  return absl::OkStatus();
}

}  // namespace moed
