#include "server/config.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rockeeper::server {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

// Parses `text`, failing the test on error.
ServerConfig MustParse(const std::string& text) {
  absl::StatusOr<ServerConfig> cfg = ParseZooCfg(text);
  EXPECT_TRUE(cfg.ok()) << cfg.status() << "\n--- input ---\n" << text;
  return cfg.ok() ? *std::move(cfg) : ServerConfig{};
}

// The error message of parsing `text`, which must fail with InvalidArgument.
std::string ParseError(const std::string& text) {
  absl::StatusOr<ServerConfig> cfg = ParseZooCfg(text);
  EXPECT_FALSE(cfg.ok()) << "parsed:\n" << text;
  if (cfg.ok()) return "";
  EXPECT_EQ(cfg.status().code(), absl::StatusCode::kInvalidArgument)
      << cfg.status();
  return std::string(cfg.status().message());
}

// A fresh directory under the test temp dir, removed at destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = ::testing::TempDir() + "/rk-config-test-XXXXXX";
    path_ = mkdtemp(tmpl.data());
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }
  std::string Write(const std::string& name, const std::string& data) const {
    const std::string p = path_ + "/" + name;
    std::ofstream(p, std::ios::binary) << data;
    return p;
  }

 private:
  std::string path_;
};

constexpr char kThreeNodes[] =
    "tickTime=2000\n"
    "dataDir=/var/lib/zookeeper/\n"
    "clientPort=2181\n"
    "initLimit=5\n"
    "syncLimit=2\n"
    "server.1=zoo1:2888:3888\n"
    "server.2=zoo2:2888:3888\n"
    "server.3=zoo3:2888:3888\n";

// --------------------------------------------------------------- defaults

TEST(ParseZooCfgTest, MinimalFileGetsDefaults) {
  const ServerConfig cfg = MustParse("# only the required key\ndataDir=/zk\n");
  EXPECT_EQ(cfg.data_dir, "/zk");
  EXPECT_EQ(cfg.data_log_dir, "/zk");
  EXPECT_EQ(cfg.tick_time_ms, 2000);
  EXPECT_EQ(cfg.init_limit_ticks, 10);
  EXPECT_EQ(cfg.sync_limit_ticks, 5);
  EXPECT_EQ(cfg.min_session_timeout_ms, 4000);
  EXPECT_EQ(cfg.max_session_timeout_ms, 40000);
  EXPECT_EQ(cfg.client_port, 2181);
  EXPECT_EQ(cfg.client_port_address, "0.0.0.0");
  EXPECT_EQ(cfg.grpc_port, 2281);
  EXPECT_EQ(cfg.grpc_port_address, "0.0.0.0");
  EXPECT_TRUE(cfg.admin_enable_server);
  EXPECT_EQ(cfg.admin_server_port, 8080);
  EXPECT_EQ(cfg.admin_server_address, "0.0.0.0");
  EXPECT_EQ(cfg.max_client_cnxns, 60);
  EXPECT_EQ(cfg.autopurge_snap_retain_count, 3);
  EXPECT_EQ(cfg.autopurge_purge_interval_hours, 0);
  EXPECT_EQ(cfg.snap_count, 100000);
  EXPECT_EQ(cfg.snap_size_limit_bytes, int64_t{4} << 30);
  EXPECT_EQ(cfg.pre_alloc_size_bytes, int64_t{64} << 20);
  EXPECT_TRUE(cfg.force_sync);
  EXPECT_EQ(cfg.fsync_warning_threshold_ms, 1000);
  EXPECT_EQ(cfg.jute_max_buffer_bytes, 1048575);
  EXPECT_EQ(cfg.global_outstanding_limit, 1000);
  EXPECT_TRUE(cfg.leader_serves);
  EXPECT_TRUE(cfg.standalone_enabled);
  EXPECT_FALSE(cfg.reconfig_enabled);
  EXPECT_THAT(cfg.four_letter_words, ElementsAre("srvr"));
  EXPECT_EQ(cfg.election_alg, 3);
  EXPECT_EQ(cfg.peer_type, PeerType::kParticipant);
  EXPECT_FALSE(cfg.skip_acl);
  EXPECT_FALSE(cfg.extended_types_enabled);
  EXPECT_FALSE(cfg.enforce_quota);
  EXPECT_EQ(cfg.super_digest, "");
  EXPECT_EQ(cfg.block_cache_size_bytes, int64_t{256} << 20);
  EXPECT_EQ(cfg.write_buffer_size_bytes, int64_t{64} << 20);
  EXPECT_EQ(cfg.children_cache_size_bytes, int64_t{32} << 20);
  EXPECT_EQ(cfg.row_cache_size_bytes, 0);
  EXPECT_EQ(cfg.znode_cache_size_bytes, int64_t{512} << 20);
  EXPECT_EQ(cfg.wire_threads, 0);
  EXPECT_EQ(cfg.read_io_threads, 16);
  EXPECT_THAT(cfg.servers, IsEmpty());
  EXPECT_EQ(cfg.my_id, 0);
  EXPECT_TRUE(cfg.standalone());
  EXPECT_THAT(cfg.warnings, IsEmpty());
  EXPECT_THAT(cfg.keys_set, ElementsAre("dataDir"));
  EXPECT_EQ(cfg.config_path, "");
}

TEST(ParseZooCfgTest, DefaultStandaloneConfig) {
  const ServerConfig cfg = DefaultStandaloneConfig();
  EXPECT_EQ(cfg.data_dir, "./data");
  EXPECT_EQ(cfg.data_log_dir, "./data");
  EXPECT_EQ(cfg.client_port, 2181);
  EXPECT_EQ(cfg.grpc_port, 2281);
  EXPECT_EQ(cfg.admin_server_port, 8080);
  EXPECT_EQ(cfg.min_session_timeout_ms, 4000);
  EXPECT_EQ(cfg.max_session_timeout_ms, 40000);
  EXPECT_TRUE(cfg.standalone());
  // The same as a file that only sets dataDir=./data.
  ServerConfig parsed = MustParse("dataDir=./data");
  parsed.keys_set.clear();
  EXPECT_EQ(cfg, parsed);
}

TEST(ParseZooCfgTest, MissingDataDirIsAnError) {
  const std::string msg = ParseError("tickTime=2000\nclientPort=2181\n");
  EXPECT_THAT(msg, HasSubstr("zoo.cfg: dataDir is not set"));
}

// ------------------------------------------------------------- every key

constexpr char kEveryKey[] =
    "tickTime=3000\n"
    "initLimit=20\n"
    "syncLimit=7\n"
    "minSessionTimeout=5000\n"
    "maxSessionTimeout=90000\n"
    "dataDir=/data/zk\n"
    "dataLogDir=/log/zk\n"
    "snapCount=5000\n"
    "snapSizeLimitInKb=1024\n"
    "preAllocSize=1024\n"
    "forceSync=no\n"
    "fsync.warningthresholdms=250\n"
    "autopurge.snapRetainCount=10\n"
    "autopurge.purgeInterval=24\n"
    "blockCacheSizeMb=512\n"
    "writeBufferSizeMb=32\n"
    "childrenCacheSizeMb=0\n"
    "rowCacheSizeMb=8\n"
    "clientPort=2191\n"
    "wireThreads=3\n"
    "readIoThreads=0\n"
    "clientPortAddress=10.0.0.5\n"
    "grpcPort=2291\n"
    "grpcPortAddress=[::1]\n"
    "admin.enableServer=false\n"
    "admin.serverPort=9090\n"
    "admin.serverAddress=127.0.0.1\n"
    "maxClientCnxns=0\n"
    "globalOutstandingLimit=5000\n"
    "jute.maxbuffer=4194304\n"
    "4lw.commands.whitelist=stat, ruok ,conf\n"
    "leaderServes=no\n"
    "standaloneEnabled=false\n"
    "reconfigEnabled=true\n"
    "electionAlg=3\n"
    "peerType=observer\n"
    "skipACL=yes\n"
    "extendedTypesEnabled=TRUE\n"
    "enforceQuota=Yes\n"
    "superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=\n"
    "server.1=a.example.com:2888:3888\n"
    "server.2=b.example.com:2888:3888\n"
    "server.3=c.example.com:2888:3888\n"
    "server.4=d.example.com:2888:3888:observer;2191\n";

TEST(ParseZooCfgTest, EveryKeyParsed) {
  const ServerConfig cfg = MustParse(kEveryKey);
  EXPECT_EQ(cfg.tick_time_ms, 3000);
  EXPECT_EQ(cfg.init_limit_ticks, 20);
  EXPECT_EQ(cfg.sync_limit_ticks, 7);
  EXPECT_EQ(cfg.min_session_timeout_ms, 5000);
  EXPECT_EQ(cfg.max_session_timeout_ms, 90000);
  EXPECT_EQ(cfg.data_dir, "/data/zk");
  EXPECT_EQ(cfg.data_log_dir, "/log/zk");
  EXPECT_EQ(cfg.snap_count, 5000);
  EXPECT_EQ(cfg.snap_size_limit_bytes, 1024 * 1024);
  EXPECT_EQ(cfg.pre_alloc_size_bytes, 1024 * 1024);
  EXPECT_FALSE(cfg.force_sync);
  EXPECT_EQ(cfg.fsync_warning_threshold_ms, 250);
  EXPECT_EQ(cfg.autopurge_snap_retain_count, 10);
  EXPECT_EQ(cfg.autopurge_purge_interval_hours, 24);
  EXPECT_EQ(cfg.block_cache_size_bytes, int64_t{512} << 20);
  EXPECT_EQ(cfg.write_buffer_size_bytes, int64_t{32} << 20);
  EXPECT_EQ(cfg.children_cache_size_bytes, 0);
  EXPECT_EQ(cfg.row_cache_size_bytes, int64_t{8} << 20);
  EXPECT_EQ(cfg.client_port, 2191);
  EXPECT_EQ(cfg.wire_threads, 3);
  EXPECT_EQ(cfg.read_io_threads, 0);
  EXPECT_EQ(cfg.client_port_address, "10.0.0.5");
  EXPECT_EQ(cfg.grpc_port, 2291);
  EXPECT_EQ(cfg.grpc_port_address, "::1");
  EXPECT_FALSE(cfg.admin_enable_server);
  EXPECT_EQ(cfg.admin_server_port, 9090);
  EXPECT_EQ(cfg.admin_server_address, "127.0.0.1");
  EXPECT_EQ(cfg.max_client_cnxns, 0);
  EXPECT_EQ(cfg.global_outstanding_limit, 5000);
  EXPECT_EQ(cfg.jute_max_buffer_bytes, 4194304);
  EXPECT_THAT(cfg.four_letter_words,
              ElementsAre("stat", "ruok", "conf", "srvr"));
  EXPECT_FALSE(cfg.leader_serves);
  EXPECT_FALSE(cfg.standalone_enabled);
  EXPECT_TRUE(cfg.reconfig_enabled);
  EXPECT_EQ(cfg.election_alg, 3);
  EXPECT_EQ(cfg.peer_type, PeerType::kObserver);
  EXPECT_TRUE(cfg.skip_acl);
  EXPECT_TRUE(cfg.extended_types_enabled);
  EXPECT_TRUE(cfg.enforce_quota);
  EXPECT_EQ(cfg.super_digest, "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
  ASSERT_EQ(cfg.servers.size(), 4u);
  EXPECT_TRUE(cfg.servers[3].is_observer);
  EXPECT_EQ(cfg.servers[3].client_port, 2191);
  EXPECT_FALSE(cfg.standalone());
  EXPECT_THAT(cfg.warnings, IsEmpty());
  EXPECT_TRUE(cfg.IsSet("grpcPortAddress"));
  EXPECT_FALSE(cfg.IsSet("nonsense"));
}

TEST(ParseZooCfgTest, ZookeeperPrefixedAndAlternativeSpellings) {
  const ServerConfig cfg = MustParse(
      "dataDir=/zk\n"
      "zookeeper.snapCount=777\n"
      "zookeeper.extendedTypesEnabled=true\n"
      "zookeeper.enforceQuota=true\n"
      "zookeeper.jute.maxbuffer=100\n"
      "zookeeper.admin.serverPort=7070\n"
      "DigestAuthenticationProvider.superDigest=super:D/"
      "InIHSb7yEEbrWz8b9l71RjZJU=\n");
  EXPECT_EQ(cfg.snap_count, 777);
  EXPECT_TRUE(cfg.extended_types_enabled);
  EXPECT_TRUE(cfg.enforce_quota);
  EXPECT_EQ(cfg.jute_max_buffer_bytes, 100);
  EXPECT_EQ(cfg.admin_server_port, 7070);
  EXPECT_EQ(cfg.super_digest, "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
  EXPECT_THAT(cfg.warnings, IsEmpty());
  EXPECT_TRUE(cfg.IsSet("superDigest"));
  // Keys that are not system properties in ZooKeeper get no such alias.
  const ServerConfig other = MustParse("dataDir=/zk\nzookeeper.tickTime=5\n");
  EXPECT_EQ(other.tick_time_ms, 2000);
  EXPECT_THAT(other.warnings,
              ElementsAre(HasSubstr("unknown key \"zookeeper.tickTime\"")));
}

TEST(ParseZooCfgTest, BooleansAcceptTrueFalseYesNoInAnyCase) {
  for (const char* v : {"true", "TRUE", "yes", "YeS"}) {
    EXPECT_TRUE(MustParse(absl::StrCat("dataDir=/d\nskipACL=", v)).skip_acl)
        << v;
  }
  for (const char* v : {"false", "False", "no", "NO"}) {
    EXPECT_FALSE(
        MustParse(absl::StrCat("dataDir=/d\nforceSync=", v)).force_sync)
        << v;
  }
}

// ------------------------------------------------------------ bad values

struct BadValueCase {
  std::string line;    // placed on line 3
  std::string expect;  // expected message after "zoo.cfg:3: "
};

class BadValueTest : public ::testing::TestWithParam<BadValueCase> {};

TEST_P(BadValueTest, NamesLineKeyValueAndReason) {
  const std::string text =
      absl::StrCat("# comment\ndataDir=/zk\n", GetParam().line, "\n");
  EXPECT_EQ(ParseError(text), "zoo.cfg:3: " + GetParam().expect);
}

INSTANTIATE_TEST_SUITE_P(
    Keys, BadValueTest,
    ::testing::Values(
        BadValueCase{"tickTime=abc", "tickTime=\"abc\": not an integer"},
        BadValueCase{"tickTime=0", "tickTime=\"0\": must be > 0"},
        BadValueCase{"tickTime = 20 00", "tickTime=\"20 00\": not an integer"},
        BadValueCase{"initLimit=-1", "initLimit=\"-1\": must be > 0"},
        BadValueCase{"syncLimit=1.5", "syncLimit=\"1.5\": not an integer"},
        BadValueCase{"tickTime=99999999999999999999",
                     "tickTime=\"99999999999999999999\": not an integer"},
        BadValueCase{"tickTime=2147483648",
                     "tickTime=\"2147483648\": must be at most 2147483647"},
        BadValueCase{"writeBufferSizeMb=1048577",
                     "writeBufferSizeMb=\"1048577\": must be at most 1048576"},
        BadValueCase{"clientPort=70000",
                     "clientPort=\"70000\": not a port number (0..65535)"},
        BadValueCase{"grpcPort=-1",
                     "grpcPort=\"-1\": not a port number (0..65535)"},
        BadValueCase{"maxClientCnxns=-5",
                     "maxClientCnxns=\"-5\": must be >= 0"},
        BadValueCase{"forceSync=maybe",
                     "forceSync=\"maybe\": not a boolean (true, false, yes "
                     "or no)"},
        BadValueCase{"standaloneEnabled=1",
                     "standaloneEnabled=\"1\": not a boolean (true, false, "
                     "yes or no)"},
        BadValueCase{"electionAlg=1",
                     "electionAlg=\"1\": only 3 (fast leader election) is "
                     "supported"},
        BadValueCase{"peerType=leader",
                     "peerType=\"leader\": expected participant or observer"},
        BadValueCase{"jute.maxbuffer=0", "jute.maxbuffer=\"0\": must be > 0"},
        BadValueCase{"preAllocSize=", "preAllocSize=\"\": not an integer"},
        BadValueCase{"minSessionTimeout=0",
                     "minSessionTimeout=\"0\": must be > 0 (or -1 for the "
                     "default)"},
        BadValueCase{"autopurge.purgeInterval=-1",
                     "autopurge.purgeInterval=\"-1\": must be >= 0"},
        BadValueCase{"blockCacheSizeMb=0",
                     "blockCacheSizeMb=\"0\": must be > 0"},
        BadValueCase{"writeBufferSizeMb=x",
                     "writeBufferSizeMb=\"x\": not an integer"},
        BadValueCase{"rowCacheSizeMb=-1",
                     "rowCacheSizeMb=\"-1\": must be >= 0"},
        BadValueCase{"wireThreads=65",
                     "wireThreads=\"65\": must be at most 64"},
        BadValueCase{"readIoThreads=-1", "readIoThreads=\"-1\": must be >= 0"},
        BadValueCase{"dataLogDir=", "dataLogDir=\"\": must not be empty"},
        BadValueCase{"clientPortAddress=bad host!",
                     "clientPortAddress=\"bad host!\": not a host name or "
                     "address"},
        BadValueCase{"dynamicConfigFile=zoo.cfg.dynamic",
                     "dynamicConfigFile=\"zoo.cfg.dynamic\": not supported; "
                     "list the server.N lines in this file"},
        BadValueCase{"=5", "=\"5\": missing key"},
        BadValueCase{"zookeeper.skipACL=maybe",
                     "zookeeper.skipACL=\"maybe\": not a boolean (true, "
                     "false, yes or no)"}));

TEST(ParseZooCfgTest, SuperDigestErrorsDoNotShowTheValue) {
  const std::string msg =
      ParseError("dataDir=/zk\nsuperDigest=super:notbase64!!\n");
  EXPECT_THAT(msg, HasSubstr("zoo.cfg:2: superDigest=<redacted>: expected "
                             "user:base64"));
  EXPECT_THAT(msg, Not(HasSubstr("notbase64")));
  // Right shape, wrong digest length.
  EXPECT_THAT(ParseError("dataDir=/zk\nsuperDigest=super:YWJj\n"),
              HasSubstr("superDigest=<redacted>"));
  EXPECT_THAT(
      ParseError("dataDir=/zk\nsuperDigest=:D/InIHSb7yEEbrWz8b9l71RjZJU=\n"),
      HasSubstr("superDigest=<redacted>"));
}

TEST(ParseZooCfgTest, FirstBadLineInTheFileIsReported) {
  EXPECT_THAT(ParseError("syncLimit=x\ndataDir=/zk\ntickTime=y\n"),
              HasSubstr("zoo.cfg:1: syncLimit=\"x\""));
}

TEST(ParseZooCfgTest, ErrorsAreNamedAfterTheFileName) {
  absl::StatusOr<ServerConfig> cfg =
      ParseZooCfg("dataDir=/zk\ntickTime=abc\n", "/etc/zk/zoo.cfg");
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().message(),
            "/etc/zk/zoo.cfg:2: tickTime=\"abc\": not an integer");
}

TEST(ParseZooCfgTest, ValuesInMessagesAreEscapedAndTruncated) {
  const std::string msg =
      ParseError("dataDir=/zk\ntickTime=a\\u0001b" + std::string(500, 'x'));
  EXPECT_THAT(msg, HasSubstr("tickTime=\"a\\x01"));
  EXPECT_THAT(msg, HasSubstr("...\": not an integer"));
  EXPECT_LT(msg.size(), 250u);
}

// ------------------------------------------------------ session timeouts

TEST(ParseZooCfgTest, MinSessionTimeoutLargerThanMaxIsAnError) {
  EXPECT_THAT(ParseError("dataDir=/zk\nminSessionTimeout=9000\n"
                         "maxSessionTimeout=8000\n"),
              AllOf(HasSubstr("zoo.cfg: minSessionTimeout=9000 (line 2)"),
                    HasSubstr("maxSessionTimeout=8000 (line 3)")));
  // Against the default maximum (20 * tickTime = 40000).
  EXPECT_THAT(ParseError("dataDir=/zk\nminSessionTimeout=50000\n"),
              HasSubstr("maxSessionTimeout=40000 (default)"));
  // Equal is fine.
  const ServerConfig eq =
      MustParse("dataDir=/zk\nminSessionTimeout=7000\nmaxSessionTimeout=7000");
  EXPECT_EQ(eq.min_session_timeout_ms, 7000);
}

TEST(ParseZooCfgTest, SessionDefaultsFollowTickTimeGivenLater) {
  const ServerConfig cfg =
      MustParse("maxSessionTimeout=100000\ndataDir=/zk\ntickTime=3000\n");
  EXPECT_EQ(cfg.min_session_timeout_ms, 6000);
  EXPECT_EQ(cfg.max_session_timeout_ms, 100000);
  const ServerConfig dflt =
      MustParse("minSessionTimeout=-1\ndataDir=/zk\ntickTime=500\n");
  EXPECT_EQ(dflt.min_session_timeout_ms, 1000);  // -1: ZooKeeper's "default"
  EXPECT_EQ(dflt.max_session_timeout_ms, 10000);
}

// ------------------------------------------------------ warnings

TEST(ParseZooCfgTest, UnknownKeysAreWarningsNotErrors) {
  const ServerConfig cfg = MustParse(
      "dataDir=/zk\n"
      "fooBar=1\n"
      "ticktime=5000\n"
      "secureClientPort=2281\n"
      "metricsProvider.className=org.Foo\n");
  EXPECT_EQ(cfg.tick_time_ms, 2000);
  EXPECT_THAT(
      cfg.warnings,
      ElementsAre("zoo.cfg:2: unknown key \"fooBar\" ignored",
                  AllOf(HasSubstr("zoo.cfg:3: unknown key \"ticktime\""),
                        HasSubstr("did you mean \"tickTime\"")),
                  "zoo.cfg:4: ZooKeeper key \"secureClientPort\" is not "
                  "supported by rockeeper; ignored",
                  HasSubstr("zoo.cfg:5: ZooKeeper key "
                            "\"metricsProvider.className\"")));
}

TEST(ParseZooCfgTest, DuplicateKeysLastWinsWithWarning) {
  const ServerConfig cfg =
      MustParse("tickTime=abc\ndataDir=/zk\ntickTime=3000\n");
  EXPECT_EQ(cfg.tick_time_ms, 3000);  // the bad first value is never used
  EXPECT_THAT(cfg.warnings,
              ElementsAre("zoo.cfg:3: duplicate key \"tickTime\" (also on "
                          "line 1); the last one wins"));
  // Two spellings of one key are duplicates too.
  const ServerConfig alias = MustParse(
      "dataDir=/zk\nenforceQuota=true\nzookeeper.enforceQuota=false\n");
  EXPECT_FALSE(alias.enforce_quota);
  EXPECT_THAT(alias.warnings, ElementsAre(HasSubstr("zoo.cfg:3: duplicate")));
}

TEST(ParseZooCfgTest, SnapRetainCountRaisedToThreeWithWarning) {
  const ServerConfig cfg =
      MustParse("dataDir=/zk\nautopurge.snapRetainCount=1\n");
  EXPECT_EQ(cfg.autopurge_snap_retain_count, 3);
  EXPECT_THAT(cfg.warnings,
              ElementsAre(AllOf(HasSubstr("zoo.cfg:2:"),
                                HasSubstr("autopurge.snapRetainCount=1"),
                                HasSubstr("using 3"))));
  const ServerConfig three =
      MustParse("dataDir=/zk\nautopurge.snapRetainCount=3\n");
  EXPECT_EQ(three.autopurge_snap_retain_count, 3);
  EXPECT_THAT(three.warnings, IsEmpty());
}

TEST(ParseZooCfgTest, SnapCountRaisedToTwoWithWarning) {
  const ServerConfig cfg = MustParse("dataDir=/zk\nsnapCount=-4\n");
  EXPECT_EQ(cfg.snap_count, 2);
  EXPECT_THAT(cfg.warnings, ElementsAre(HasSubstr("using 2")));
}

TEST(ParseZooCfgTest, SnapSizeLimitNonPositiveDisables) {
  EXPECT_EQ(MustParse("dataDir=/zk\nsnapSizeLimitInKb=0").snap_size_limit_bytes,
            0);
  EXPECT_EQ(
      MustParse("dataDir=/zk\nsnapSizeLimitInKb=-7").snap_size_limit_bytes, 0);
  EXPECT_EQ(MustParse("dataDir=/zk\nsnapSizeLimitInKb=3").snap_size_limit_bytes,
            3072);
}

TEST(ParseZooCfgTest, FourLetterWords) {
  ServerConfig cfg = MustParse("dataDir=/zk\n4lw.commands.whitelist=*\n");
  EXPECT_THAT(cfg.four_letter_words, ElementsAre("*"));
  EXPECT_TRUE(cfg.IsFourLetterWordEnabled("mntr"));

  cfg = MustParse("dataDir=/zk\n4lw.commands.whitelist=ruok,,bogus,ruok\n");
  EXPECT_THAT(cfg.four_letter_words, ElementsAre("ruok", "srvr"));
  EXPECT_TRUE(cfg.IsFourLetterWordEnabled("ruok"));
  EXPECT_TRUE(cfg.IsFourLetterWordEnabled("srvr"));
  EXPECT_FALSE(cfg.IsFourLetterWordEnabled("mntr"));
  EXPECT_THAT(cfg.warnings,
              ElementsAre(HasSubstr("unknown four-letter word \"bogus\"")));

  cfg = MustParse("dataDir=/zk\n4lw.commands.whitelist=\n");
  EXPECT_THAT(cfg.four_letter_words, ElementsAre("srvr"));
}

// ------------------------------------------------------ syntax

TEST(ParseZooCfgTest, CommentsWhitespaceAndSeparators) {
  const ServerConfig ok = MustParse(
      "# a comment\n"
      "! another comment\n"
      "   # indented comment\n"
      "\n"
      "   \t\n"
      "  dataDir = /zk  \t\n"
      "tickTime:2500\n"
      "initLimit : 12\n"
      "syncLimit 4\n"
      "clientPort\t=\t3181\n");
  EXPECT_EQ(ok.data_dir, "/zk");
  EXPECT_EQ(ok.tick_time_ms, 2500);
  EXPECT_EQ(ok.init_limit_ticks, 12);
  EXPECT_EQ(ok.sync_limit_ticks, 4);
  EXPECT_EQ(ok.client_port, 3181);
  EXPECT_THAT(ok.warnings, IsEmpty());
}

TEST(ParseZooCfgTest, EmptyValueOfAnIntegerKeyIsAnError) {
  EXPECT_EQ(ParseError("dataDir=/zk\nmaxClientCnxns=   \n"),
            "zoo.cfg:2: maxClientCnxns=\"\": not an integer");
}

TEST(ParseZooCfgTest, CrLfAndContinuationLinesKeepLineNumbers) {
  const ServerConfig cfg =
      MustParse("dataDir=/zk\r\ntickTime=\\\r\n    1500\r\ninitLimit=3\r\n");
  EXPECT_EQ(cfg.tick_time_ms, 1500);
  EXPECT_EQ(cfg.init_limit_ticks, 3);
  EXPECT_THAT(ParseError("dataDir=/zk\r\ntickTime=\\\r\n  15\\\n  x\r\n"
                         "initLimit=y\r\n"),
              HasSubstr("zoo.cfg:2: tickTime=\"15x\": not an integer"));
  EXPECT_THAT(
      ParseError("dataDir=/zk\r\n# c \\\ninitLimit=y\r\n"),
      HasSubstr("zoo.cfg:3: initLimit=\"y\""));  // comments don't continue
  EXPECT_THAT(ParseError("dataDir=/zk\rinitLimit=y"),  // old Mac line ends
              HasSubstr("zoo.cfg:2: initLimit"));
}

TEST(ParseZooCfgTest, JavaPropertiesEscapes) {
  const ServerConfig cfg = MustParse(
      "dataDir=/a\\\\b\\ c\n"          // \\ is a backslash, "\ " a space
      "dataLogDir=/x\\u0041\\u00e9\n"  // \uXXXX, UTF-8 encoded
      "tick\\Time=\\2\\0\\0\\0\n");    // \c is c, in keys too
  EXPECT_EQ(cfg.data_dir, "/a\\b c");
  EXPECT_EQ(cfg.data_log_dir, "/xA\xc3\xa9");
  EXPECT_EQ(cfg.tick_time_ms, 2000);
  EXPECT_TRUE(cfg.IsSet("tickTime"));
  EXPECT_EQ(ParseError("dataDir=/zk\n\ndataLogDir=\\u12G4\n"),
            "zoo.cfg:3: malformed \\uXXXX escape");
  // An escaped '=' belongs to the key.
  const ServerConfig key = MustParse("dataDir=/zk\na\\=b=c\n");
  EXPECT_THAT(key.warnings, ElementsAre(HasSubstr("unknown key \"a=b\"")));
}

// ------------------------------------------------------ server lines

TEST(ServerLineTest, ParticipantsObserversAndClientParts) {
  const ServerConfig cfg = MustParse(
      "dataDir=/zk\n"
      "server.1=zk1:2888:3888\n"
      "server.2=zk2:2888:3888:participant\n"
      "server.3=zk3:2888:3888;2181\n"
      "server.4=zk4:2888:3888:observer;10.0.0.4:2182\n"
      "server.5 = zk5 : 2888 : 3888 : OBSERVER ; zk5c : 2183\n"
      "server.17=[::1]:2888:3888;[fe80::1%eth0]:2184\n");
  ASSERT_EQ(cfg.servers.size(), 6u);
  const ServerLine& s1 = cfg.servers[0];
  EXPECT_EQ(s1.id, 1);
  EXPECT_EQ(s1.host, "zk1");
  EXPECT_EQ(s1.quorum_port, 2888);
  EXPECT_EQ(s1.election_port, 3888);
  EXPECT_FALSE(s1.is_observer);
  EXPECT_EQ(s1.client_host, "");
  EXPECT_EQ(s1.client_port, std::nullopt);
  EXPECT_FALSE(cfg.servers[1].is_observer);
  EXPECT_EQ(cfg.servers[2].client_host, "");
  EXPECT_EQ(cfg.servers[2].client_port, 2181);
  EXPECT_TRUE(cfg.servers[3].is_observer);
  EXPECT_EQ(cfg.servers[3].client_host, "10.0.0.4");
  EXPECT_EQ(cfg.servers[3].client_port, 2182);
  EXPECT_EQ(cfg.servers[4].host, "zk5");
  EXPECT_TRUE(cfg.servers[4].is_observer);
  EXPECT_EQ(cfg.servers[4].client_host, "zk5c");
  EXPECT_EQ(cfg.servers[4].client_port, 2183);
  const ServerLine& v6 = cfg.servers[5];
  EXPECT_EQ(v6.id, 17);
  EXPECT_EQ(v6.host, "::1");
  EXPECT_EQ(v6.quorum_port, 2888);
  EXPECT_EQ(v6.election_port, 3888);
  EXPECT_EQ(v6.client_host, "fe80::1%eth0");
  EXPECT_EQ(v6.client_port, 2184);
  EXPECT_FALSE(cfg.standalone());
  ASSERT_NE(cfg.FindServer(17), nullptr);
  EXPECT_EQ(cfg.FindServer(17)->host, "::1");
  EXPECT_EQ(cfg.FindServer(6), nullptr);
  // 4 participants: a warning about the even number.
  EXPECT_THAT(cfg.warnings, ElementsAre(HasSubstr("4 participants")));
}

struct BadServerCase {
  std::string line;    // on line 2
  std::string expect;  // substring of the message after "zoo.cfg:2: "
};

class BadServerLineTest : public ::testing::TestWithParam<BadServerCase> {};

TEST_P(BadServerLineTest, IsRejected) {
  const std::string text = absl::StrCat(
      "dataDir=/zk\n", GetParam().line,
      "\nserver.101=other1:2888:3888\nserver.102=other2:2888:3888\n");
  const std::string msg = ParseError(text);
  EXPECT_THAT(msg, StartsWith("zoo.cfg:2: server."));
  EXPECT_THAT(msg, HasSubstr(GetParam().expect));
}

INSTANTIATE_TEST_SUITE_P(
    Lines, BadServerLineTest,
    ::testing::Values(
        BadServerCase{"server.0=h:1:2",
                      "server.0=\"h:1:2\": server id must be an integer in "
                      "1..255"},
        BadServerCase{"server.-1=h:1:2", "server id must be an integer"},
        BadServerCase{"server.abc=h:1:2", "server id must be an integer"},
        BadServerCase{"server.=h:1:2", "server id must be an integer"},
        BadServerCase{"server.256=h:1:2", "server id must be an integer"},
        BadServerCase{"server.1=h:0:3888",
                      "server.1=\"h:0:3888\": quorum port \"0\" is not a port "
                      "number (1..65535)"},
        BadServerCase{"server.1=h:2888:65536",
                      "election port \"65536\" is not a port number"},
        BadServerCase{"server.1=h:x:3888", "quorum port \"x\""},
        BadServerCase{"server.1=h:2888:2888",
                      "server.1=\"h:2888:2888\": quorum port and election port "
                      "must differ"},
        BadServerCase{"server.1=h:2888", "expected host:quorumPort"},
        BadServerCase{"server.1=", "expected host:quorumPort"},
        BadServerCase{"server.1=h:1:2:observer:5", "expected host:quorumPort"},
        BadServerCase{"server.1=::1:2888:3888", "(IPv6 hosts in [brackets])"},
        BadServerCase{"server.1=h:2888:3888:leader",
                      "unknown peer type \"leader\""},
        BadServerCase{"server.1=h:2888:3888;0", "client port \"0\""},
        BadServerCase{"server.1=h:2888:3888;a:b:c", "expected host:quorumPort"},
        BadServerCase{"server.1=h:2888:3888;2181;2182",
                      "expected host:quorumPort"},
        BadServerCase{"server.1=[::1:2888:3888", "'[' without a matching ']'"},
        BadServerCase{"server.1=[::1]2888:3888", "expected ':' after ']'"},
        BadServerCase{"server.1=a:1:2|b:1:2", "multiple addresses"},
        BadServerCase{"server.1=bad/host:1:2", "invalid host \"bad/host\""}));

TEST(ServerLineTest, DuplicateIdIsAnError) {
  EXPECT_EQ(ParseError("dataDir=/zk\nserver.1=a:2888:3888\n"
                       "server.2=b:2888:3888\nserver.01=c:2888:3888\n"),
            "zoo.cfg:4: server.01=\"c:2888:3888\": duplicate server id 1 "
            "(also on line 2)");
}

TEST(ServerLineTest, SharedAddressIsAnError) {
  EXPECT_THAT(ParseError("dataDir=/zk\nserver.1=h:2888:3888\n"
                         "server.2=h:3888:4888\n"),
              HasSubstr("zoo.cfg:3: server.2=\"h:3888:4888\": address h:3888 "
                        "is already used by server.1"));
  // The same ports on different hosts, or different ports on one host: fine.
  MustParse(
      "dataDir=/zk\nserver.1=h:2888:3888\nserver.2=h:2889:3889\n"
      "server.3=[::1]:2888:3888\n");
}

TEST(ServerLineTest, GroupAndWeightLinesAreWarnedAbout) {
  const ServerConfig cfg =
      MustParse(std::string(kThreeNodes) + "group.1=1:2:3\nweight.1=2\n");
  EXPECT_THAT(cfg.warnings,
              ElementsAre(AllOf(HasSubstr("zoo.cfg:9: \"group.1\""),
                                HasSubstr("not supported")),
                          HasSubstr("zoo.cfg:10: \"weight.1\"")));
}

TEST(ServerLineTest, StandaloneOrQuorum) {
  // One participant with standaloneEnabled (default): standalone, warned.
  ServerConfig one = MustParse("dataDir=/zk\nserver.1=h:2888:3888\n");
  EXPECT_TRUE(one.standalone());
  EXPECT_THAT(one.warnings, ElementsAre(HasSubstr("running standalone")));
  // ... unless standaloneEnabled=false: a one-member quorum.
  ServerConfig forced =
      MustParse("dataDir=/zk\nstandaloneEnabled=false\nserver.1=h:2888:3888\n");
  EXPECT_FALSE(forced.standalone());
  EXPECT_THAT(forced.warnings, IsEmpty());
  // Two participants: a quorum, warned that no failure is tolerated.
  ServerConfig two =
      MustParse("dataDir=/zk\nserver.1=a:2888:3888\nserver.2=b:2888:3888\n");
  EXPECT_FALSE(two.standalone());
  EXPECT_THAT(two.warnings, ElementsAre(HasSubstr("no server failure")));

  EXPECT_THAT(ParseError("dataDir=/zk\nserver.1=a:2888:3888:observer\n"),
              HasSubstr("zoo.cfg: observers without participants"));
  EXPECT_THAT(ParseError("dataDir=/zk\nserver.1=a:2888:3888\n"
                         "server.2=b:2888:3888:observer\n"),
              HasSubstr("observers need a quorum"));
  EXPECT_THAT(ParseError("dataDir=/zk\nstandaloneEnabled=false\n"),
              HasSubstr("standaloneEnabled=false needs at least one"));
}

TEST(ServerLineTest, ThreeNodeConfigFromTheZooKeeperDocs) {
  const ServerConfig cfg = MustParse(kThreeNodes);
  EXPECT_EQ(cfg.tick_time_ms, 2000);
  EXPECT_EQ(cfg.data_dir, "/var/lib/zookeeper/");
  EXPECT_EQ(cfg.data_log_dir, "/var/lib/zookeeper/");
  EXPECT_EQ(cfg.client_port, 2181);
  EXPECT_EQ(cfg.init_limit_ticks, 5);
  EXPECT_EQ(cfg.sync_limit_ticks, 2);
  ASSERT_EQ(cfg.servers.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(cfg.servers[i].id, i + 1);
    EXPECT_EQ(cfg.servers[i].host, absl::StrCat("zoo", i + 1));
    EXPECT_EQ(cfg.servers[i].quorum_port, 2888);
    EXPECT_EQ(cfg.servers[i].election_port, 3888);
    EXPECT_FALSE(cfg.servers[i].is_observer);
  }
  EXPECT_FALSE(cfg.standalone());
  EXPECT_THAT(cfg.warnings, IsEmpty());
}

// ------------------------------------------------------ files and myid

TEST(LoadZooCfgTest, ReadsFileAndNamesItInMessages) {
  TempDir dir;
  const std::string good = dir.Write("zoo.cfg", kThreeNodes);
  absl::StatusOr<ServerConfig> cfg = LoadZooCfg(good);
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->config_path, good);
  EXPECT_EQ(cfg->servers.size(), 3u);

  const std::string bad = dir.Write("bad.cfg", "dataDir=/zk\ntickTime=abc\n");
  EXPECT_EQ(LoadZooCfg(bad).status().message(),
            bad + ":2: tickTime=\"abc\": not an integer");

  const absl::Status missing = LoadZooCfg(dir.path() + "/nope.cfg").status();
  EXPECT_TRUE(absl::IsNotFound(missing)) << missing;
  EXPECT_THAT(missing.message(), HasSubstr(dir.path() + "/nope.cfg"));

  EXPECT_FALSE(LoadZooCfg(dir.path()).ok());  // a directory
}

TEST(MyIdTest, ParseMyId) {
  EXPECT_EQ(*ParseMyId("3"), 3);
  EXPECT_EQ(*ParseMyId("3\n"), 3);
  EXPECT_EQ(*ParseMyId("  255 \r\n"), 255);
  for (const char* bad : {"", "\n", "abc", "0", "256", "-1", "+1", "1 2", "1.0",
                          "99999999999999999999999"}) {
    const absl::StatusOr<int64_t> id = ParseMyId(bad, "/zk/myid");
    EXPECT_TRUE(absl::IsInvalidArgument(id.status())) << bad;
    EXPECT_THAT(id.status().message(), HasSubstr("/zk/myid")) << bad;
  }
}

TEST(MyIdTest, ReadMyId) {
  TempDir dir;
  const absl::StatusOr<int64_t> missing = ReadMyId(dir.path());
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  EXPECT_THAT(missing.status().message(), HasSubstr(dir.path() + "/myid"));

  dir.Write("myid", "two\n");
  const absl::StatusOr<int64_t> malformed = ReadMyId(dir.path());
  EXPECT_TRUE(absl::IsInvalidArgument(malformed.status()));
  EXPECT_THAT(malformed.status().message(),
              AllOf(HasSubstr(dir.path() + "/myid"), HasSubstr("\"two\"")));

  dir.Write("myid", "2\n");
  EXPECT_EQ(*ReadMyId(dir.path()), 2);
  EXPECT_EQ(*ReadMyId(dir.path() + "/"), 2);
}

// ------------------------------------------------------ ResolveQuorum

TEST(ResolveQuorumTest, SetsMyIdForAMember) {
  ServerConfig cfg = MustParse(kThreeNodes);
  ASSERT_TRUE(ResolveQuorum(cfg, 2).ok());
  EXPECT_EQ(cfg.my_id, 2);
  EXPECT_EQ(cfg.peer_type, PeerType::kParticipant);
  EXPECT_EQ(cfg.client_port, 2181);
}

TEST(ResolveQuorumTest, MyIdWithoutServerLineIsAnError) {
  ServerConfig cfg = MustParse(kThreeNodes);
  const absl::Status s = ResolveQuorum(cfg, 4);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_THAT(s.message(), AllOf(HasSubstr("myid 4 has no server.4 line"),
                                 HasSubstr("configured ids: 1, 2, 3")));
  EXPECT_EQ(cfg.my_id, 0);
  EXPECT_TRUE(absl::IsInvalidArgument(ResolveQuorum(cfg, 0)));
  EXPECT_TRUE(absl::IsInvalidArgument(ResolveQuorum(cfg, 256)));
}

TEST(ResolveQuorumTest, StandaloneConfigHasNoQuorum) {
  ServerConfig cfg = MustParse("dataDir=/zk\n");
  EXPECT_TRUE(absl::IsFailedPrecondition(ResolveQuorum(cfg, 1)));
  EXPECT_TRUE(ResolveMyId(cfg).ok());  // no myid needed
  EXPECT_EQ(cfg.my_id, 0);
}

TEST(ResolveQuorumTest, PeerTypeComesFromTheServerLine) {
  ServerConfig cfg = MustParse(std::string(kThreeNodes) +
                               "server.4=zoo4:2888:3888:observer\n");
  ASSERT_TRUE(ResolveQuorum(cfg, 4).ok());
  EXPECT_EQ(cfg.peer_type, PeerType::kObserver);
  EXPECT_THAT(cfg.warnings, IsEmpty());

  ServerConfig mismatch =
      MustParse(std::string(kThreeNodes) + "peerType=observer\n");
  ASSERT_TRUE(ResolveQuorum(mismatch, 1).ok());
  EXPECT_EQ(mismatch.peer_type, PeerType::kParticipant);
  EXPECT_THAT(mismatch.warnings,
              ElementsAre(HasSubstr("peerType does not match server.1")));
}

TEST(ResolveQuorumTest, ClientPortFromTheServerLine) {
  const std::string servers =
      "server.1=a:2888:3888;10.0.0.1:2191\n"
      "server.2=b:2888:3888;2192\n"
      "server.3=c:2888:3888\n";
  ServerConfig cfg = MustParse("dataDir=/zk\n" + servers);
  ServerConfig one = cfg;
  ASSERT_TRUE(ResolveQuorum(one, 1).ok());
  EXPECT_EQ(one.client_port, 2191);
  EXPECT_EQ(one.client_port_address, "10.0.0.1");
  EXPECT_EQ(one.grpc_port_address, "10.0.0.1");
  ServerConfig two = cfg;
  ASSERT_TRUE(ResolveQuorum(two, 2).ok());
  EXPECT_EQ(two.client_port, 2192);
  EXPECT_EQ(two.client_port_address, "0.0.0.0");
  ServerConfig three = cfg;
  ASSERT_TRUE(ResolveQuorum(three, 3).ok());
  EXPECT_EQ(three.client_port, 2181);

  // An explicit clientPort must agree with the line.
  ServerConfig conflict = MustParse("dataDir=/zk\nclientPort=2181\n" + servers);
  const absl::Status s = ResolveQuorum(conflict, 2);
  EXPECT_THAT(s.message(), HasSubstr("clientPort=2181 differs from the client "
                                     "port 2192 of server.2"));
  EXPECT_EQ(conflict.my_id, 0);  // unchanged on error
  ServerConfig agree = MustParse("dataDir=/zk\nclientPort=2192\n" + servers);
  EXPECT_TRUE(ResolveQuorum(agree, 2).ok());
  ServerConfig host =
      MustParse("dataDir=/zk\nclientPortAddress=10.9.9.9\n" + servers);
  EXPECT_THAT(ResolveQuorum(host, 1).message(),
              HasSubstr("differs from the client host 10.0.0.1"));
}

TEST(ResolveQuorumTest, ExtendedTypesLimitTheServerId) {
  ServerConfig cfg = MustParse(
      "dataDir=/zk\nextendedTypesEnabled=true\nserver.255=a:2888:3888\n"
      "server.2=b:2888:3888\nserver.3=c:2888:3888\n");
  EXPECT_THAT(ResolveQuorum(cfg, 255).message(), HasSubstr("at most 254"));
  EXPECT_TRUE(ResolveQuorum(cfg, 2).ok());
}

TEST(ResolveQuorumTest, ResolveMyIdReadsDataDir) {
  TempDir dir;
  ServerConfig cfg =
      MustParse(absl::StrCat("dataDir=", dir.path(),
                             "\nserver.1=a:2888:3888\nserver.2=b:2888:3888\n"
                             "server.3=c:2888:3888\n"));
  EXPECT_TRUE(absl::IsNotFound(ResolveMyId(cfg)));
  dir.Write("myid", "9\n");
  EXPECT_THAT(ResolveMyId(cfg).message(), HasSubstr("myid 9 has no server.9"));
  dir.Write("myid", "3\n");
  ASSERT_TRUE(ResolveMyId(cfg).ok());
  EXPECT_EQ(cfg.my_id, 3);
}

// ------------------------------------------------------ FormatZooCfg

ServerConfig WithoutWarnings(ServerConfig cfg) {
  cfg.warnings.clear();
  return cfg;
}

TEST(FormatZooCfgTest, RoundTrips) {
  for (const std::string& text :
       {std::string(kEveryKey), std::string(kThreeNodes),
        std::string("dataDir=/zk\n"),
        std::string("dataDir=/a\\\\b\\n\\u0001\nsnapCount=1\ntickTime=7\n"
                    "server.9=[::1]:1:2:observer;[::2]:3\n"
                    "server.8=h:1:2;4\nserver.7=h:5:6\n")}) {
    const ServerConfig cfg = MustParse(text);
    const std::string formatted = FormatZooCfg(cfg);
    EXPECT_EQ(WithoutWarnings(MustParse(formatted)), WithoutWarnings(cfg))
        << formatted;
  }
}

TEST(FormatZooCfgTest, WritesOnlySetOrChangedKeys) {
  // Parsed: derived values (session timeouts, dataLogDir) stay implicit.
  const std::string parsed =
      FormatZooCfg(MustParse("dataDir=/zk\ntickTime=100"));
  EXPECT_EQ(parsed,
            "# Written by rockeeper (FormatZooCfg).\n"
            "tickTime=100\n"
            "dataDir=/zk\n");
  // Built in code: fields that differ from what parsing would derive are
  // written, sizes rounded up to the key's unit.
  ServerConfig cfg = DefaultStandaloneConfig();
  cfg.tick_time_ms = 100;  // min/max session timeouts stay 4000/40000
  cfg.pre_alloc_size_bytes = 1;
  cfg.client_port = 3000;
  const std::string text = FormatZooCfg(cfg);
  EXPECT_THAT(text, HasSubstr("\ntickTime=100\n"));
  EXPECT_THAT(text, HasSubstr("\nminSessionTimeout=4000\n"));
  EXPECT_THAT(text, HasSubstr("\ndataDir=./data\n"));
  EXPECT_THAT(text, HasSubstr("\npreAllocSize=1\n"));
  EXPECT_THAT(text, HasSubstr("\nclientPort=3000\n"));
  EXPECT_THAT(text, Not(HasSubstr("grpcPort")));
  const ServerConfig back = MustParse(text);
  EXPECT_EQ(back.min_session_timeout_ms, 4000);
  EXPECT_EQ(back.max_session_timeout_ms, 40000);
  EXPECT_EQ(back.pre_alloc_size_bytes, 1024);
  EXPECT_EQ(back.client_port, 3000);
}

}  // namespace
}  // namespace rockeeper::server
