// rkutl txnlog dump | verify | stat | truncate and rkutl purge, on txn logs
// written with the engine's TxnLog (and damaged on purpose).
#include <filesystem>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/snapshot.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"
#include "tests/tools/rkutl_test_util.h"
#include "tools/rkutl/json.h"

namespace rockeeper::rkutl::testing {
namespace {

namespace fs = std::filesystem;
using engine::testing::TempDir;

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string Hx(int64_t v) {
  return absl::StrFormat("0x%x", static_cast<uint64_t>(v));
}

uint32_t Le32(const std::string& b, size_t at) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(b[at + i]);
  return v;
}

// Byte offsets of the records of one segment file.
std::vector<uint64_t> RecordOffsets(const std::string& path) {
  const std::string bytes = ReadFile(path);
  std::vector<uint64_t> offsets;
  uint64_t off = engine::kTxnLogFileHeaderSize;
  while (off + engine::kTxnLogRecordHeaderSize <= bytes.size()) {
    if (Le32(bytes, off + 8) == 0 && Le32(bytes, off + 12) == 0) break;
    offsets.push_back(off);
    off += engine::kTxnLogRecordHeaderSize + Le32(bytes, off);
  }
  return offsets;
}

int64_t ZxidOfLine(const std::string& line) {
  int64_t z = 0;
  EXPECT_TRUE(absl::SimpleHexAtoi(line.substr(2, line.find(' ') - 2), &z))
      << line;
  return z;
}

class RkutlTxnLogTest : public ::testing::Test {
 protected:
  RkutlTxnLogTest() : sample_(BuildSampleDataDir(dir_.Sub("data"), 2)) {}

  RunResult Rkutl(std::vector<std::string> args) {
    args.push_back("--log-dir");
    args.push_back(sample_.log_dir);
    return RunRkutl(args);
  }

  TempDir dir_;
  SampleDataDir sample_;
};

TEST_F(RkutlTxnLogTest, DumpPrintsOneLinePerRecord) {
  RunResult r = Rkutl({"txnlog", "dump"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), sample_.txns);
  EXPECT_EQ(lines[0], absl::StrCat("0x1 1970-01-01T00:00:01.001Z session ",
                                   Hx(sample_.live_session),
                                   " cxid 0 createSession timeoutMs=30000"));
  EXPECT_EQ(lines[2],
            "0x3 1970-01-01T00:00:01.003Z session 0x0 cxid 0 create "
            "path=/app dataLength=5 acl=[world:anyone:cdrwa] flags=0 "
            "parentCversion=1 parentNumChildren=2");
  int64_t prev = 0;
  bool multi = false;
  bool close = false;
  for (const std::string& line : lines) {
    const int64_t z = ZxidOfLine(line);
    EXPECT_GT(z, prev);
    prev = z;
    multi = multi || Contains(line, " multi ops=4 {create path=/m1 ");
    close = close || Contains(line, " closeSession deletes=2 [/app/e2 ");
  }
  EXPECT_EQ(prev, sample_.last_zxid);
  EXPECT_TRUE(multi);
  EXPECT_TRUE(close);

  r = Rkutl({"txnlog", "dump", "--from", "0x10", "--to", "18"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(Lines(r.out).size(), 3u) << r.out;
  EXPECT_EQ(ZxidOfLine(Lines(r.out)[0]), 16);
  EXPECT_EQ(ZxidOfLine(Lines(r.out)[2]), 18);
}

TEST_F(RkutlTxnLogTest, DumpJsonLines) {
  RunResult r = Rkutl({"txnlog", "dump", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), sample_.txns);
  std::map<std::string, int> types;
  for (size_t i = 0; i < lines.size(); ++i) {
    auto j = ParseJson(lines[i]);
    ASSERT_TRUE(j.ok()) << j.status() << "\n" << lines[i];
    EXPECT_EQ(j->Find("zxid")->text, Hx(static_cast<int64_t>(i) + 1));
    ++types[j->Find("type")->text];
    const Json* txn = j->Find("txn");
    ASSERT_NE(txn, nullptr);
    ASSERT_NE(txn->Find("header"), nullptr);
  }
  EXPECT_EQ(types["createSession"], 2);
  EXPECT_EQ(types["multi"], 1);
  EXPECT_EQ(types["closeSession"], 1);
  auto first = ParseJson(lines[2]);
  EXPECT_EQ(first->Find("txn")->Find("create")->Find("path")->text, "/app");
  EXPECT_EQ(first->Find("timeMs")->AsInt(), 1003);
}

TEST_F(RkutlTxnLogTest, Stat) {
  RunResult r = Rkutl({"txnlog", "stat", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = ParseJson(r.out);
  ASSERT_TRUE(j.ok()) << j.status() << r.out;
  const auto segments = Segments(sample_.log_dir);
  EXPECT_EQ(j->Find("segments")->items.size(), segments.size());
  EXPECT_EQ(j->Find("records")->AsInt(), static_cast<int64_t>(sample_.txns));
  EXPECT_EQ(j->Find("firstZxid")->text, "0x1");
  EXPECT_EQ(j->Find("lastZxid")->text, Hx(sample_.last_zxid));
  EXPECT_EQ(j->Find("byType")->Find("setACL")->AsInt(), 2);
  EXPECT_EQ(j->Find("byType")->Find("createContainer")->AsInt(), 1);
  EXPECT_EQ(j->Find("damage"), nullptr);

  r = Rkutl({"txnlog", "stat"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, absl::StrCat("segments: ", segments.size())));
  EXPECT_TRUE(Contains(r.out, absl::StrCat("records: ", sample_.txns)));
  EXPECT_TRUE(Contains(r.out, "zxids: 0x1 - " + Hx(sample_.last_zxid)));
  EXPECT_TRUE(Contains(r.out, "  setACL           2\n")) << r.out;
}

TEST_F(RkutlTxnLogTest, VerifyCleanLog) {
  RunResult r = Rkutl({"txnlog", "verify"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(r.out.rfind("OK: ", 0), 0u) << r.out;
  EXPECT_TRUE(Contains(r.out, absl::StrCat(sample_.txns, " records")));
}

TEST_F(RkutlTxnLogTest, VerifyTornTail) {
  const auto segments = Segments(sample_.log_dir);
  const engine::TxnLogSegmentInfo& last = segments.back();
  // A record header promising 100 bytes, followed by only 10.
  std::string bytes = ReadFile(last.path);
  bytes.resize(last.valid_end);
  bytes += std::string("\x64\x00\x00\x00\x11\x22\x33\x44", 8) +
           std::string(18, '\x5a');
  WriteFile(last.path, bytes);
  const auto before = ReadTree(sample_.log_dir);
  RunResult r = Rkutl({"txnlog", "verify"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.out, absl::StrCat("torn tail at ", last.path,
                                           " offset ", last.valid_end)))
      << r.out;
  EXPECT_TRUE(Contains(r.out, absl::StrCat(sample_.txns, " valid records")));
  EXPECT_TRUE(before == ReadTree(sample_.log_dir));
  // dump and stat read every valid record and warn about the tail.
  r = Rkutl({"txnlog", "dump"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(Lines(r.out).size(), sample_.txns);
  EXPECT_TRUE(Contains(r.err, "warning: torn tail at " + last.path)) << r.err;
  r = Rkutl({"txnlog", "stat"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.out, "torn tail at " + last.path));
  EXPECT_TRUE(before == ReadTree(sample_.log_dir));
}

TEST_F(RkutlTxnLogTest, VerifyFlippedByte) {
  const auto segments = Segments(sample_.log_dir);
  ASSERT_GE(segments.size(), 3u);
  const std::string path = segments[0].path;
  const std::vector<uint64_t> offsets = RecordOffsets(path);
  ASSERT_GE(offsets.size(), 4u);
  std::string bytes = ReadFile(path);
  bytes[offsets[2] + engine::kTxnLogRecordHeaderSize + 3] ^= 0x40;
  WriteFile(path, bytes);
  const auto before = ReadTree(sample_.log_dir);
  RunResult r = Rkutl({"txnlog", "verify"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.out, absl::StrCat("corruption at ", path, " offset ",
                                           offsets[2], ": ")))
      << r.out;
  EXPECT_TRUE(Contains(r.out, "2 valid records")) << r.out;
  EXPECT_TRUE(before == ReadTree(sample_.log_dir));
  // dump prints the records before the damage, then fails.
  r = Rkutl({"txnlog", "dump"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(Lines(r.out).size(), 2u);
  EXPECT_TRUE(Contains(r.err, "corruption at " + path)) << r.err;
  r = Rkutl({"txnlog", "stat"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(before == ReadTree(sample_.log_dir));
  // Truncation needs a log the engine can open.
  r = Rkutl({"txnlog", "truncate", "--after", "1", "--force"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "cannot truncate a corrupt log")) << r.err;
  EXPECT_TRUE(before == ReadTree(sample_.log_dir));
}

TEST_F(RkutlTxnLogTest, VerifyRejectsRecordsThatAreNotTxns) {
  // Well-formed log records whose payload is not a Txn.
  TempDir logs;
  {
    engine::TxnLogOptions o;
    o.dir = logs.path();
    o.sync = false;
    auto log = engine::TxnLog::Open(o);
    ASSERT_TRUE(log.ok());
    engine::Txn txn;
    txn.mutable_header()->set_zxid(5);
    txn.mutable_error()->set_err(0);
    ASSERT_TRUE((*log)->Append(5, txn.SerializeAsString()).ok());
    ASSERT_TRUE((*log)->Append(6, "\xff\xff\xff garbage").ok());
  }
  RunResult r = RunRkutl({"txnlog", "verify", "--log-dir", logs.path()});
  EXPECT_EQ(r.exit_code, 1);
  const std::string segment = logs.path() + "/log.0000000000000005";
  const std::vector<uint64_t> offsets = RecordOffsets(segment);
  ASSERT_EQ(offsets.size(), 2u);
  EXPECT_TRUE(Contains(
      r.out, absl::StrCat("corruption at ", segment, " offset ", offsets[1],
                          ": record zxid 0x6: payload is "
                          "not a Txn")))
      << r.out;
  r = RunRkutl({"txnlog", "dump", "--log-dir", logs.path()});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.out, "0x6 (11-byte payload that is not a Txn)"))
      << r.out;
}

TEST_F(RkutlTxnLogTest, TruncateWithForce) {
  const int64_t after = sample_.last_zxid - 20;
  RunResult r = Rkutl({"txnlog", "truncate", "--after", Hx(after), "--force"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "records after " + Hx(after) + ": 20 ")) << r.out;
  EXPECT_TRUE(Contains(r.out, "the log now ends at zxid " + Hx(after)));
  r = Rkutl({"txnlog", "verify"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  r = Rkutl({"txnlog", "dump"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_EQ(ZxidOfLine(Lines(r.out).back()), after);
  EXPECT_EQ(Lines(r.out).size(), sample_.txns - 20);
  // Nothing left to remove.
  r = Rkutl({"txnlog", "truncate", "--after", Hx(after), "--force"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.out, "nothing to remove")) << r.out;
}

TEST_F(RkutlTxnLogTest, TruncateWithoutForceNeedsATerminal) {
  const auto before = ReadTree(sample_.log_dir);
  RunResult r = Rkutl({"txnlog", "truncate", "--after", "5"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(
      Contains(r.out, absl::StrCat("records after 0x5: ", sample_.txns - 5)))
      << r.out;
  EXPECT_TRUE(Contains(r.out, "  cut ")) << r.out;
  EXPECT_TRUE(Contains(r.out, "  delete ")) << r.out;
  EXPECT_TRUE(Contains(r.err, "stdin is not a terminal")) << r.err;
  EXPECT_TRUE(before == ReadTree(sample_.log_dir));
}

TEST_F(RkutlTxnLogTest, CommandsThatWriteRefuseALockedLog) {
  engine::TxnLogOptions o;
  o.dir = sample_.log_dir;
  auto held = engine::TxnLog::Open(o);  // as a running server would
  ASSERT_TRUE(held.ok()) << held.status();
  const auto before = ReadTree(sample_.data_dir);
  RunResult r = Rkutl({"txnlog", "truncate", "--after", "5", "--force"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "log dir " + sample_.log_dir + " is locked"))
      << r.err;
  r = RunRkutl({"purge", "--data-dir", sample_.data_dir, "--keep", "3"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(Contains(r.err, "is the server running?")) << r.err;
  EXPECT_TRUE(before == ReadTree(sample_.data_dir));
  // Read-only commands still work while the log is held.
  EXPECT_EQ(Rkutl({"txnlog", "verify"}).exit_code, 0);
}

TEST(RkutlPurgeTest, KeepsTheNewestSnapshotsAndTheLogTheyNeed) {
  TempDir dir;
  const SampleDataDir s = BuildSampleDataDir(dir.Sub("data"), 6, 600);
  const size_t segments_before = Segments(s.log_dir).size();
  RunResult r = RunRkutl({"purge", "--data-dir", s.data_dir, "--keep", "4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(Contains(r.out, "deleted 2 snapshot(s)")) << r.out;
  auto snaps = engine::SnapshotStore(s.data_dir + "/snapshots").List();
  ASSERT_TRUE(snaps.ok());
  ASSERT_EQ(snaps->size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ((*snaps)[i].zxid, s.snapshot_zxids[i + 2]);
  }
  const int64_t oldest = s.snapshot_zxids[2];
  const auto segments = Segments(s.log_dir);
  EXPECT_LT(segments.size(), segments_before) << r.out;
  // Every record after the oldest kept snapshot is still there.
  EXPECT_LE(segments.front().name_zxid, oldest + 1);
  EXPECT_GT(segments.front().last_zxid, oldest);
  EXPECT_EQ(RunRkutl({"txnlog", "verify", "--log-dir", s.log_dir}).exit_code,
            0);
  EXPECT_TRUE(Contains(r.out, "deleted log segment ")) << r.out;

  // Again: nothing more to delete; --keep below 3 is a usage error.
  r = RunRkutl({"purge", "--data-dir", s.data_dir, "--keep", "4"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(Contains(r.out, "deleted 0 snapshot(s) and 0 log segment(s)"));
  r = RunRkutl({"purge", "--data-dir", s.data_dir, "--keep", "3", "--log-dir",
                s.log_dir});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(engine::SnapshotStore(s.data_dir + "/snapshots").List()->size(),
            3u);
}

}  // namespace
}  // namespace rockeeper::rkutl::testing
