// Specialization: SpaceSaving guarantees, token classes of hand-picked strings, and the profiler's bookkeeping.
#include "engine/moe/expert_profile.h"

#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace moed {
namespace {

TEST(SpaceSavingTest, ExactWhileDistinctItemsFit) {
  SpaceSaving s(4);
  for (int32_t item : {7, 3, 7, 9, 7, 3}) s.Add(item);
  const std::vector<SpaceSaving::Entry> top = s.Top(10);
  ASSERT_EQ(top.size(), 3u);
  EXPECT_EQ(top[0].item, 7);
  EXPECT_EQ(top[0].count, 3);
  EXPECT_EQ(top[1].item, 3);
  EXPECT_EQ(top[2].item, 9);
  for (const auto& e : top) EXPECT_EQ(e.error, 0);
  EXPECT_EQ(s.total(), 6);
  EXPECT_EQ(s.Top(1).size(), 1u);
}

TEST(SpaceSavingTest, KeepsEveryHeavyHitterWithinItsBounds) {
  // 3 capacity-beating items, 20 recurring light ones and a long tail of distinct ones.
  SpaceSaving s(8);
  std::map<int32_t, int64_t> truth;
  int32_t tail = 1000;
  for (int round = 0; round < 200; ++round) {
    for (int32_t heavy : {1, 2, 3}) {
      s.Add(heavy);
      ++truth[heavy];
    }
    const int32_t medium = 10 + round % 20;  // recurring but light: evicted and re-added
    s.Add(medium);
    ++truth[medium];
    for (int k = 0; k < 3; ++k) {
      s.Add(tail);
      ++truth[tail++];
    }
  }
  std::map<int32_t, SpaceSaving::Entry> kept;
  for (const auto& e : s.Top(8)) kept[e.item] = e;
  for (const auto& [item, count] : truth) {
    if (count * 8 > s.total()) ASSERT_TRUE(kept.contains(item)) << item;  // count > total / capacity
    if (kept.contains(item)) {
      EXPECT_LE(kept[item].count - kept[item].error, count) << item;
      EXPECT_GE(kept[item].count, count) << item;
    }
  }
  EXPECT_EQ(s.Top(3)[0].item, 1);  // heavies first (ties by item)
}

TEST(TokenClassTest, HandPickedTokens) {
  auto c = [](std::string_view s) { return ClassifyToken(s, false, false); };
  EXPECT_EQ(c(" the"), TokenClass::kLetters);
  EXPECT_EQ(c("\u2581Über"), TokenClass::kLetters);
  EXPECT_EQ(c("2026"), TokenClass::kDigits);
  EXPECT_EQ(c(", "), TokenClass::kPunctuation);
  EXPECT_EQ(c("\n\n"), TokenClass::kWhitespace);
  EXPECT_EQ(c("日本"), TokenClass::kCjk);
  EXPECT_EQ(c("。"), TokenClass::kCjk);
  EXPECT_EQ(c("{"), TokenClass::kCodeSymbols);
  EXPECT_EQ(c("();"), TokenClass::kPunctuation);
  EXPECT_EQ(c("=>"), TokenClass::kCodeSymbols);
  EXPECT_EQ(c("})"), TokenClass::kCodeSymbols);
  EXPECT_EQ(c("\xE2\x98"), TokenClass::kBytes);  // half of a character
  EXPECT_EQ(c("x2"), TokenClass::kMixed);
  EXPECT_EQ(c("☃"), TokenClass::kMixed);
  EXPECT_EQ(c(""), TokenClass::kSpecial);
  EXPECT_EQ(ClassifyToken("</s>", true, false), TokenClass::kSpecial);
  EXPECT_EQ(ClassifyToken("\n", false, true), TokenClass::kBytes);
}

TEST(ExpertProfilerTest, CountsTokensPerExpertAndClass) {
  // 2 layers x 3 experts, vocabulary of 4: 0 letters, 1 digits, 2 letters, 3 whitespace.
  ExpertProfiler p(2, 3, /*sketch_capacity=*/4,
                   {TokenClass::kLetters, TokenClass::kDigits, TokenClass::kLetters, TokenClass::kWhitespace}, 2);
  // top-2 experts per layer, layer-major, in the router's order.
  p.AddToken(0, std::vector<int32_t>{1, 0, 2, 1}, 2);
  p.AddToken(1, std::vector<int32_t>{0, 2, 2, 0}, 2);
  p.AddToken(0, std::vector<int32_t>{0, 1, 1, 2}, 2);
  p.AddToken(9, std::vector<int32_t>{0, 1, 1, 2}, 2);  // outside the vocabulary: ignored
  p.AddToken(3, std::vector<int32_t>{1, 1}, 2);        // wrong size: ignored
  p.AddToken(3, std::vector<int32_t>{0, 3, 1, 2}, 2);  // expert 3 is outside the model: ignored
  auto s = p.Snapshot(/*top_n=*/1, /*steps=*/5);
  EXPECT_EQ(s->tokens, 3);
  EXPECT_EQ(s->steps, 5);
  ASSERT_EQ(s->top.size(), 6u);
  ASSERT_EQ(s->top[0].size(), 1u);  // top_n = 1
  EXPECT_EQ(s->top[0][0].item, 0);
  EXPECT_EQ(s->top[0][0].count, 2);
  EXPECT_TRUE(s->top[4].size() == 1 && s->top[4][0].item == 0);
  const size_t k = static_cast<size_t>(TokenClass::kCount);
  EXPECT_EQ(s->class_counts[0 * k + static_cast<size_t>(TokenClass::kLetters)], 2);  // layer 0, expert 0
  EXPECT_EQ(s->class_counts[0 * k + static_cast<size_t>(TokenClass::kDigits)], 1);
  EXPECT_EQ(s->class_counts[2 * k + static_cast<size_t>(TokenClass::kDigits)], 1);   // layer 0, expert 2
  EXPECT_EQ(s->class_counts[2 * k + static_cast<size_t>(TokenClass::kLetters)], 0);
}

TEST(ExpertProfilerTest, BalanceHistoryIsBounded) {
  ExpertProfiler p(1, 2, 4, {TokenClass::kLetters}, /*history_points=*/2);
  p.AddBalancePoint(50, std::vector<int64_t>{1, 1});
  p.AddBalancePoint(100, std::vector<int64_t>{2, 0});
  p.AddBalancePoint(150, std::vector<int64_t>{3, 1});
  auto s = p.Snapshot(4, 150);
  ASSERT_EQ(s->history.size(), 2u);
  EXPECT_EQ(s->history[0].step, 100);
  EXPECT_FLOAT_EQ(s->history[0].max_over_mean[0], 2.0f);
  EXPECT_FLOAT_EQ(s->history[0].entropy[0], 0.0f);
  EXPECT_FLOAT_EQ(s->history[1].gini[0], 0.25f);
}

}  // namespace
}  // namespace moed
