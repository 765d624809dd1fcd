// StopMatcher: matches across chunk boundaries, holds back possible stop prefixes, earliest stop wins.
#include "engine/runtime/stop_matcher.h"

#include "gtest/gtest.h"

namespace moed {
namespace {

// Feeds `chunks` and returns the concatenated emitted text (Flush() at the end unless stopped).
std::string Feed(StopMatcher& m, const std::vector<std::string>& chunks, bool* stopped, std::vector<std::string>* deltas) {
  std::string out;
  *stopped = false;
  for (const std::string& c : chunks) {
    std::string d = m.Append(c, stopped);
    deltas->push_back(d);
    out += d;
    if (*stopped) return out;
  }
  std::string tail = m.Flush();
  deltas->push_back(tail);
  return out + tail;
}

TEST(StopMatcherTest, NoStopsPassesEverythingThrough) {
  StopMatcher m({});
  bool stopped;
  EXPECT_EQ(m.Append("hello", &stopped), "hello");
  EXPECT_FALSE(stopped);
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopMatcherTest, StopAcrossChunkBoundariesIsCutAndNeverEmitted) {
  StopMatcher m({"END"});
  bool stopped;
  std::vector<std::string> deltas;
  std::string out = Feed(m, {"abc E", "N", "D tail"}, &stopped, &deltas);
  EXPECT_TRUE(stopped);
  EXPECT_EQ(out, "abc ");
  EXPECT_EQ(deltas[0], "abc ");  // "E" held back
  EXPECT_EQ(deltas[1], "");      // "EN" held back
  for (const std::string& d : deltas) EXPECT_EQ(d.find('E'), std::string::npos);
}

TEST(StopMatcherTest, FalseStartIsReleased) {
  StopMatcher m({"END"});
  bool stopped;
  std::vector<std::string> deltas;
  std::string out = Feed(m, {"abE", "Nx", "yz"}, &stopped, &deltas);
  EXPECT_FALSE(stopped);
  EXPECT_EQ(out, "abENxyz");
  EXPECT_EQ(deltas[0], "ab");
  EXPECT_EQ(deltas[1], "ENx");
}

TEST(StopMatcherTest, HeldBackTextIsFlushedAtTheEnd) {
  StopMatcher m({"\n\n"});
  bool stopped;
  std::vector<std::string> deltas;
  std::string out = Feed(m, {"line\n"}, &stopped, &deltas);
  EXPECT_FALSE(stopped);
  EXPECT_EQ(deltas[0], "line");
  EXPECT_EQ(out, "line\n");
}

TEST(StopMatcherTest, EarliestOfSeveralStopsWins) {
  StopMatcher m({"world", "lo w", ""});
  bool stopped;
  EXPECT_EQ(m.Append("hello world", &stopped), "hel");
  EXPECT_TRUE(stopped);
}

TEST(StopMatcherTest, StopInsideOneChunk) {
  StopMatcher m({"--"});
  bool stopped;
  EXPECT_EQ(m.Append("a -- b", &stopped), "a ");
  EXPECT_TRUE(stopped);
}

TEST(StopMatcherTest, LongestPossiblePrefixIsHeld) {
  StopMatcher m({"abcd", "cx"});
  bool stopped;
  EXPECT_EQ(m.Append("zzabc", &stopped), "zz");  // "abc" may become "abcd"
  EXPECT_FALSE(stopped);
  EXPECT_EQ(m.Append("x", &stopped), "ab");       // "cx" completes
  EXPECT_TRUE(stopped);
}

TEST(StopMatcherTest, MultiByteCharactersAreNotSplit) {
  StopMatcher m({"é!"});
  bool stopped;
  EXPECT_EQ(m.Append("caf\xC3\xA9", &stopped), "caf");
  EXPECT_EQ(m.Append("?", &stopped), "\xC3\xA9?");
  EXPECT_FALSE(stopped);
}

}  // namespace
}  // namespace moed
