// Unit tests of rkctl's zkCli-compatible formats and its parsers. Expected
// strings are what Apache ZooKeeper 3.8's zkCli.sh prints.
#include <stdlib.h>
#include <time.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tools/rkctl/args.h"
#include "tools/rkctl/format.h"
#include "tools/rkctl/four_letter.h"

namespace rockeeper::rkctl {
namespace {

// Sets TZ for the test's duration.
class ScopedTz {
 public:
  explicit ScopedTz(const char* tz) {
    const char* old = getenv("TZ");
    had_ = old != nullptr;
    if (had_) old_ = old;
    setenv("TZ", tz, 1);
    tzset();
  }
  ~ScopedTz() {
    if (had_) {
      setenv("TZ", old_.c_str(), 1);
    } else {
      unsetenv("TZ");
    }
    tzset();
  }

 private:
  bool had_ = false;
  std::string old_;
};

TEST(RkctlFormatTest, JavaHex) {
  EXPECT_EQ(JavaHex(0), "0");
  EXPECT_EQ(JavaHex(0x1a2b), "1a2b");
  EXPECT_EQ(JavaHex(-1), "ffffffffffffffff");
  EXPECT_EQ(JavaHex(0x100000000LL), "100000000");
}

TEST(RkctlFormatTest, JavaDateUtc) {
  ScopedTz tz("UTC");
  EXPECT_EQ(JavaDate(0), "Thu Jan 01 00:00:00 UTC 1970");
  // 2026-11-22 09:30:00 UTC, a Sunday.
  EXPECT_EQ(JavaDate(1795339800000LL), "Sun Nov 22 09:30:00 UTC 2026");
  // Milliseconds are dropped; before the epoch they round down (Java).
  EXPECT_EQ(JavaDate(1795339800999LL), "Sun Nov 22 09:30:00 UTC 2026");
  EXPECT_EQ(JavaDate(-1), "Wed Dec 31 23:59:59 UTC 1969");
}

TEST(RkctlFormatTest, JavaDateOtherZone) {
  ScopedTz tz("EST5EDT,M3.2.0,M11.1.0");
  EXPECT_EQ(JavaDate(1795339800000LL), "Sun Nov 22 04:30:00 EST 2026");
  EXPECT_EQ(JavaDate(1784712600000LL), "Wed Jul 22 05:30:00 EDT 2026");
}

TEST(RkctlFormatTest, StatExactlyLikeZkCli) {
  ScopedTz tz("UTC");
  client::Stat s;
  s.czxid = 0x2;
  s.mzxid = 0xc;
  s.ctime_ms = 1795339800000LL;
  s.mtime_ms = 1795339861000LL;
  s.pzxid = 0xa;
  s.cversion = 7;
  s.version = 2;
  s.aversion = 1;
  s.ephemeral_owner = 0x1000012345abcdLL;
  s.data_length = 2;
  s.num_children = 7;
  EXPECT_EQ(FormatStat(s),
            "cZxid = 0x2\n"
            "ctime = Sun Nov 22 09:30:00 UTC 2026\n"
            "mZxid = 0xc\n"
            "mtime = Sun Nov 22 09:31:01 UTC 2026\n"
            "pZxid = 0xa\n"
            "cversion = 7\n"
            "dataVersion = 2\n"
            "aclVersion = 1\n"
            "ephemeralOwner = 0x1000012345abcd\n"
            "dataLength = 2\n"
            "numChildren = 7\n");
}

TEST(RkctlFormatTest, ListsAndAcls) {
  EXPECT_EQ(JavaList({}), "[]");
  EXPECT_EQ(JavaList({"a", "b-0000000001"}), "[a, b-0000000001]");
  EXPECT_EQ(PermString(client::perms::kAll), "cdrwa");
  EXPECT_EQ(PermString(client::perms::kRead | client::perms::kWrite), "rw");
  EXPECT_EQ(PermString(0), "");
  EXPECT_EQ(FormatAcl({{client::perms::kRead, "world", "anyone"},
                       {client::perms::kAll, "digest", "alice:x="}}),
            "'world,'anyone\n: r\n'digest,'alice:x=\n: cdrwa\n");
}

TEST(RkctlFormatTest, ParseAclLikeZkCli) {
  ParsedAcl p =
      ParseAcl("world:anyone:cdrwa,digest:bob:Nb=:r,ip:10.0.0.0/8:rw");
  ASSERT_EQ(p.acl.size(), 3u);
  EXPECT_TRUE(p.warnings.empty());
  EXPECT_EQ(p.acl[0], (client::Acl{client::perms::kAll, "world", "anyone"}));
  // The id keeps its inner colons: the perms follow the last one.
  EXPECT_EQ(p.acl[1], (client::Acl{client::perms::kRead, "digest", "bob:Nb="}));
  EXPECT_EQ(p.acl[2].perms, client::perms::kRead | client::perms::kWrite);

  p = ParseAcl("bad:acl");
  EXPECT_TRUE(p.acl.empty());
  EXPECT_EQ(p.warnings, std::vector<std::string>{
                            "bad:acl does not have the form scheme:id:perm"});

  p = ParseAcl("world:anyone:cdrwaz");
  ASSERT_EQ(p.acl.size(), 1u);
  EXPECT_EQ(p.acl[0].perms, client::perms::kAll);
  EXPECT_EQ(p.warnings, std::vector<std::string>{"Unknown perm type: z"});
}

TEST(RkctlFormatTest, ErrorMessages) {
  namespace zk = client::zk;
  EXPECT_EQ(ZkCliErrorMessage(zk::kNoNode, "/a"), "Node does not exist: /a");
  EXPECT_EQ(ZkCliErrorMessage(zk::kNodeExists, "/a"),
            "Node already exists: /a");
  EXPECT_EQ(ZkCliErrorMessage(zk::kNotEmpty, "/a"), "Node not empty: /a");
  EXPECT_EQ(ZkCliErrorMessage(zk::kNoAuth, "/a"),
            "Insufficient permission : /a");
  EXPECT_EQ(ZkCliErrorMessage(zk::kBadVersion, "/a"),
            "version No is not valid : /a");
  EXPECT_EQ(ZkCliErrorMessage(zk::kNoChildrenForEphemerals, "/e/x"),
            "Ephemerals cannot have children: /e/x");
  EXPECT_EQ(ZkCliErrorMessage(zk::kNoWatcher, "/a"),
            "KeeperErrorCode = No such watcher for /a");
  EXPECT_EQ(ZkCliErrorMessage(zk::kConnectionLoss, "/a"),
            "KeeperErrorCode = ConnectionLoss for /a");
  EXPECT_EQ(ZkCliErrorMessage(zk::kAuthFailed, ""),
            "KeeperErrorCode = AuthFailed");
}

TEST(RkctlFormatTest, ValidatePathLikeZooKeeper) {
  EXPECT_EQ(ValidatePath("/"), std::nullopt);
  EXPECT_EQ(ValidatePath("/a/b-1"), std::nullopt);
  EXPECT_EQ(ValidatePath("/a/.b"), std::nullopt);
  EXPECT_EQ(ValidatePath(""), "Path length must be > 0");
  EXPECT_EQ(ValidatePath("a"), "Path must start with / character");
  EXPECT_EQ(ValidatePath("/a/"), "Path must not end with / character");
  EXPECT_EQ(ValidatePath("/a//b"),
            "Invalid path string \"/a//b\" caused by empty node name "
            "specified @3");
  EXPECT_EQ(ValidatePath("/a/."),
            "Invalid path string \"/a/.\" caused by relative paths not "
            "allowed @3");
  EXPECT_EQ(ValidatePath("/a/.."),
            "Invalid path string \"/a/..\" caused by relative paths not "
            "allowed @4");
  EXPECT_EQ(ValidatePath("/a\x01"),
            "Invalid path string \"/a\x01\" caused by invalid character @2");
  // A sequential node may end in '/': the sequence number follows.
  EXPECT_EQ(ValidatePath("/a/", /*sequential=*/true), std::nullopt);
}

TEST(RkctlFormatTest, WatchedEvent) {
  client::WatchEvent e;
  e.type = client::EventType::kNodeDataChanged;
  e.path = "/a";
  EXPECT_EQ(FormatWatchedEvent(e),
            "WatchedEvent state:SyncConnected type:NodeDataChanged path:/a");
  client::WatchEvent s;
  s.type = client::EventType::kNone;
  s.state = client::SessionState::kDisconnected;
  EXPECT_EQ(FormatWatchedEvent(s),
            "WatchedEvent state:Disconnected type:None path:null");
}

TEST(RkctlFormatTest, StatsTrack) {
  StatsTrack q =
      ParseStatsTrack("count=5,bytes=-1=;byteHardLimit=-1;countHardLimit=7");
  EXPECT_EQ(q.count, 5);
  EXPECT_EQ(q.bytes, -1);
  EXPECT_EQ(q.count_hard_limit, 7);
  EXPECT_EQ(q.byte_hard_limit, -1);
  EXPECT_EQ(FormatStatsTrack(q),
            "count=5,bytes=-1=;byteHardLimit=-1;countHardLimit=7");
  StatsTrack s = ParseStatsTrack("count=7,bytes=6");
  EXPECT_FALSE(s.count_hard_limit.has_value());
  EXPECT_EQ(FormatStatsTrack(s), "count=7,bytes=6");
  s.count_hard_limit = 3;
  EXPECT_EQ(FormatStatsTrack(s), "count=7,bytes=6=;countHardLimit=3");
  EXPECT_EQ(FormatStatsTrack(ParseStatsTrack("garbage")), "count=-1,bytes=-1");
}

TEST(RkctlFormatTest, SplitCommandLineLikeZkCli) {
  using V = std::vector<std::string>;
  EXPECT_EQ(SplitCommandLine("  create  /a \"hello world\" "),
            (V{"create", "/a", "hello world"}));
  EXPECT_EQ(SplitCommandLine("set /a ''"), (V{"set", "/a", ""}));
  EXPECT_EQ(SplitCommandLine("set /a 'x \"y\"'"), (V{"set", "/a", "x \"y\""}));
  EXPECT_EQ(SplitCommandLine("get /a\t-s"), (V{"get", "/a", "-s"}));
  EXPECT_EQ(SplitCommandLine("create /a \"unterminated"),
            (V{"create", "/a", "unterminated"}));
  EXPECT_EQ(SplitCommandLine(""), V{});
}

TEST(RkctlArgsTest, OptionsAnywhereAttachedAndClustered) {
  std::vector<OptionSpec> specs = {{'s', false}, {'e', false}, {'v', true}};
  absl::StatusOr<ParsedArgs> p =
      ParseOptions({"create", "-se", "/a", "-v5", "data", "--json"}, specs);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->args, (std::vector<std::string>{"create", "/a", "data"}));
  EXPECT_TRUE(p->Has('s'));
  EXPECT_TRUE(p->Has('e'));
  EXPECT_EQ(p->Get('v'), "5");
  EXPECT_TRUE(p->json);

  p = ParseOptions({"set", "-v", "3", "/a", "-1"}, specs);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->Get('v'), "3");
  EXPECT_EQ(p->args, (std::vector<std::string>{"set", "/a", "-1"}));

  p = ParseOptions({"set", "--", "-s", "/a"}, specs);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->Has('s'));
  EXPECT_EQ(p->args, (std::vector<std::string>{"set", "-s", "/a"}));
}

TEST(RkctlArgsTest, Errors) {
  std::vector<OptionSpec> specs = {{'s', false}, {'v', true}};
  absl::StatusOr<ParsedArgs> p = ParseOptions({"ls", "-x", "/"}, specs);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "Unrecognized option: -x");
  p = ParseOptions({"set", "/a", "-v"}, specs);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "Missing argument for option: v");
  p = ParseOptions({"ls", "--long"}, specs);
  EXPECT_FALSE(p.ok());
}

TEST(RkctlArgsTest, JavaNumbers) {
  EXPECT_EQ(ParseJavaInt("42"), 42);
  EXPECT_EQ(ParseJavaInt("-1"), -1);
  EXPECT_EQ(ParseJavaInt("2147483648"), std::nullopt);
  EXPECT_EQ(ParseJavaInt("0x10"), std::nullopt);
  EXPECT_EQ(ParseJavaInt(""), std::nullopt);
  EXPECT_EQ(ParseJavaLong("9000000000"), 9000000000LL);
  EXPECT_EQ(ParseJavaLong("1.5"), std::nullopt);
}

TEST(RkctlFourLetterTest, HostPort) {
  std::string host;
  int port = 0;
  ASSERT_TRUE(ParseHostPort("", "10.0.0.1", 2181, &host, &port));
  EXPECT_EQ(host, "10.0.0.1");
  EXPECT_EQ(port, 2181);
  ASSERT_TRUE(ParseHostPort("3000", "10.0.0.1", 2181, &host, &port));
  EXPECT_EQ(host, "10.0.0.1");
  EXPECT_EQ(port, 3000);
  ASSERT_TRUE(ParseHostPort("zk1:2182", "h", 2181, &host, &port));
  EXPECT_EQ(host, "zk1");
  EXPECT_EQ(port, 2182);
  ASSERT_TRUE(ParseHostPort("[::1]:2183", "h", 2181, &host, &port));
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 2183);
  ASSERT_TRUE(ParseHostPort("zk2", "h", 2181, &host, &port));
  EXPECT_EQ(host, "zk2");
  EXPECT_EQ(port, 2181);
  EXPECT_FALSE(ParseHostPort("zk:99999", "h", 2181, &host, &port));
  EXPECT_EQ(FirstHost("a:1,b:2"), "a");
  EXPECT_EQ(FirstHost("[::1]:2281"), "::1");
}

TEST(RkctlFourLetterTest, KeyValues) {
  auto kv = ParseKeyValues("zk_version\t3.8.0\nzk_znode_count\t5\n");
  ASSERT_EQ(kv.size(), 2u);
  EXPECT_EQ(kv[1].first, "zk_znode_count");
  EXPECT_EQ(kv[1].second, "5");
  kv = ParseKeyValues("Zxid: 0x1f\nMode: standalone\n");
  ASSERT_EQ(kv.size(), 2u);
  EXPECT_EQ(kv[0].first, "Zxid");
  EXPECT_EQ(kv[1].second, "standalone");
}

TEST(RkctlJsonTest, WriterAndData) {
  JsonWriter w;
  w.BeginObject().Key("a").Int(-3).Key("b").BeginArray().String("x\"\n");
  w.Bool(true).Null().EndArray().Key("c").Raw("{}").EndObject();
  EXPECT_EQ(w.str(), R"({"a":-3,"b":["x\"\n",true,null],"c":{}})");
  JsonWriter d;
  d.BeginObject();
  DataJsonMembers(d, std::string("\xff\x00\x01", 3));
  d.EndObject();
  EXPECT_EQ(d.str(), R"({"encoding":"base64","data":"/wAB"})");
  EXPECT_TRUE(IsValidUtf8("h\xc3\xa9llo"));
  EXPECT_FALSE(IsValidUtf8("\xc3"));
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // a surrogate
  EXPECT_EQ(Base64Encode("ab"), "YWI=");
  EXPECT_EQ(Base64Encode("abc"), "YWJj");
}

}  // namespace
}  // namespace rockeeper::rkctl
