// Fuzz-style test: thousands of deterministic mutations of the real fixture headers through the header
// parser; every result must be OK (and then truly valid) or an error naming the file — never a crash or hang.
#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/model/safetensors.h"
#include "gtest/gtest.h"
#include "tests/unit/model/model_test_util.h"

namespace moed {
namespace {

using ::moed::testing::FixtureDir;
using ::moed::testing::FortuneDir;
using ::moed::testing::HeaderOf;
using ::moed::testing::ReadAll;

constexpr char kName[] = "fuzz.safetensors";

const char* const kTokens[] = {"{", "}", "[", "]", "\"", ",", ":", "-1", "0", "1e309", "-0", "1.5", "null", "true",
                               "18446744073709551615", "18446744073709551616", "9223372036854775807",
                               "\"F64\"", "\"BF16\"", "\"F32\"", "\"__metadata__\"", "\"shape\"", "\"data_offsets\"",
                               "\"dtype\"", "\\u0000", "\xff", "[[[[[[[[", "{\"a\":"};
const char* const kNumbers[] = {"0", "1", "2", "-1", "4294967296", "9223372036854775807", "9223372036854775808",
                                "18446744073709551615", "18446744073709551616", "1e3", "65536", "131072"};

// Applies one random mutation to `s`.
void Mutate(std::string& s, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  switch (rng() % 7) {
    case 0:  // flip bits of a few bytes
      for (int i = 0, n = 1 + pick(4); i < n && !s.empty(); ++i) s[pick(s.size())] ^= static_cast<char>(1 << pick(8));
      break;
    case 1:  // truncate
      s.resize(pick(s.size() + 1));
      break;
    case 2:  // insert a token
      s.insert(pick(s.size() + 1), kTokens[pick(std::size(kTokens))]);
      break;
    case 3: {  // delete a range
      const size_t at = pick(s.size() + 1);
      s.erase(at, pick(64));
      break;
    }
    case 4: {  // duplicate a range
      const size_t at = pick(s.size() + 1);
      s.insert(pick(s.size() + 1), s.substr(at, pick(200)));
      break;
    }
    default: {  // replace a number inside shape / data_offsets with an edge value or a near value
      std::vector<size_t> starts;
      for (size_t i = 0; i < s.size(); ++i) {
        if (std::isdigit(static_cast<unsigned char>(s[i])) && (i == 0 || !std::isdigit(static_cast<unsigned char>(s[i - 1])))) {
          starts.push_back(i);
        }
      }
      if (starts.empty()) break;
      const size_t at = starts[pick(starts.size())];
      size_t end = at;
      while (end < s.size() && std::isdigit(static_cast<unsigned char>(s[end]))) ++end;
      std::string repl;
      if (rng() % 2 == 0) {
        repl = kNumbers[pick(std::size(kNumbers))];
      } else {
        const std::string digits = s.substr(at, std::min<size_t>(end - at, 18));
        const long long v = std::stoll(digits) + static_cast<long long>(pick(5)) - 2;
        repl = std::to_string(v);
      }
      s.replace(at, end - at, repl);
      break;
    }
  }
}

// What a successful parse promises, checked independently of the parser.
void CheckValid(const SafetensorsHeader& h, uint64_t data_size) {
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const SafetensorsEntry& e : h.tensors) {
    ASSERT_LE(e.begin, e.end) << e.name;
    ASSERT_LE(e.end, data_size) << e.name;
    uint64_t bytes = DTypeSize(e.dtype);
    for (int64_t d : e.shape) {
      ASSERT_GE(d, 0);
      bytes *= static_cast<uint64_t>(d);
    }
    ASSERT_EQ(bytes, e.end - e.begin) << e.name;
    ASSERT_EQ(h.Find(e.name), &e);
    if (e.end > e.begin) spans.push_back({e.begin, e.end});
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i) ASSERT_LE(spans[i - 1].second, spans[i].first);
}

TEST(SafetensorsFuzzTest, MutatedRealHeadersNeverCrash) {
  std::vector<std::pair<std::string, uint64_t>> seeds;  // (header, true data size)
  std::vector<std::string> paths;
  for (const char* f : {"tiny-mixtral", "tiny-qwen2-moe", "tiny-qwen3-moe", "tiny-olmoe"}) {
    paths.push_back(FixtureDir(f) + "/model.safetensors");
  }
  paths.push_back(FortuneDir() + "/model-00002-of-00002.safetensors");
  for (const std::string& p : paths) {
    const std::string header = HeaderOf(p);
    seeds.push_back({header, ReadAll(p).size() - 8 - header.size()});
  }

  std::mt19937_64 rng(20240611);
  int ok = 0, rejected = 0;
  constexpr int kRounds = 1500;  // per seed
  for (const auto& [seed, data_size] : seeds) {
    for (int round = 0; round < kRounds; ++round) {
      std::string h = seed;
      for (int n = 1 + static_cast<int>(rng() % 3); n > 0; --n) Mutate(h, rng);
      const uint64_t sizes[] = {data_size, data_size - 1, 0, data_size + 4096};
      const uint64_t size = sizes[rng() % 4];
      absl::StatusOr<SafetensorsHeader> parsed = ParseSafetensorsHeader(h, size, kName);
      if (parsed.ok()) {
        ++ok;
        CheckValid(*parsed, size);
        if (::testing::Test::HasFatalFailure()) return;
      } else {
        ++rejected;
        ASSERT_EQ(std::string(parsed.status().message()).rfind(kName, 0), 0u) << parsed.status();
      }
      // The same bytes framed as a whole file, with the length prefix sometimes corrupted.
      std::string file = ::moed::testing::Frame(h, std::string(rng() % 64, '\0'));
      if (rng() % 4 == 0) file[rng() % 8] ^= static_cast<char>(1 << (rng() % 8));
      absl::StatusOr<SafetensorsLayout> layout = SplitSafetensors(file, kName);
      if (layout.ok()) {
        ASSERT_EQ(layout->data_offset + layout->data_size, file.size());
        (void)ParseSafetensorsHeader(layout->header_json, layout->data_size, kName);
      }
    }
  }
  // Both outcomes occur: the mutations reach past the JSON syntax check.
  EXPECT_GT(ok, 100);
  EXPECT_GT(rejected, 1000);
  std::printf("fuzz: %d accepted, %d rejected\n", ok, rejected);
}

}  // namespace
}  // namespace moed
