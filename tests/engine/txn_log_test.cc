#include "engine/txn_log.h"

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/crc32c.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace rockeeper::engine {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::SizeIs;

// ---------------------------------------------------------------------------
// Helpers

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void WriteAt(const std::string& path, uint64_t off, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0) << path;
  ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(off)),
            static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

std::string Le32(uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

std::string Le64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// A record encoded independently of the implementation, per the documented
// format.
std::string EncodeRecord(int64_t zxid, std::string_view payload) {
  std::string z = Le64(static_cast<uint64_t>(zxid));
  uint32_t crc =
      Crc32cExtend(Crc32c(z.data(), z.size()), payload.data(), payload.size());
  return Le32(static_cast<uint32_t>(payload.size())) + Le32(Crc32cMask(crc)) +
         z + std::string(payload);
}

// Deterministic payload of varying size for a zxid.
std::string Payload(int64_t zxid) {
  std::string p = absl::StrCat("txn-", zxid, "-");
  p.resize(20 + static_cast<size_t>(zxid % 97),
           static_cast<char>('a' + zxid % 26));
  return p;
}

std::string SegmentPath(const std::string& dir, int64_t first_zxid) {
  return absl::StrFormat("%s/log.%016x", dir,
                         static_cast<uint64_t>(first_zxid));
}

// Segment file paths in the directory, sorted.
std::vector<std::string> SegmentFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    if (name.rfind("log.", 0) == 0 && name.size() == 20) {
      out.push_back(e.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// All files' bytes, to check that something did not modify the directory.
std::map<std::string, std::string> Snapshot(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    out[e.path().filename().string()] = ReadFileBytes(e.path().string());
  }
  return out;
}

using Records = std::vector<std::pair<int64_t, std::string>>;

Records Collect(TxnLogIterator& it) {
  Records out;
  for (; it.Valid(); it.Next()) {
    out.emplace_back(it.zxid(), std::string(it.payload()));
  }
  return out;
}

Records ReadAll(const TxnLog& log, int64_t from = 0) {
  std::unique_ptr<TxnLogIterator> it = log.NewIterator(from);
  Records out = Collect(*it);
  EXPECT_TRUE(it->status().ok()) << it->status();
  return out;
}

Records Expected(const std::vector<int64_t>& zxids) {
  Records out;
  for (int64_t z : zxids) out.emplace_back(z, Payload(z));
  return out;
}

class TxnLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "txn_log_test.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/log";
  }
  void TearDown() override { fs::remove_all(root_); }

  TxnLogOptions Options() const {
    TxnLogOptions o;
    o.dir = dir_;
    o.segment_max_bytes = 1024;  // several records per segment, many segments
    o.preallocate_bytes = 4096;
    return o;
  }

  std::unique_ptr<TxnLog> OpenLog(const TxnLogOptions& o) {
    absl::StatusOr<std::unique_ptr<TxnLog>> log = TxnLog::Open(o);
    EXPECT_TRUE(log.ok()) << log.status();
    return log.ok() ? std::move(*log) : nullptr;
  }
  std::unique_ptr<TxnLog> OpenLog() { return OpenLog(Options()); }

  // Appends records with the given zxids and Payload(zxid).
  void AppendAll(TxnLog& log, const std::vector<int64_t>& zxids) {
    for (int64_t z : zxids) ASSERT_TRUE(log.Append(z, Payload(z)).ok()) << z;
  }

  std::string root_;
  std::string dir_;
};

std::vector<int64_t> Zxids(int64_t first, int n, int64_t step = 1) {
  std::vector<int64_t> out;
  for (int i = 0; i < n; ++i) out.push_back(first + i * step);
  return out;
}

// ---------------------------------------------------------------------------
// CRC-32C

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  std::string zeros(32, '\0');
  EXPECT_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  std::string ones(32, '\xff');
  EXPECT_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
  EXPECT_EQ(Crc32c("", 0), 0u);
  EXPECT_EQ(Crc32cExtendPortable(0, "123456789", 9), 0xE3069283u);
}

TEST(Crc32cTest, HardwareMatchesPortableAndExtendComposes) {
  std::mt19937 rng(7);
  std::string buf(5000, '\0');
  for (char& c : buf) c = static_cast<char>(rng());
  for (size_t off = 0; off < 9; ++off) {
    for (size_t n : {0u, 1u, 7u, 8u, 31u, 33u, 100u, 4096u}) {
      const char* p = buf.data() + off;
      ASSERT_EQ(Crc32cExtend(0x1234, p, n), Crc32cExtendPortable(0x1234, p, n))
          << off << " " << n;
      size_t k = n / 3;
      ASSERT_EQ(Crc32cExtend(Crc32c(p, k), p + k, n - k), Crc32c(p, n));
    }
  }
}

TEST(Crc32cTest, ExtendZerosMatchesRealZeros) {
  std::string data = "some data";
  for (uint64_t n : {0u, 1u, 5u, 64u, 1000u, 65537u}) {
    std::string padded = data + std::string(n, '\0');
    EXPECT_EQ(Crc32cExtendZeros(Crc32c(data.data(), data.size()), n),
              Crc32c(padded.data(), padded.size()))
        << n;
  }
}

TEST(Crc32cTest, MaskRoundTripsAndDiffers) {
  uint32_t crc = Crc32c("foo", 3);
  EXPECT_NE(Crc32cMask(crc), crc);
  EXPECT_NE(Crc32cMask(Crc32cMask(crc)), crc);
  EXPECT_EQ(Crc32cUnmask(Crc32cMask(crc)), crc);
  EXPECT_EQ(Crc32cUnmask(Crc32cUnmask(Crc32cMask(Crc32cMask(crc)))), crc);
}

// ---------------------------------------------------------------------------
// Basic behaviour

TEST_F(TxnLogTest, EmptyDirectoryOpensEmpty) {
  auto log = OpenLog();  // creates dir_ (and it does not exist yet)
  ASSERT_NE(log, nullptr);
  EXPECT_TRUE(fs::is_directory(dir_));
  EXPECT_EQ(log->last_zxid(), 0);
  EXPECT_FALSE(log->recovery_report().modified());
  std::unique_ptr<TxnLogIterator> it = log->NewIterator(0);
  EXPECT_FALSE(it->Valid());
  EXPECT_TRUE(it->status().ok());
  EXPECT_THAT(SegmentFiles(dir_), SizeIs(0));  // nothing until the 1st append
  log.reset();
  log = OpenLog();
  EXPECT_EQ(log->last_zxid(), 0);
}

TEST_F(TxnLogTest, OnDiskFormatIsAsDocumented) {
  TxnLogOptions o = Options();
  o.segment_max_bytes = 1 << 20;
  auto log = OpenLog(o);
  ASSERT_TRUE(log->Append(0x500000001, "hello").ok());
  ASSERT_TRUE(log->Append(0x500000003, "").ok());
  const std::string path = SegmentPath(dir_, 0x500000001);
  EXPECT_THAT(SegmentFiles(dir_), ::testing::ElementsAre(path));
  std::string bytes = ReadFileBytes(path);
  std::string expected = std::string("RKLOG\0\0\1", 8) + Le32(1) + Le32(0) +
                         EncodeRecord(0x500000001, "hello") +
                         EncodeRecord(0x500000003, "");
  ASSERT_GE(bytes.size(), expected.size());
  EXPECT_EQ(bytes.substr(0, expected.size()), expected);
  // The rest is the preallocated zero tail (one preallocate_bytes chunk).
  EXPECT_EQ(bytes.size(), 4096u);
  EXPECT_EQ(bytes.find_first_not_of('\0', expected.size()), std::string::npos);
}

TEST_F(TxnLogTest, RoundTripAcrossSegmentsAndReopen) {
  const std::vector<int64_t> zxids = Zxids(7, 300, 3);  // non-contiguous
  {
    auto log = OpenLog();
    AppendAll(*log, zxids);
    EXPECT_EQ(log->last_zxid(), zxids.back());
    EXPECT_EQ(ReadAll(*log), Expected(zxids));
    TxnLog::Stats st = log->stats();
    EXPECT_EQ(st.records, zxids.size());
    EXPECT_EQ(st.batches, zxids.size());
    EXPECT_GE(st.fsyncs, zxids.size());
    EXPECT_GT(st.segments_created, 10u);
  }
  std::vector<std::string> files = SegmentFiles(dir_);
  ASSERT_GT(files.size(), 10u);
  EXPECT_EQ(files.front(), SegmentPath(dir_, 7));
  // Closed segments are trimmed to their records; only the last one keeps
  // its preallocated tail.
  for (size_t i = 0; i + 1 < files.size(); ++i) {
    EXPECT_LE(fs::file_size(files[i]), 1024u + 200u) << files[i];
  }

  auto log = OpenLog();
  EXPECT_FALSE(log->recovery_report().modified())
      << log->recovery_report().ToString();
  EXPECT_EQ(log->last_zxid(), zxids.back());
  EXPECT_EQ(log->recovery_report().records, zxids.size());
  EXPECT_EQ(ReadAll(*log), Expected(zxids));

  // Appending continues after reopen.
  std::vector<int64_t> more = Zxids(zxids.back() + 1, 50);
  AppendAll(*log, more);
  std::vector<int64_t> all = zxids;
  all.insert(all.end(), more.begin(), more.end());
  EXPECT_EQ(ReadAll(*log), Expected(all));
  log.reset();
  EXPECT_EQ(ReadAll(*OpenLog()), Expected(all));
}

TEST_F(TxnLogTest, IterateFromMiddle) {
  const std::vector<int64_t> zxids = Zxids(10, 200, 2);  // 10, 12, ..., 408
  auto log = OpenLog();
  AppendAll(*log, zxids);
  auto from = [&](int64_t z) {
    std::vector<int64_t> want;
    for (int64_t x : zxids) {
      if (x >= z) want.push_back(x);
    }
    return Expected(want);
  };
  for (int64_t z : {0, 10, 11, 100, 101, 250, 407, 408}) {
    EXPECT_EQ(ReadAll(*log, z), from(z)) << z;
  }
  EXPECT_THAT(ReadAll(*log, 409), SizeIs(0));
  // An iterator sees the records durable when it was created, not later ones.
  std::unique_ptr<TxnLogIterator> it = log->NewIterator(400);
  ASSERT_TRUE(log->Append(1000, Payload(1000)).ok());
  EXPECT_EQ(Collect(*it), from(400));
  EXPECT_TRUE(it->status().ok());
}

TEST_F(TxnLogTest, RejectsNonIncreasingZxidsAndOversizePayloads) {
  TxnLogOptions o = Options();
  o.max_record_bytes = 100;
  auto log = OpenLog(o);
  EXPECT_EQ(log->Append(0, "x").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(log->Append(-5, "x").code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(log->Append(5, "a").ok());
  EXPECT_EQ(log->Append(5, "b").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(log->Append(4, "b").code(), absl::StatusCode::kFailedPrecondition);
  std::vector<LogRecord> batch = {{6, "c"}, {6, "d"}};
  EXPECT_EQ(log->AppendBatch(batch).code(),
            absl::StatusCode::kFailedPrecondition);
  batch = {{3, "c"}, {8, "d"}};
  EXPECT_EQ(log->AppendBatch(batch).code(),
            absl::StatusCode::kFailedPrecondition);
  std::string big(101, 'x');
  EXPECT_EQ(log->Append(9, big).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(log->last_zxid(), 5);
  // Rejections do not poison the log, and nothing of them was written.
  ASSERT_TRUE(log->Append(6, std::string(100, 'y')).ok());
  batch = {{7, "e"}, {9, "f"}};
  ASSERT_TRUE(log->AppendBatch(batch).ok());
  EXPECT_TRUE(log->AppendBatch({}).ok());
  EXPECT_EQ(log->last_zxid(), 9);
  Records got = ReadAll(*log);
  ASSERT_THAT(got, SizeIs(4));
  EXPECT_EQ(got[0], std::make_pair(int64_t{5}, std::string("a")));
  EXPECT_EQ(got[3], std::make_pair(int64_t{9}, std::string("f")));
}

TEST_F(TxnLogTest, AppendBatchIsOneFsync) {
  auto log = OpenLog();
  ASSERT_TRUE(log->Append(1, Payload(1)).ok());
  TxnLog::Stats before = log->stats();
  std::vector<std::string> payloads;
  std::vector<LogRecord> batch;
  for (int64_t z = 2; z < 12; ++z) payloads.push_back(Payload(z));
  for (int64_t z = 2; z < 12; ++z) batch.push_back({z, payloads[z - 2]});
  ASSERT_TRUE(log->AppendBatch(batch).ok());
  TxnLog::Stats after = log->stats();
  EXPECT_EQ(after.records - before.records, 10u);
  EXPECT_EQ(after.batches - before.batches, 1u);
  // One data fsync, plus file + directory syncs if it started a new segment.
  EXPECT_EQ(after.fsyncs - before.fsyncs,
            1 + 2 * (after.segments_created - before.segments_created));
  EXPECT_EQ(ReadAll(*log), Expected(Zxids(1, 11)));
}

TEST_F(TxnLogTest, ConcurrentAppendersAreGroupCommitted) {
  TxnLogOptions o = Options();
  o.segment_max_bytes = 64 << 10;
  o.preallocate_bytes = 64 << 10;
  o.sync = true;
  auto log = OpenLog(o);
  constexpr int kThreads = 16;
  constexpr int kPerThread = 500;
  std::atomic<int64_t> next_zxid{1};
  std::atomic<int> rejected{0};
  std::vector<std::vector<int64_t>> done(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (static_cast<int>(done[t].size()) < kPerThread) {
        // zxids need only increase in queue order: a caller overtaken by a
        // larger zxid gets FailedPrecondition and retries with a fresh one.
        int64_t z = next_zxid.fetch_add(1);
        absl::Status s = log->Append(z, Payload(z));
        if (s.code() == absl::StatusCode::kFailedPrecondition) {
          rejected.fetch_add(1);
          continue;
        }
        ASSERT_TRUE(s.ok()) << s;
        // Durable before return: it is visible to a new iterator.
        ASSERT_GE(log->last_zxid(), z);
        done[t].push_back(z);
      }
    });
  }
  for (std::thread& th : threads) th.join();

  std::vector<int64_t> all;
  for (const auto& v : done) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  ASSERT_THAT(all, SizeIs(kThreads * kPerThread));
  TxnLog::Stats st = log->stats();
  EXPECT_EQ(st.records, all.size());
  EXPECT_LT(st.batches, st.records) << "no group commit happened";
  EXPECT_LT(st.fsyncs, st.records) << "no group commit happened";
  EXPECT_EQ(st.fsyncs, st.batches + 2 * st.segments_created);
  EXPECT_EQ(ReadAll(*log), Expected(all));
  log.reset();
  auto reopened = OpenLog(o);
  EXPECT_EQ(ReadAll(*reopened), Expected(all));
  EXPECT_FALSE(reopened->recovery_report().modified());
  std::printf("group commit: %llu records in %llu batches (%d rejected)\n",
              static_cast<unsigned long long>(st.records),
              static_cast<unsigned long long>(st.batches), rejected.load());
}

TEST_F(TxnLogTest, SecondWriterIsRefused) {
  auto log = OpenLog();
  absl::StatusOr<std::unique_ptr<TxnLog>> second = TxnLog::Open(Options());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  log.reset();
  EXPECT_NE(OpenLog(), nullptr);
}

// ---------------------------------------------------------------------------
// Recovery: torn tails are truncated, corruption is refused

// Appends 1..n (single segment: big segment_max_bytes) and returns the
// segment path; *last_start receives the offset of record n.
std::string WriteSingleSegment(const std::string& dir, int n,
                               uint64_t* last_start, uint64_t* valid_end) {
  TxnLogOptions o;
  o.dir = dir;
  o.preallocate_bytes = 64 << 10;
  auto log = TxnLog::Open(o);
  EXPECT_TRUE(log.ok());
  for (int64_t z = 1; z <= n; ++z)
    EXPECT_TRUE((*log)->Append(z, Payload(z)).ok());
  std::vector<TxnLogSegmentInfo> segs = (*log)->segments();
  EXPECT_THAT(segs, SizeIs(1));
  *valid_end = segs[0].valid_end;
  *last_start = *valid_end - kTxnLogRecordHeaderSize - Payload(n).size();
  return segs[0].path;
}

TEST_F(TxnLogTest, RequestRollStartsTheNextAppendInANewSegment) {
  TxnLogOptions o;
  o.dir = dir_;
  o.preallocate_bytes = 64 << 10;
  auto log = TxnLog::Open(o);
  ASSERT_TRUE(log.ok());
  (*log)->RequestRoll();  // an empty log has nothing to roll
  for (int64_t z = 1; z <= 3; ++z)
    ASSERT_TRUE((*log)->Append(z, Payload(z)).ok());
  (*log)->RequestRoll();
  for (int64_t z = 4; z <= 5; ++z)
    ASSERT_TRUE((*log)->Append(z, Payload(z)).ok());
  std::vector<TxnLogSegmentInfo> segs = (*log)->segments();
  ASSERT_THAT(segs, SizeIs(2));
  EXPECT_EQ(segs[0].name_zxid, 1);
  EXPECT_EQ(segs[0].last_zxid, 3);
  EXPECT_EQ(segs[1].name_zxid, 4);
  // The first segment is now purgeable on its own.
  auto purged = (*log)->PurgeBefore(4);
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 1);
}

TEST_F(TxnLogTest, TornTailTruncatedMidRecord) {
  uint64_t last_start, valid_end;
  std::string path = WriteSingleSegment(dir_, 50, &last_start, &valid_end);
  // Cut the file in the middle of record 50 (and drop the zero tail).
  fs::resize_file(path, last_start + 20);

  // The read-only reader reports it as a torn tail and changes nothing.
  auto before = Snapshot(dir_);
  auto reader = TxnLogReader::Open(dir_);
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->damage().kind, LogDamage::Kind::kTornTail);
  EXPECT_EQ((*reader)->damage().file, path);
  EXPECT_EQ((*reader)->damage().offset, last_start);
  EXPECT_EQ((*reader)->status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT((*reader)->status().message(),
              HasSubstr(absl::StrCat(path, ": offset ", last_start)));
  EXPECT_EQ((*reader)->last_zxid(), 49);
  std::unique_ptr<TxnLogIterator> rit = (*reader)->NewIterator(0);
  EXPECT_EQ(Collect(*rit), Expected(Zxids(1, 49)));
  EXPECT_EQ(rit->status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Snapshot(dir_), before);

  auto log = OpenLog();
  const TxnLogRecoveryReport& r = log->recovery_report();
  EXPECT_TRUE(r.modified());
  EXPECT_EQ(r.torn_tail.kind, LogDamage::Kind::kTornTail);
  EXPECT_EQ(r.torn_tail.file, path);
  EXPECT_EQ(r.torn_tail.offset, last_start);
  EXPECT_EQ(r.torn_tail.dropped_bytes, 20u);
  EXPECT_THAT(r.ToString(), HasSubstr(absl::StrCat("offset ", last_start)));
  EXPECT_EQ(log->last_zxid(), 49);
  EXPECT_EQ(fs::file_size(path), last_start);

  // Appends continue (zxid 50 is free again) and survive a reopen.
  AppendAll(*log, Zxids(50, 20));
  log.reset();
  log = OpenLog();
  EXPECT_FALSE(log->recovery_report().modified());
  EXPECT_EQ(ReadAll(*log), Expected(Zxids(1, 69)));
}

TEST_F(TxnLogTest, TornTailGarbageAfterLastRecord) {
  uint64_t last_start, valid_end;
  std::string path = WriteSingleSegment(dir_, 30, &last_start, &valid_end);
  const uint64_t size = fs::file_size(path);
  WriteAt(path, valid_end, "\x13\x37garbage-garbage-garbage");
  auto log = OpenLog();
  const TxnLogRecoveryReport& r = log->recovery_report();
  EXPECT_EQ(r.torn_tail.kind, LogDamage::Kind::kTornTail);
  EXPECT_EQ(r.torn_tail.offset, valid_end);
  EXPECT_EQ(r.torn_tail.dropped_bytes, 25u);
  EXPECT_EQ(log->last_zxid(), 30);
  EXPECT_LT(fs::file_size(path), size);
  AppendAll(*log, {31});
  EXPECT_EQ(ReadAll(*log), Expected(Zxids(1, 31)));
}

TEST_F(TxnLogTest, TornTailPartialRecordInPreallocatedSpace) {
  uint64_t last_start, valid_end;
  std::string path = WriteSingleSegment(dir_, 30, &last_start, &valid_end);
  // A complete header but only half of the payload reached the disk; the
  // rest still reads as preallocated zeros.
  std::string rec = EncodeRecord(31, std::string(200, 'q'));
  WriteAt(path, valid_end, rec.substr(0, 16 + 100));
  auto log = OpenLog();
  EXPECT_EQ(log->recovery_report().torn_tail.kind, LogDamage::Kind::kTornTail);
  EXPECT_EQ(log->recovery_report().torn_tail.offset, valid_end);
  EXPECT_THAT(log->recovery_report().torn_tail.detail,
              HasSubstr("checksum mismatch"));
  EXPECT_EQ(log->last_zxid(), 30);
}

TEST_F(TxnLogTest, TornTailOfRandomGarbageIsTruncated) {
  uint64_t last_start, valid_end;
  std::string path = WriteSingleSegment(dir_, 30, &last_start, &valid_end);
  std::mt19937 rng(42);
  std::string garbage(256 << 10, '\0');
  for (char& c : garbage) c = static_cast<char>(rng() | 1);  // no zero bytes
  WriteAt(path, valid_end, garbage);
  auto log = OpenLog();
  EXPECT_EQ(log->recovery_report().torn_tail.kind, LogDamage::Kind::kTornTail)
      << log->recovery_report().ToString();
  EXPECT_EQ(log->recovery_report().torn_tail.dropped_bytes, garbage.size());
  EXPECT_EQ(log->last_zxid(), 30);
}

TEST_F(TxnLogTest, ValidRecordEndingInZeroTailIsFoundAfterCorruption) {
  // The record after the damage ends in zero bytes that are indistinguishable
  // from the preallocated tail; it must still be recognized as valid.
  uint64_t last_start, valid_end;
  std::string path = WriteSingleSegment(dir_, 30, &last_start, &valid_end);
  {
    TxnLogOptions o = Options();
    o.segment_max_bytes = 1 << 20;
    auto log = OpenLog(o);
    ASSERT_TRUE(
        log->Append(31, std::string("abc") + std::string(300, '\0')).ok());
  }
  WriteAt(path, last_start + 20, "X");  // damage record 30
  absl::StatusOr<std::unique_ptr<TxnLog>> log = TxnLog::Open(Options());
  ASSERT_EQ(log.status().code(), absl::StatusCode::kDataLoss) << log.status();
  EXPECT_THAT(log.status().message(),
              HasSubstr(absl::StrCat(path, ": offset ", last_start)));
  EXPECT_THAT(log.status().message(), HasSubstr("a valid record (zxid 0x1f)"));
}

TEST_F(TxnLogTest, EmptyLastSegmentAndTempFilesAreRemoved) {
  {
    auto log = OpenLog();
    AppendAll(*log, Zxids(1, 5));
  }
  // As left by a crash right after rolling / while creating a segment.
  const std::string empty = SegmentPath(dir_, 100);
  std::ofstream(empty, std::ios::binary) << std::string("RKLOG\0\0\1", 8) +
                                                Le32(1) + Le32(0) +
                                                std::string(100, '\0');
  const std::string tmp = SegmentPath(dir_, 200) + ".tmp";
  std::ofstream(tmp) << "partial";
  auto log = OpenLog();
  EXPECT_THAT(log->recovery_report().removed_files,
              ::testing::UnorderedElementsAre(empty, tmp));
  EXPECT_FALSE(fs::exists(empty));
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_EQ(log->last_zxid(), 5);
  AppendAll(*log, {6});
  EXPECT_EQ(ReadAll(*log), Expected(Zxids(1, 6)));
}

// Writes 1..n with small segments; returns the segment paths.
std::vector<std::string> WriteSegments(const TxnLogOptions& o, int n) {
  auto log = TxnLog::Open(o);
  EXPECT_TRUE(log.ok());
  for (int64_t z = 1; z <= n; ++z)
    EXPECT_TRUE((*log)->Append(z, Payload(z)).ok());
  std::vector<std::string> out;
  for (const TxnLogSegmentInfo& s : (*log)->segments()) out.push_back(s.path);
  return out;
}

// Offset and zxid of the k-th record (0-based) of a segment.
std::pair<uint64_t, int64_t> RecordAt(const std::string& path, int k) {
  std::string bytes = ReadFileBytes(path);
  uint64_t off = kTxnLogFileHeaderSize;
  for (int i = 0; i < k; ++i) {
    uint32_t len = static_cast<uint8_t>(bytes[off]) |
                   static_cast<uint8_t>(bytes[off + 1]) << 8 |
                   static_cast<uint8_t>(bytes[off + 2]) << 16;
    off += kTxnLogRecordHeaderSize + len;
  }
  int64_t zxid = 0;
  std::memcpy(&zxid, bytes.data() + off + 8, 8);  // little-endian host
  return {off, zxid};
}

TEST_F(TxnLogTest, FlippedByteInMiddleOfLastSegmentIsDataLoss) {
  std::vector<std::string> files = WriteSegments(Options(), 100);
  ASSERT_GE(files.size(), 3u);
  const std::string& last = files.back();
  auto [off, zxid] = RecordAt(last, 1);  // followed by valid records
  std::string bytes = ReadFileBytes(last);
  std::string flipped(1, static_cast<char>(bytes[off + 20] ^ 0x40));
  WriteAt(last, off + 20, flipped);

  auto before = Snapshot(dir_);
  absl::StatusOr<std::unique_ptr<TxnLog>> log = TxnLog::Open(Options());
  ASSERT_EQ(log.status().code(), absl::StatusCode::kDataLoss) << log.status();
  EXPECT_THAT(log.status().message(),
              HasSubstr(absl::StrCat(last, ": offset ", off)));
  EXPECT_THAT(log.status().message(), HasSubstr("checksum mismatch"));
  EXPECT_EQ(Snapshot(dir_), before) << "Open modified a corrupt log";

  auto reader = TxnLogReader::Open(dir_);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->damage().kind, LogDamage::Kind::kCorruption);
  EXPECT_EQ((*reader)->damage().file, last);
  EXPECT_EQ((*reader)->damage().offset, off);
  EXPECT_EQ((*reader)->status().code(), absl::StatusCode::kDataLoss);
  std::unique_ptr<TxnLogIterator> it = (*reader)->NewIterator(0);
  EXPECT_EQ(Collect(*it), Expected(Zxids(1, static_cast<int>(zxid) - 1)));
  EXPECT_EQ(it->status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Snapshot(dir_), before) << "the reader modified the log";
}

TEST_F(TxnLogTest, CorruptLastRecordOfNonLastSegmentIsDataLoss) {
  std::vector<std::string> files = WriteSegments(Options(), 100);
  ASSERT_GE(files.size(), 3u);
  const std::string& victim = files[1];
  // Flip the last byte of the segment's last record.
  const uint64_t size = fs::file_size(victim);
  std::string bytes = ReadFileBytes(victim);
  WriteAt(victim, size - 1,
          std::string(1, static_cast<char>(bytes.back() ^ 1)));
  auto before = Snapshot(dir_);
  absl::StatusOr<std::unique_ptr<TxnLog>> log = TxnLog::Open(Options());
  ASSERT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(log.status().message(), HasSubstr(victim));
  auto reader = TxnLogReader::Open(dir_);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->damage().kind, LogDamage::Kind::kCorruption);
  EXPECT_EQ((*reader)->damage().file, victim);
  EXPECT_EQ(Snapshot(dir_), before);
}

TEST_F(TxnLogTest, CorruptLengthFieldFollowedByRecordsIsDataLoss) {
  std::vector<std::string> files = WriteSegments(Options(), 100);
  const std::string& last = files.back();
  auto [off, zxid] = RecordAt(last, 1);
  (void)zxid;
  WriteAt(last, off, Le32(0x00000fff));  // plausible length, wrong
  absl::StatusOr<std::unique_ptr<TxnLog>> log = TxnLog::Open(Options());
  ASSERT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(log.status().message(),
              HasSubstr(absl::StrCat(last, ": offset ", off)));
  EXPECT_THAT(log.status().message(), HasSubstr("a valid record"));
}

TEST_F(TxnLogTest, ZeroedRecordFollowedByRecordsIsDataLoss) {
  // Zeros are the end of the log only if nothing valid follows them.
  std::vector<std::string> files = WriteSegments(Options(), 100);
  const std::string& last = files.back();
  auto [off, zxid] = RecordAt(last, 1);
  (void)zxid;
  WriteAt(last, off, std::string(kTxnLogRecordHeaderSize, '\0'));
  absl::StatusOr<std::unique_ptr<TxnLog>> log = TxnLog::Open(Options());
  ASSERT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(log.status().message(),
              HasSubstr(absl::StrCat(last, ": offset ", off)));
}

TEST_F(TxnLogTest, OversizeLengthFieldIsDataLossWithoutHugeAllocation) {
  std::vector<std::string> files = WriteSegments(Options(), 100);
  const std::string& last = files.back();
  auto [off, zxid] = RecordAt(last, 0);
  (void)zxid;
  WriteAt(last, off, Le32(0xfffffff0u));
  // Cap the address space at 1 GiB above current use: allocating the ~4 GiB
  // the length field claims would fail (and crash the test).
  struct rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_AS, &old_limit), 0);
#if !defined(__SANITIZE_ADDRESS__)
  unsigned long long vm_pages = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    ASSERT_EQ(std::fscanf(f, "%llu", &vm_pages), 1);
    std::fclose(f);
  }
  struct rlimit lim = old_limit;
  lim.rlim_cur = vm_pages * static_cast<unsigned long long>(::getpagesize()) +
                 (1ull << 30);
  ASSERT_EQ(::setrlimit(RLIMIT_AS, &lim), 0);
#endif
  absl::StatusOr<std::unique_ptr<TxnLog>> log = TxnLog::Open(Options());
  auto reader = TxnLogReader::Open(dir_);
  ASSERT_EQ(::setrlimit(RLIMIT_AS, &old_limit), 0);
  ASSERT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(log.status().message(),
              HasSubstr(absl::StrCat(last, ": offset ", off)));
  EXPECT_THAT(log.status().message(), HasSubstr("exceeds max_record_bytes"));
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ((*reader)->damage().kind, LogDamage::Kind::kCorruption);
}

TEST_F(TxnLogTest, ValidRecordAboveMaxRecordBytesIsNeverTruncated) {
  // A log written with a larger limit must not be mistaken for a torn tail
  // when opened with a smaller one.
  {
    auto log = OpenLog();
    ASSERT_TRUE(log->Append(1, std::string(3000, 'b')).ok());
  }
  TxnLogOptions o = Options();
  o.max_record_bytes = 1000;
  auto before = Snapshot(dir_);
  absl::StatusOr<std::unique_ptr<TxnLog>> log = TxnLog::Open(o);
  ASSERT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(log.status().message(), HasSubstr("valid checksum"));
  EXPECT_EQ(Snapshot(dir_), before);
  EXPECT_NE(OpenLog(), nullptr);  // with the original limit it is fine
}

TEST_F(TxnLogTest, NonIncreasingZxidOnDiskIsDataLoss) {
  uint64_t last_start, valid_end;
  std::string path = WriteSingleSegment(dir_, 10, &last_start, &valid_end);
  // A well-formed record (valid checksum) whose zxid goes backwards.
  WriteAt(path, valid_end, EncodeRecord(7, "backwards"));
  absl::StatusOr<std::unique_ptr<TxnLog>> log = TxnLog::Open(Options());
  ASSERT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(log.status().message(),
              HasSubstr(absl::StrCat(path, ": offset ", valid_end)));
  EXPECT_THAT(log.status().message(), HasSubstr("not greater"));
}

TEST_F(TxnLogTest, SegmentNameMustMatchFirstRecord) {
  std::vector<std::string> files = WriteSegments(Options(), 40);
  ASSERT_GE(files.size(), 2u);
  fs::rename(files[0], SegmentPath(dir_, 0));  // claims to start at 0 (wrong)
  absl::StatusOr<std::unique_ptr<TxnLog>> log = TxnLog::Open(Options());
  ASSERT_EQ(log.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(log.status().message(), HasSubstr("file name"));
}

// ---------------------------------------------------------------------------
// TruncateAfter, PurgeBefore

TEST_F(TxnLogTest, TruncateAfterMiddleOfSegment) {
  auto log = OpenLog();
  AppendAll(*log, Zxids(1, 100));
  std::vector<TxnLogSegmentInfo> segs = log->segments();
  ASSERT_GE(segs.size(), 4u);
  // A zxid strictly inside the second-to-last segment.
  const TxnLogSegmentInfo& target = segs[segs.size() - 2];
  const int64_t cut = target.name_zxid + 1;
  ASSERT_LT(cut, target.last_zxid);
  ASSERT_TRUE(log->TruncateAfter(cut).ok());
  EXPECT_EQ(log->last_zxid(), cut);
  EXPECT_EQ(ReadAll(*log), Expected(Zxids(1, static_cast<int>(cut))));
  EXPECT_FALSE(fs::exists(segs.back().path));
  EXPECT_THAT(SegmentFiles(dir_), SizeIs(segs.size() - 1));
  // The cut is on disk: the file ends at the last kept record and a reopen
  // finds exactly the kept records, with nothing to repair.
  EXPECT_EQ(fs::file_size(target.path), log->segments().back().valid_end);
  log.reset();
  log = OpenLog();
  EXPECT_FALSE(log->recovery_report().modified())
      << log->recovery_report().ToString();
  EXPECT_EQ(log->last_zxid(), cut);
  EXPECT_EQ(ReadAll(*log), Expected(Zxids(1, static_cast<int>(cut))));
  // zxids above the cut can be appended again (ZAB TRUNC then re-sync).
  ASSERT_EQ(log->Append(cut, "x").code(),
            absl::StatusCode::kFailedPrecondition);
  AppendAll(*log, Zxids(cut + 1, 30));
  EXPECT_EQ(ReadAll(*log), Expected(Zxids(1, static_cast<int>(cut) + 30)));
  log.reset();
  log = OpenLog();
  EXPECT_FALSE(log->recovery_report().modified());
  EXPECT_EQ(ReadAll(*log), Expected(Zxids(1, static_cast<int>(cut) + 30)));
}

TEST_F(TxnLogTest, TruncateAfterAcrossSegmentsAndGaps) {
  auto log = OpenLog();
  AppendAll(*log, Zxids(10, 100, 10));  // 10, 20, ..., 1000
  ASSERT_GE(log->segments().size(), 4u);
  // No-op when nothing is above the zxid.
  ASSERT_TRUE(log->TruncateAfter(1000).ok());
  EXPECT_EQ(log->last_zxid(), 1000);
  // 255 is not a zxid in the log: the last record kept is 250.
  ASSERT_TRUE(log->TruncateAfter(255).ok());
  EXPECT_EQ(log->last_zxid(), 250);
  EXPECT_EQ(ReadAll(*log), Expected(Zxids(10, 25, 10)));
  for (const TxnLogSegmentInfo& s : log->segments()) {
    EXPECT_LE(s.name_zxid, 250);
  }
  // Cut exactly at the first record of a segment.
  const int64_t first_of_last = log->segments().back().name_zxid;
  ASSERT_TRUE(log->TruncateAfter(first_of_last).ok());
  EXPECT_EQ(log->last_zxid(), first_of_last);
  EXPECT_EQ(log->segments().back().records, 1u);
  AppendAll(*log, {first_of_last + 1});
  // Truncating below the first record empties the log.
  ASSERT_TRUE(log->TruncateAfter(5).ok());
  EXPECT_EQ(log->last_zxid(), 0);
  EXPECT_THAT(SegmentFiles(dir_), SizeIs(0));
  EXPECT_THAT(ReadAll(*log), SizeIs(0));
  AppendAll(*log, {6, 7});
  log.reset();
  log = OpenLog();
  EXPECT_EQ(ReadAll(*log), Expected({6, 7}));
}

TEST_F(TxnLogTest, PurgeBeforeKeepsSegmentContainingZxid) {
  auto log = OpenLog();
  AppendAll(*log, Zxids(1, 100));
  std::vector<TxnLogSegmentInfo> segs = log->segments();
  ASSERT_GE(segs.size(), 5u);
  // An iterator opened before the purge still reads the purged files.
  std::unique_ptr<TxnLogIterator> old_it = log->NewIterator(0);

  // zxid inside segment 3: segments 0..2 go, segment 3 stays.
  const int64_t z = segs[3].name_zxid + 1;
  absl::StatusOr<int> n = log->PurgeBefore(z);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3);
  EXPECT_FALSE(fs::exists(segs[2].path));
  EXPECT_TRUE(fs::exists(segs[3].path));
  // Exactly the first zxid of a segment: that segment stays.
  n = log->PurgeBefore(segs[4].name_zxid);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 1);
  EXPECT_TRUE(fs::exists(segs[4].path));
  EXPECT_EQ(ReadAll(*log),
            Expected(Zxids(static_cast<int>(segs[4].name_zxid),
                           101 - static_cast<int>(segs[4].name_zxid))));
  // Never the last segment, even if all its records are older.
  n = log->PurgeBefore(1 << 30);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, static_cast<int>(segs.size()) - 5);
  EXPECT_THAT(SegmentFiles(dir_), ::testing::ElementsAre(segs.back().path));
  EXPECT_EQ(log->last_zxid(), 100);
  EXPECT_EQ(Collect(*old_it), Expected(Zxids(1, 100)));
  EXPECT_TRUE(old_it->status().ok());
  // Appends continue; a reopen sees the purged log as valid.
  AppendAll(*log, {101});
  const int64_t first = segs.back().name_zxid;
  log.reset();
  log = OpenLog();
  EXPECT_EQ(ReadAll(*log), Expected(Zxids(static_cast<int>(first),
                                          102 - static_cast<int>(first))));
}

// ---------------------------------------------------------------------------
// Poisoning after a failed write

TEST_F(TxnLogTest, FailedWritePoisonsTheLog) {
  TxnLogOptions o = Options();
  o.segment_max_bytes = 1 << 20;
  o.preallocate_bytes = 0;  // the file grows with each write
  auto log = OpenLog(o);
  AppendAll(*log, Zxids(1, 10));
  const uintmax_t size = fs::file_size(log->segments().back().path);

  // Make the next write fail with EFBIG.
  struct sigaction ignore {
  }, old_action{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGXFSZ, &ignore, &old_action), 0);
  struct rlimit old_limit;
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  struct rlimit lim = old_limit;
  lim.rlim_cur = size + 100;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
  absl::Status s = log->Append(11, std::string(1000, 'z'));
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &old_limit), 0);
  ASSERT_EQ(::sigaction(SIGXFSZ, &old_action, nullptr), 0);

  EXPECT_FALSE(s.ok());
  // Poisoned: even a small append that would now succeed is refused.
  EXPECT_EQ(log->Append(12, "small"), s);
  EXPECT_EQ(log->TruncateAfter(5), s);
  EXPECT_EQ(log->last_zxid(), 10);
  log.reset();
  // Reopening recovers (the partial record is a torn tail).
  log = OpenLog(o);
  EXPECT_EQ(log->last_zxid(), 10);
  EXPECT_EQ(log->recovery_report().torn_tail.kind, LogDamage::Kind::kTornTail);
  AppendAll(*log, {11});
  EXPECT_EQ(ReadAll(*log), Expected(Zxids(1, 11)));
}

// ---------------------------------------------------------------------------
// Read-only reader

TEST_F(TxnLogTest, ReaderOnCleanLog) {
  EXPECT_EQ(TxnLogReader::Open(dir_).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(fs::exists(dir_));
  WriteSegments(Options(), 60);
  auto reader = TxnLogReader::Open(dir_);
  ASSERT_TRUE(reader.ok());
  EXPECT_TRUE((*reader)->status().ok());
  EXPECT_TRUE((*reader)->damage().ok());
  EXPECT_EQ((*reader)->last_zxid(), 60);
  EXPECT_EQ((*reader)->segments().size(), SegmentFiles(dir_).size());
  std::unique_ptr<TxnLogIterator> it = (*reader)->NewIterator(30);
  EXPECT_EQ(Collect(*it), Expected(Zxids(30, 31)));
  EXPECT_TRUE(it->status().ok());
  // Usable while the log is open for writing.
  auto log = OpenLog();
  auto reader2 = TxnLogReader::Open(dir_);
  ASSERT_TRUE(reader2.ok());
  EXPECT_TRUE((*reader2)->status().ok()) << (*reader2)->status();
}

}  // namespace
}  // namespace rockeeper::engine
