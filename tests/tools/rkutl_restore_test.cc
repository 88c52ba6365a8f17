// dump -> restore -> dump on random histories: every create mode, deletes,
// setData, setACL, multi, sessions opened and closed. The restored state must
// be identical (every Stat field, data, ACL, session, last zxid).
#include <cstdlib>
#include <iostream>
#include <random>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"
#include "tests/tools/rkutl_test_util.h"

namespace rockeeper::rkutl::testing {
namespace {

using engine::RequestContext;
using engine::testing::Create;
using engine::testing::EngineHarness;
using engine::testing::TempDir;

class RandomHistory {
 public:
  explicit RandomHistory(uint32_t seed) : rng_(seed) {}

  void Run(EngineHarness& h, int ops) {
    for (int i = 0; i < ops; ++i) Step(h);
  }

 private:
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  std::string Path() {
    static constexpr const char* kNames[] = {"a", "b", "c", "seq-"};
    std::string p;
    const int depth = 1 + Pick(3);
    for (int d = 0; d < depth; ++d) absl::StrAppend(&p, "/", kNames[Pick(3)]);
    return p;
  }

  std::string Data() {
    switch (Pick(4)) {
      case 0:
        return "";
      case 1:
        return std::string("\x00\xff\x10", 3);
      default:
        return absl::StrCat("v", Pick(1000));
    }
  }

  engine::AclVector Acl() {
    switch (Pick(3)) {
      case 0:
        return engine::OpenAclUnsafe();
      case 1:
        return {engine::MakeAcl(engine::perms::kRead, "world", "anyone")};
      default:
        return {engine::MakeAcl(engine::perms::kAll, "digest",
                                engine::DigestId("u:p")),
                engine::MakeAcl(engine::perms::kRead, "world", "anyone")};
    }
  }

  engine::CreateRequest RandomCreate() {
    engine::CreateRequest c = Create(Path(), Data());
    c.acl = Acl();
    static constexpr int32_t kModes[] = {
        engine::kPersistent, engine::kPersistentSequential,
        engine::kEphemeral,  engine::kEphemeralSequential,
        engine::kContainer,  engine::kPersistentWithTtl};
    c.flags = kModes[Pick(6)];
    if (c.flags == engine::kPersistentWithTtl) c.ttl_ms = 1000 + Pick(5000);
    return c;
  }

  RequestContext Session() {
    RequestContext ctx;
    ctx.session_id = 0x100 + Pick(3);
    return ctx;
  }

  void Step(EngineHarness& h) {
    switch (Pick(9)) {
      case 0:
      case 1:
      case 2:
        h.Run(RandomCreate(), Session());
        break;
      case 3:
        h.Run(engine::DeleteRequest{Path(), -1});
        break;
      case 4:
        h.Run(engine::SetDataRequest{Path(), Data(), -1});
        break;
      case 5:
        h.Run(engine::SetAclRequest{Path(), Acl(), -1});
        break;
      case 6: {
        engine::MultiRequest m;
        for (int k = 0, n = 1 + Pick(3); k < n; ++k) {
          if (Pick(2) == 0) {
            m.ops.push_back(Create(Path(), Data()));
          } else if (Pick(2) == 0) {
            m.ops.push_back(engine::DeleteRequest{Path(), -1});
          } else {
            m.ops.push_back(engine::SetDataRequest{Path(), Data(), -1});
          }
        }
        h.Run(m, Session());
        break;
      }
      case 7:
        h.Run(engine::CreateSessionRequest{1000 * (1 + Pick(30)), "pw"},
              Session());
        break;
      default:
        if (Pick(3) == 0) h.Run(engine::CloseSessionRequest{}, Session());
        break;
    }
  }

  std::mt19937 rng_;
};

std::string Body(const std::string& dump) {
  return dump.substr(dump.find('\n') + 1);
}

// RK_RKUTL_SEEDS (default 4) histories of 600 requests each.
TEST(RkutlRestoreTest, RandomHistoriesRoundTrip) {
  const char* env = std::getenv("RK_RKUTL_SEEDS");
  const uint32_t seeds = env != nullptr ? std::atoi(env) : 4;
  for (uint32_t seed = 1; seed <= seeds; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    TempDir dir;
    {
      engine::PrepOptions options;
      options.extended_types_enabled = true;
      options.skip_acl = true;
      EngineHarness h(dir.Sub("state"), options);
      RandomHistory(seed).Run(h, 600);
    }
    RunResult dump = RunRkutl(
        {"snapshot", "dump", "--data-dir", dir.path(), "--live", "--json"});
    ASSERT_EQ(dump.exit_code, 0) << dump.err;
    WriteFile(dir.Sub("dump.json"), dump.out);
    RunResult r =
        RunRkutl({"snapshot", "restore", "--json", dir.Sub("dump.json"),
                  "--data-dir", dir.Sub("restored")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    RunResult again = RunRkutl({"snapshot", "dump", "--snapshot",
                                dir.Sub("restored") + "/state", "--json"});
    ASSERT_EQ(again.exit_code, 0) << again.err;
    EXPECT_EQ(Body(dump.out), Body(again.out));
    if (std::getenv("RK_RKUTL_VERBOSE") != nullptr) {
      std::cout << RunRkutl(
                       {"snapshot", "stat", "--data-dir", dir.path(), "--live"})
                       .out
                << RunRkutl({"txnlog", "stat", "--log-dir", dir.path()}).out;
    }
  }
}

}  // namespace
}  // namespace rockeeper::rkutl::testing
