// Authenticator: the token file format, bearer parsing, admin tokens, and no prefix/suffix matches.
#include "server/auth.h"

#include <gtest/gtest.h>

namespace moed::server {
namespace {

TEST(Authenticator, NoTokensAdmitsEveryoneAsAdmin) {
  Authenticator open;
  EXPECT_FALSE(open.enabled());
  absl::StatusOr<Caller> c = open.Authenticate(nullptr);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->admin);
}

TEST(Authenticator, TokensRolesAndRefusals) {
  absl::StatusOr<Authenticator> a = Authenticator::Parse("# comment\n  alpha \n\nbeta admin\n", "tokens");
  ASSERT_TRUE(a.ok()) << a.status();
  const auto check = [&](const std::string& header) { return a->Authenticate(&header); };
  ASSERT_TRUE(check("Bearer alpha").ok());
  EXPECT_FALSE(check("Bearer alpha")->admin);
  ASSERT_TRUE(check("Bearer beta").ok());
  EXPECT_TRUE(check("Bearer beta")->admin);
  for (const std::string bad : {"Bearer alph", "Bearer alphaa", "Bearer ", "alpha", "Basic alpha", "Bearer admin"}) {
    EXPECT_EQ(check(bad).status().code(), absl::StatusCode::kUnauthenticated) << bad;
  }
  EXPECT_EQ(a->Authenticate(nullptr).status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(Authenticator, FileErrorsNameTheLine) {
  absl::StatusOr<Authenticator> a = Authenticator::Parse("ok\nbad token here\n", "tokens");
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("tokens line 2"), std::string::npos) << a.status();
  EXPECT_NE(Authenticator::Parse("x root\n", "t").status().message().find("<token> admin"), std::string::npos);
  EXPECT_NE(Authenticator::Parse("# none\n", "t").status().message().find("holds no token"), std::string::npos);
  EXPECT_FALSE(Authenticator::Load("/nonexistent/tokens").ok());
}

}  // namespace
}  // namespace moed::server
