// rkutl snapshot list | dump | stat | restore on a sample data dir built with
// the engine APIs.
#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/snapshot.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"
#include "tests/tools/rkutl_test_util.h"
#include "tools/rkutl/json.h"
#include "tools/rkutl/json_dump.h"

namespace rockeeper::rkutl::testing {
namespace {

namespace fs = std::filesystem;
using engine::testing::Create;
using engine::testing::EngineHarness;
using engine::testing::TempDir;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string Hx(int64_t v) {
  return absl::StrFormat("0x%x", static_cast<uint64_t>(v));
}

std::unique_ptr<engine::StateDb> OpenReadOnly(const std::string& dir) {
  engine::StateDbOptions o;
  o.path = dir;
  o.read_only = true;
  o.block_cache_bytes = 4 << 20;
  auto db = engine::StateDb::Open(o);
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? *std::move(db) : nullptr;
}

// Everything after the first line (the header names the source).
std::string Body(const std::string& dump) {
  return dump.substr(dump.find('\n') + 1);
}

class RkutlSnapshotTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    sample_ = new SampleDataDir(BuildSampleDataDir(dir_->Sub("data"), 5));
  }
  static void TearDownTestSuite() {
    delete sample_;
    delete dir_;
  }

  static std::string SnapshotPath(size_t i) {
    return (fs::path(sample_->data_dir) / "snapshots" /
            engine::SnapshotStore::NameForZxid(sample_->snapshot_zxids[i]))
        .string();
  }
  static std::string NewestSnapshot() {
    return SnapshotPath(sample_->snapshot_zxids.size() - 1);
  }

  static DumpContents DumpJson(const std::vector<std::string>& source) {
    std::vector<std::string> args = {"snapshot", "dump", "--json"};
    args.insert(args.end(), source.begin(), source.end());
    RunResult r = RunRkutl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.err, "");
    auto dump = ParseJsonDump(r.out);
    EXPECT_TRUE(dump.ok()) << dump.status();
    return dump.ok() ? *std::move(dump) : DumpContents{};
  }

  static TempDir* dir_;
  static SampleDataDir* sample_;
};

TempDir* RkutlSnapshotTest::dir_ = nullptr;
SampleDataDir* RkutlSnapshotTest::sample_ = nullptr;

TEST_F(RkutlSnapshotTest, ListShowsZxidSizeAndNodeCount) {
  RunResult r = RunRkutl({"snapshot", "list", "--data-dir", sample_->data_dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 1 + sample_->snapshot_zxids.size()) << r.out;
  EXPECT_TRUE(Contains(lines[0], "ZXID"));
  for (size_t i = 0; i < sample_->snapshot_zxids.size(); ++i) {
    auto db = OpenReadOnly(SnapshotPath(i));
    ASSERT_NE(db, nullptr);
    const int64_t nodes = *db->CountDescendants("/") + 1;
    EXPECT_EQ(lines[i + 1].rfind(Hx(sample_->snapshot_zxids[i]) + " ", 0), 0u)
        << lines[i + 1];
    EXPECT_TRUE(Contains(lines[i + 1], absl::StrCat(" ", nodes, "  ")))
        << lines[i + 1];
    EXPECT_TRUE(Contains(lines[i + 1], SnapshotPath(i)));
  }

  r = RunRkutl({"snapshot", "list", "--data-dir", sample_->data_dir, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto json = ParseJson(r.out);
  ASSERT_TRUE(json.ok()) << json.status();
  const Json* snaps = json->Find("snapshots");
  ASSERT_NE(snaps, nullptr);
  ASSERT_EQ(snaps->items.size(), sample_->snapshot_zxids.size());
  for (size_t i = 0; i < snaps->items.size(); ++i) {
    const Json& s = snaps->items[i];
    EXPECT_EQ(s.Find("zxid")->text, Hx(sample_->snapshot_zxids[i]));
    EXPECT_EQ(s.Find("path")->text, SnapshotPath(i));
    EXPECT_GT(*s.Find("sizeBytes")->AsInt(), 0);
    auto db = OpenReadOnly(SnapshotPath(i));
    EXPECT_EQ(*s.Find("nodes")->AsInt(), *db->CountDescendants("/") + 1);
  }
}

TEST_F(RkutlSnapshotTest, ListOfEmptyDataDir) {
  TempDir empty;
  RunResult r = RunRkutl({"snapshot", "list", "--data-dir", empty.path()});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.out, "no snapshots")) << r.out;
}

TEST_F(RkutlSnapshotTest, DumpTextIsZkCliStyle) {
  auto db = OpenReadOnly(NewestSnapshot());
  ASSERT_NE(db, nullptr);
  const engine::Znode secure = *db->GetZnode("/secure");
  RunResult r = RunRkutl({"snapshot", "dump", "--data-dir", sample_->data_dir,
                          "--path", "/secure"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  const std::string ctime = "Thu Jan 01 00:00:01 UTC 1970";
  EXPECT_EQ(r.out, absl::StrCat("/secure\n", "cZxid = ", Hx(secure.czxid), "\n",
                                "ctime = ", ctime, "\n", "mZxid = ",
                                Hx(secure.mzxid), "\n", "mtime = ", ctime, "\n",
                                "pZxid = ", Hx(secure.pzxid), "\n",
                                "cversion = 0\n"
                                "dataVersion = 0\n"
                                "aclVersion = 1\n"
                                "ephemeralOwner = 0x0\n"
                                "dataLength = 1\n"
                                "numChildren = 0\n"
                                "data = \"s\"\n"
                                "acl = 'world,'anyone : rw\n"));

  r = RunRkutl({"snapshot", "dump", "--snapshot", NewestSnapshot()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string binary("\x00\x01\xff\xfe binary", 11);
  EXPECT_TRUE(Contains(r.out, "/app/config\n")) << r.out;
  EXPECT_TRUE(Contains(r.out, "data (base64) = " + absl::Base64Escape(binary)));
  EXPECT_TRUE(Contains(r.out, "/app/\xc3\xbcnicode\n"));
  EXPECT_TRUE(Contains(
      r.out, "data = \"h\xc3\xa9llo \xe2\x9c\x93\\nline2\\t\\\"q\\\"\""));
  EXPECT_TRUE(Contains(r.out, "ephemeralOwner = " + Hx(sample_->live_session)));
  EXPECT_TRUE(Contains(r.out, "nodeType = container\n"));
  EXPECT_TRUE(Contains(r.out, "nodeType = ttl (60000 ms)\n"));
  EXPECT_TRUE(Contains(r.out, "acl = 'world,'anyone : r\n"));  // config
  EXPECT_TRUE(Contains(r.out, "dataVersion = 3\n"));           // /app
  // One block per node, separated by blank lines.
  const int64_t nodes = *db->CountDescendants("/") + 1;
  size_t blocks = 0;
  for (const std::string& line : Lines(r.out)) {
    if (line.rfind("cZxid = ", 0) == 0) ++blocks;
  }
  EXPECT_EQ(static_cast<int64_t>(blocks), nodes);
}

void ExpectSameNode(const NodeEntry& got, const engine::StateDb& db) {
  auto want = db.GetZnode(got.path);
  ASSERT_TRUE(want.ok()) << got.path;
  const engine::Znode& g = got.node;
  EXPECT_EQ(g.czxid, want->czxid) << got.path;
  EXPECT_EQ(g.mzxid, want->mzxid) << got.path;
  EXPECT_EQ(g.pzxid, want->pzxid) << got.path;
  EXPECT_EQ(g.ctime_ms, want->ctime_ms) << got.path;
  EXPECT_EQ(g.mtime_ms, want->mtime_ms) << got.path;
  EXPECT_EQ(g.version, want->version) << got.path;
  EXPECT_EQ(g.cversion, want->cversion) << got.path;
  EXPECT_EQ(g.aversion, want->aversion) << got.path;
  EXPECT_EQ(g.ephemeral_owner, want->ephemeral_owner) << got.path;
  EXPECT_EQ(g.num_children, want->num_children) << got.path;
  EXPECT_EQ(g.data, want->data) << got.path;
  auto acl = db.GetAcl(want->acl_id);
  ASSERT_TRUE(acl.ok());
  ASSERT_EQ(got.acl.size(), acl->size()) << got.path;
  for (size_t i = 0; i < acl->size(); ++i) {
    EXPECT_EQ(got.acl[i].SerializeAsString(), (*acl)[i].SerializeAsString());
  }
}

TEST_F(RkutlSnapshotTest, DumpJsonMatchesTheEngine) {
  const DumpContents dump = DumpJson({"--snapshot", NewestSnapshot()});
  auto db = OpenReadOnly(NewestSnapshot());
  ASSERT_NE(db, nullptr);
  EXPECT_EQ(dump.header.last_applied_zxid, db->last_applied_zxid());
  EXPECT_TRUE(dump.header.complete());
  EXPECT_EQ(static_cast<int64_t>(dump.nodes.size()),
            *db->CountDescendants("/") + 1);
  for (const NodeEntry& n : dump.nodes) ExpectSameNode(n, *db);
  ASSERT_EQ(dump.sessions.size(), 1u);
  EXPECT_EQ(dump.sessions[0].session_id(), sample_->live_session);
  EXPECT_EQ(dump.sessions[0].password(),
            absl::StrCat("pw-", sample_->live_session));

  // The raw JSON: binary data is base64 with an encoding field, text is not.
  RunResult r =
      RunRkutl({"snapshot", "dump", "--json", "--snapshot", NewestSnapshot(),
                "--path", "/app", "--max-depth", "1"});
  ASSERT_EQ(r.exit_code, 0);
  auto json = ParseJson(r.out);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_FALSE(json->Find("complete")->boolean);
  int checked = 0;
  for (const Json& node : json->Find("nodes")->items) {
    const std::string& path = node.Find("path")->text;
    if (path == "/app/config") {
      EXPECT_EQ(node.Find("dataEncoding")->text, "base64");
      EXPECT_EQ(node.Find("data")->text,
                absl::Base64Escape(std::string("\x00\x01\xff\xfe binary", 11)));
      ++checked;
    }
    if (path == "/app") {
      EXPECT_EQ(node.Find("dataEncoding")->text, "utf8");
      EXPECT_EQ(node.Find("data")->text, "multi");
      EXPECT_EQ(node.Find("dataVersion")->AsInt(), 3);
      EXPECT_EQ(node.Find("cZxid")->text, Hx(db->GetZnode("/app")->czxid));
      ++checked;
    }
  }
  EXPECT_EQ(checked, 2);
}

TEST_F(RkutlSnapshotTest, DumpPathAndMaxDepth) {
  auto db = OpenReadOnly(NewestSnapshot());
  ASSERT_NE(db, nullptr);
  std::vector<std::string> children;
  ASSERT_TRUE(db->ListChildren("/app", &children).ok());
  DumpContents dump = DumpJson(
      {"--snapshot", NewestSnapshot(), "--path", "/app", "--max-depth", "1"});
  ASSERT_EQ(dump.nodes.size(), 1 + children.size());
  EXPECT_EQ(dump.nodes[0].path, "/app");
  for (size_t i = 0; i < children.size(); ++i) {
    EXPECT_EQ(dump.nodes[i + 1].path, "/app/" + children[i]);
  }
  dump = DumpJson(
      {"--snapshot", NewestSnapshot(), "--path", "/app", "--max-depth", "0"});
  ASSERT_EQ(dump.nodes.size(), 1u);
  // Unlimited depth from /zookeeper reaches the quota nodes (depth 4).
  dump = DumpJson({"--snapshot", NewestSnapshot(), "--path", "/zookeeper"});
  EXPECT_EQ(dump.nodes.back().path, "/zookeeper/quota/app/zookeeper_stats");

  RunResult r = RunRkutl(
      {"snapshot", "dump", "--snapshot", NewestSnapshot(), "--path", "/nope"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "node /nope does not exist")) << r.err;
}

TEST_F(RkutlSnapshotTest, LiveAndOlderSnapshots) {
  DumpContents live = DumpJson({"--data-dir", sample_->data_dir, "--live"});
  EXPECT_EQ(live.header.last_applied_zxid, sample_->last_zxid);
  EXPECT_EQ(live.header.source, sample_->data_dir + "/state");
  DumpContents first = DumpJson({"--snapshot", SnapshotPath(0)});
  EXPECT_EQ(first.header.last_applied_zxid, sample_->snapshot_zxids[0]);
  EXPECT_LT(first.nodes.size(), live.nodes.size());
}

TEST_F(RkutlSnapshotTest, StatTextAndJson) {
  RunResult r =
      RunRkutl({"snapshot", "stat", "--snapshot", NewestSnapshot(), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  auto json = ParseJson(r.out);
  ASSERT_TRUE(json.ok()) << json.status() << r.out;
  auto db = OpenReadOnly(NewestSnapshot());
  const int64_t nodes = *db->CountDescendants("/") + 1;
  EXPECT_EQ(json->Find("nodes")->AsInt(), nodes);
  EXPECT_EQ(json->Find("dataBytes")->AsInt(), db->SubtreeUsage("/")->bytes);
  EXPECT_EQ(json->Find("ephemeral")->AsInt(), 1);
  EXPECT_EQ(json->Find("container")->AsInt(), 1);
  EXPECT_EQ(json->Find("ttl")->AsInt(), 1);
  EXPECT_EQ(json->Find("maxDepth")->AsInt(), 4);
  const Json* largest = json->Find("largestNodes");
  ASSERT_EQ(largest->items.size(), 10u);
  EXPECT_EQ(largest->items[0].Find("path")->text, "/app/big");
  EXPECT_EQ(largest->items[0].Find("dataLength")->AsInt(), 5000);
  const Json* widest = json->Find("widestParents");
  EXPECT_EQ(widest->items[0].Find("path")->text, "/");
  EXPECT_EQ(widest->items[1].Find("path")->text, "/wide");
  EXPECT_EQ(widest->items[1].Find("numChildren")->AsInt(), 30);
  const Json* sessions = json->Find("sessions");
  ASSERT_EQ(sessions->items.size(), 1u);
  EXPECT_EQ(sessions->items[0].Find("sessionId")->text,
            Hx(sample_->live_session));
  EXPECT_EQ(sessions->items[0].Find("ephemerals")->AsInt(), 1);

  r = RunRkutl({"snapshot", "stat", "--data-dir", sample_->data_dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, absl::StrCat("nodes: ", nodes, " ("))) << r.out;
  EXPECT_TRUE(Contains(r.out, "largest nodes"));
  EXPECT_TRUE(Contains(r.out, "5000  /app/big"));
  EXPECT_TRUE(Contains(r.out, "30  /wide"));
  EXPECT_TRUE(Contains(
      r.out, Hx(sample_->live_session) + "    timeout 30000 ms, 1 ephemerals"));
  r = RunRkutl({"snapshot", "stat", "--data-dir", sample_->data_dir, "--live",
                "--path", "/wide", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ParseJson(r.out)->Find("nodes")->AsInt(), 31);
}

TEST_F(RkutlSnapshotTest, ReadOnlyCommandsModifyNothing) {
  const auto before = ReadTree(sample_->data_dir);
  const std::string d = sample_->data_dir;
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"snapshot", "list", "--data-dir", d},
           {"snapshot", "dump", "--data-dir", d},
           {"snapshot", "dump", "--data-dir", d, "--live", "--json"},
           {"snapshot", "dump", "--snapshot", SnapshotPath(0)},
           {"snapshot", "stat", "--data-dir", d, "--live"},
           {"txnlog", "dump", "--log-dir", sample_->log_dir},
           {"txnlog", "stat", "--log-dir", sample_->log_dir},
           {"txnlog", "verify", "--log-dir", sample_->log_dir},
       }) {
    RunResult r = RunRkutl(args);
    EXPECT_EQ(r.exit_code, 0) << args[0] << " " << args[1] << ": " << r.err;
    EXPECT_EQ(r.err, "") << "no progress output when stderr is not a tty";
  }
  EXPECT_TRUE(before == ReadTree(sample_->data_dir));
}

TEST_F(RkutlSnapshotTest, DumpRestoreDumpIsIdentical) {
  TempDir work;
  RunResult dump1 =
      RunRkutl({"snapshot", "dump", "--data-dir", sample_->data_dir, "--json"});
  ASSERT_EQ(dump1.exit_code, 0) << dump1.err;
  const std::string file = work.Sub("dump.json");
  WriteFile(file, dump1.out);
  const std::string restored = work.Sub("restored");
  RunResult r =
      RunRkutl({"snapshot", "restore", "--json", file, "--data-dir", restored});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_TRUE(Contains(r.out, "restored ")) << r.out;
  RunResult dump2 = RunRkutl(
      {"snapshot", "dump", "--snapshot", restored + "/state", "--json"});
  ASSERT_EQ(dump2.exit_code, 0) << dump2.err;
  EXPECT_EQ(Body(dump1.out), Body(dump2.out));
  RunResult text1 =
      RunRkutl({"snapshot", "dump", "--data-dir", sample_->data_dir});
  RunResult text2 =
      RunRkutl({"snapshot", "dump", "--snapshot", restored + "/state"});
  EXPECT_EQ(text1.out, text2.out);

  // From stdin as well.
  r = RunRkutl({"snapshot", "restore", "--json", "-", "--data-dir",
                work.Sub("from-stdin")},
               file);
  EXPECT_EQ(r.exit_code, 0) << r.err;

  // A second restore into the same data dir is refused.
  r = RunRkutl({"snapshot", "restore", "--json", file, "--data-dir", restored});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, restored + "/state already exists")) << r.err;
}

// The restored DB behaves like the original: same sequence numbers,
// versions and child counts for the same requests afterwards.
TEST_F(RkutlSnapshotTest, RestoredStateContinuesLikeTheOriginal) {
  TempDir work;
  RunResult dump =
      RunRkutl({"snapshot", "dump", "--data-dir", sample_->data_dir, "--json"});
  WriteFile(work.Sub("dump.json"), dump.out);
  ASSERT_EQ(RunRkutl({"snapshot", "restore", "--json", work.Sub("dump.json"),
                      "--data-dir", work.Sub("a")})
                .exit_code,
            0);
  ASSERT_EQ(RunRkutl({"snapshot", "restore", "--snapshot", NewestSnapshot(),
                      "--data-dir", work.Sub("b")})
                .exit_code,
            0);
  engine::RequestContext live;
  live.session_id = sample_->live_session;
  for (const char* d : {"a", "b"}) {
    EngineHarness h(work.Sub(d) + "/state");
    EXPECT_EQ(h.next_zxid(), sample_->last_zxid + 1);
    EXPECT_EQ(h.Err(Create("/app/seq-", "", engine::kPersistentSequential)),
              engine::ZkError::kOk);
    EXPECT_EQ(h.Err(Create("/app/e9", "", engine::kEphemeral), live),
              engine::ZkError::kOk);
    EXPECT_EQ(h.Err(engine::SetDataRequest{"/app", "x", 3}),
              engine::ZkError::kOk);
    EXPECT_EQ(h.Err(engine::DeleteRequest{"/wide/n7", 0}),
              engine::ZkError::kOk);
    EXPECT_EQ(h.Err(engine::CloseSessionRequest{}, live), engine::ZkError::kOk);
  }
  RunResult a = RunRkutl(
      {"snapshot", "dump", "--snapshot", work.Sub("a") + "/state", "--json"});
  RunResult b = RunRkutl(
      {"snapshot", "dump", "--snapshot", work.Sub("b") + "/state", "--json"});
  ASSERT_EQ(a.exit_code, 0);
  EXPECT_EQ(Body(a.out), Body(b.out));
  // The new sequential node is numbered from /app's persisted cversion.
  auto db = OpenReadOnly(NewestSnapshot());
  const std::string seq =
      absl::StrFormat("/app/seq-%010d", db->GetZnode("/app")->cversion);
  EXPECT_TRUE(Contains(a.out, "\"" + seq + "\"")) << seq;
}

TEST_F(RkutlSnapshotTest, RestoreFromSnapshot) {
  TempDir work;
  const std::string target = work.Sub("new");
  RunResult r = RunRkutl({"snapshot", "restore", "--snapshot", SnapshotPath(2),
                          "--data-dir", target});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, Hx(sample_->snapshot_zxids[2]))) << r.out;
  RunResult a = RunRkutl({"snapshot", "dump", "--snapshot", SnapshotPath(2)});
  RunResult b = RunRkutl({"snapshot", "dump", "--data-dir", target, "--live"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(a.out, b.out);
  r = RunRkutl({"snapshot", "restore", "--snapshot", SnapshotPath(2),
                "--data-dir", target});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "already exists")) << r.err;
  r = RunRkutl({"snapshot", "restore", "--snapshot", work.Sub("none"),
                "--data-dir", work.Sub("other")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, work.Sub("none"))) << r.err;
  EXPECT_FALSE(fs::exists(work.Sub("other")));
}

TEST_F(RkutlSnapshotTest, RestoreJsonRejectsBadInput) {
  TempDir work;
  RunResult dump =
      RunRkutl({"snapshot", "dump", "--data-dir", sample_->data_dir, "--json"});
  // Truncated document: a parse error with its position; nothing created.
  WriteFile(work.Sub("cut.json"), dump.out.substr(0, dump.out.size() / 2));
  RunResult r = RunRkutl({"snapshot", "restore", "--json", work.Sub("cut.json"),
                          "--data-dir", work.Sub("x")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, work.Sub("cut.json") + ": line ")) << r.err;
  EXPECT_FALSE(fs::exists(work.Sub("x") + "/state"));
  // A partial dump cannot be restored.
  RunResult part = RunRkutl({"snapshot", "dump", "--data-dir",
                             sample_->data_dir, "--json", "--path", "/app"});
  WriteFile(work.Sub("part.json"), part.out);
  r = RunRkutl({"snapshot", "restore", "--json", work.Sub("part.json"),
                "--data-dir", work.Sub("y")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "partial")) << r.err;
  EXPECT_FALSE(fs::exists(work.Sub("y") + "/state"));
  // Not a dump at all.
  WriteFile(work.Sub("other.json"), "{\"a\": 1}");
  r = RunRkutl({"snapshot", "restore", "--json", work.Sub("other.json"),
                "--data-dir", work.Sub("z")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "not an rkutl dump")) << r.err;
}

// A hand-edited dump that no history could produce: restore rebuilds what
// it can and lists each difference, with exit code 1.
TEST_F(RkutlSnapshotTest, RestoreJsonReportsUnreproducibleStats) {
  TempDir work;
  RunResult dump =
      RunRkutl({"snapshot", "dump", "--data-dir", sample_->data_dir, "--json"});
  std::string edited = dump.out;
  // /m2 was created by a multi: its mtime cannot differ from its ctime
  // while mZxid equals cZxid.
  const size_t at = edited.find("{\"path\":\"/m2\"");
  ASSERT_NE(at, std::string::npos);
  const size_t mtime = edited.find("\"mtime\":", at);
  edited.insert(mtime + 8, "9");
  WriteFile(work.Sub("edited.json"), edited);
  RunResult r =
      RunRkutl({"snapshot", "restore", "--json", work.Sub("edited.json"),
                "--data-dir", work.Sub("r")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "warning: /m2: time")) << r.err;
  EXPECT_TRUE(Contains(r.err, "difference: /m2: mtime")) << r.err;
  EXPECT_TRUE(Contains(r.err, "differs from the dump in 1 place")) << r.err;
  EXPECT_TRUE(fs::exists(work.Sub("r") + "/state"));
}

}  // namespace
}  // namespace rockeeper::rkutl::testing
