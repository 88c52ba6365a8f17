// rkutl's command line: help, usage errors (exit 2 with the usage), unknown
// commands.
#include <filesystem>

#include "gtest/gtest.h"
#include "tests/engine/test_util.h"
#include "tests/tools/rkutl_test_util.h"

namespace rockeeper::rkutl::testing {
namespace {

using engine::testing::TempDir;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(RkutlCliTest, HelpListsEveryCommand) {
  for (const char* flag : {"--help", "-h", "help"}) {
    RunResult r = RunRkutl({flag});
    EXPECT_EQ(r.exit_code, 0) << flag;
    for (const char* cmd : {"snapshot list", "snapshot dump", "snapshot stat",
                            "snapshot restore", "txnlog dump", "txnlog verify",
                            "txnlog stat", "txnlog truncate", "purge"}) {
      EXPECT_TRUE(Contains(r.out, cmd)) << cmd;
    }
  }
}

TEST(RkutlCliTest, CommandHelp) {
  RunResult r = RunRkutl({"snapshot", "dump", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.out, "usage: rkutl snapshot dump")) << r.out;
  EXPECT_TRUE(Contains(r.out, "--max-depth"));
  r = RunRkutl({"txnlog", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.out, "txnlog verify"));
  EXPECT_FALSE(Contains(r.out, "snapshot dump"));
  r = RunRkutl({"purge", "-h"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.out, "usage: rkutl purge"));
}

struct UsageCase {
  std::vector<std::string> args;
  std::string message;  // expected in stderr
  std::string usage;    // expected usage line in stderr
};

TEST(RkutlCliTest, UsageErrorsExitTwoWithUsage) {
  TempDir dir;
  const std::vector<UsageCase> cases = {
      {{}, "no command given", "usage: rkutl <command>"},
      {{"frobnicate"}, "unknown command \"frobnicate\"", "usage: rkutl"},
      {{"snapshot"}, "missing snapshot subcommand", "snapshot list"},
      {{"snapshot", "eat"}, "unknown snapshot subcommand", "snapshot dump"},
      {{"snapshot", "dump"},
       "exactly one of --snapshot or --data-dir",
       "usage: rkutl snapshot dump"},
      {{"snapshot", "dump", "--snapshot", "a", "--data-dir", "b"},
       "exactly one of",
       "usage: rkutl snapshot dump"},
      {{"snapshot", "dump", "--snapshot", "a", "--live"},
       "--live needs",
       "usage: rkutl snapshot dump"},
      {{"snapshot", "dump", "--snapshot", dir.path(), "--max-depth", "x"},
       "not an integer",
       "usage: rkutl snapshot dump"},
      {{"snapshot", "dump", "--snapshot", dir.path(), "--max-depth", "-1"},
       "--max-depth must be 0 or more",
       "usage: rkutl snapshot dump"},
      {{"snapshot", "dump", "--snapshot", dir.path(), "--path", "a/b"},
       "not a valid znode path",
       "usage: rkutl snapshot dump"},
      {{"snapshot", "dump", "--snapshot"},
       "--snapshot needs a value",
       "usage: rkutl snapshot dump"},
      {{"snapshot", "dump", "--bogus"},
       "unknown flag --bogus",
       "usage: rkutl snapshot dump"},
      {{"snapshot", "list", "--data-dir", "x", "extra"},
       "unexpected argument \"extra\"",
       "usage: rkutl snapshot list"},
      {{"snapshot", "list", "--json=yes", "--data-dir", "x"},
       "--json takes no value",
       "usage: rkutl snapshot list"},
      {{"snapshot", "restore", "--data-dir", "x"},
       "exactly one of",
       "usage: rkutl snapshot restore"},
      {{"txnlog", "verify"},
       "missing required flag --log-dir",
       "usage: rkutl txnlog verify"},
      {{"txnlog", "dump", "--log-dir", "x", "--log-dir", "y"},
       "given twice",
       "usage: rkutl txnlog dump"},
      {{"txnlog", "dump", "--log-dir", "x", "--from", "9", "--to", "3"},
       "--to is before --from",
       "usage: rkutl txnlog dump"},
      {{"txnlog", "truncate", "--log-dir", "x"},
       "--after",
       "usage: rkutl txnlog truncate"},
      {{"purge", "--data-dir", dir.path()}, "--keep", "usage: rkutl purge"},
      {{"purge", "--data-dir", dir.path(), "--keep", "2"},
       "--keep must be at least 3",
       "usage: rkutl purge"},
  };
  for (const UsageCase& c : cases) {
    std::string joined;
    for (const auto& a : c.args) joined += a + " ";
    RunResult r = RunRkutl(c.args);
    EXPECT_EQ(r.exit_code, 2) << joined << "\n" << r.err;
    EXPECT_TRUE(Contains(r.err, c.message)) << joined << "\n" << r.err;
    EXPECT_TRUE(Contains(r.err, c.usage)) << joined << "\n" << r.err;
    EXPECT_TRUE(r.out.empty()) << joined;
  }
}

TEST(RkutlCliTest, MissingInputsAreDataErrorsNamingThePath) {
  TempDir dir;
  const std::string missing = dir.Sub("nope");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"snapshot", "list", "--data-dir", missing},
           {"snapshot", "dump", "--snapshot", missing},
           {"snapshot", "dump", "--data-dir", dir.path()},  // no snapshots
           {"snapshot", "stat", "--data-dir", missing, "--live"},
           {"snapshot", "dump", "--snapshot", dir.path()},  // not a DB
           {"txnlog", "verify", "--log-dir", missing},
           {"txnlog", "dump", "--log-dir", missing},
           {"txnlog", "stat", "--log-dir", missing},
           {"purge", "--data-dir", dir.path(), "--keep", "3", "--log-dir",
            missing},
           {"snapshot", "restore", "--json", missing, "--data-dir",
            dir.Sub("new")},
       }) {
    RunResult r = RunRkutl(args);
    EXPECT_EQ(r.exit_code, 1) << args[0] << " " << args[1] << "\n" << r.err;
    EXPECT_TRUE(Contains(r.err, "rkutl: ")) << r.err;
    EXPECT_TRUE(Contains(r.err, args[1] == "dump" && args[3] == dir.path() &&
                                        args[2] == "--data-dir"
                                    ? "no snapshot in"
                                    : dir.path()))
        << r.err;
  }
  // Nothing was created by the failed commands.
  EXPECT_FALSE(std::filesystem::exists(missing));
  EXPECT_FALSE(std::filesystem::exists(dir.Sub("new")));
}

}  // namespace
}  // namespace rockeeper::rkutl::testing
