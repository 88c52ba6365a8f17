// Snapshots (checkpoint, list, purge, restore) and recovery from the txn log,
// including a damaged log that must never be applied.
#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "engine/recovery.h"
#include "engine/snapshot.h"
#include "engine/txn_log.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"

namespace rockeeper::engine {
namespace {

using testing::Create;
using testing::EngineHarness;
using testing::TempDir;

// Writes every txn the harness produced to a txn log in `dir`.
void WriteLog(const std::vector<Txn>& txns, const std::string& dir,
              size_t segment_bytes = 64 << 20) {
  TxnLogOptions o;
  o.dir = dir;
  o.segment_max_bytes = segment_bytes;
  o.preallocate_bytes = 16 << 10;
  auto log = TxnLog::Open(o);
  ASSERT_TRUE(log.ok()) << log.status();
  for (const Txn& t : txns) {
    ASSERT_TRUE((*log)->Append(t.header().zxid(), t.SerializeAsString()).ok());
  }
}

std::unique_ptr<StateDb> OpenDb(const std::string& path,
                                bool read_only = false) {
  StateDbOptions o;
  o.path = path;
  o.read_only = read_only;
  o.block_cache_bytes = 4 << 20;
  auto db = StateDb::Open(o);
  EXPECT_TRUE(db.ok()) << db.status();
  return db.ok() ? *std::move(db) : nullptr;
}

// Checkpoint then Finish, with an apply in between (what the snapshot
// thread must prevent): Finish sees the checkpoint is not at the zxid it was
// taken for, refuses it and leaves no temp dir. Without the apply it names
// the checkpoint after its zxid.
TEST(SnapshotTest, FinishRefusesACheckpointNotAtItsZxid) {
  TempDir dir;
  EngineHarness h(dir.Sub("state"));
  SnapshotStore store(dir.Sub("snapshots"));
  ASSERT_EQ(h.Err(Create("/a", "data")), ZkError::kOk);
  auto pending = store.Checkpoint(h.db());
  ASSERT_TRUE(pending.ok()) << pending.status();
  EXPECT_EQ(pending->zxid, h.db().last_applied_zxid());
  ASSERT_TRUE(std::filesystem::exists(pending->tmp_dir));
  SnapshotStore::Pending wrong = *pending;
  wrong.zxid -= 1;  // as if an apply had run between reading it and the copy
  auto refused = store.Finish(wrong);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition)
      << refused.status();
  EXPECT_FALSE(std::filesystem::exists(pending->tmp_dir));
  EXPECT_TRUE(store.List()->empty());

  auto again = store.Checkpoint(h.db());
  ASSERT_TRUE(again.ok()) << again.status();
  auto snap = store.Finish(*again);
  ASSERT_TRUE(snap.ok()) << snap.status();
  EXPECT_EQ(snap->zxid, h.db().last_applied_zxid());
  EXPECT_FALSE(std::filesystem::exists(again->tmp_dir));
  ASSERT_EQ(store.List()->size(), 1u);
  // A second checkpoint of the same zxid finds the snapshot in place.
  auto same = store.Checkpoint(h.db());
  ASSERT_TRUE(same.ok());
  EXPECT_TRUE(same->tmp_dir.empty());
  auto found = store.Finish(*same);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->path, snap->path);
}

// An ensemble member names and purges snapshots on its snapshot thread
// while its ZAB driver lists them (to sync a follower): every List must
// succeed and see only whole snapshots, oldest first.
TEST(SnapshotTest, ListIsSafeBesideFinishAndPurge) {
  TempDir dir;
  EngineHarness h(dir.Sub("state"));
  SnapshotStore store(dir.Sub("snapshots"));
  std::atomic<bool> done{false};
  std::atomic<int> lists{0};
  std::thread lister([&] {
    // Bounded: stops when the writer is done, or after 10^6 lists.
    for (int i = 0; i < 1000000 && !done.load(); ++i) {
      absl::StatusOr<std::vector<SnapshotInfo>> all = store.List();
      ASSERT_TRUE(all.ok()) << all.status();
      for (size_t j = 0; j < all->size(); ++j) {
        // A snapshot half removed by a Purge would count fewer bytes.
        EXPECT_GT((*all)[j].size_bytes, 0u) << (*all)[j].path;
        if (j > 0) {
          EXPECT_LT((*all)[j - 1].zxid, (*all)[j].zxid);
        }
      }
      lists.fetch_add(1);
    }
  });
  for (int round = 0; round < 30; ++round) {
    ASSERT_EQ(h.Err(Create(absl::StrCat("/n", round), "data")), ZkError::kOk);
    auto pending = store.Checkpoint(h.db());
    ASSERT_TRUE(pending.ok()) << pending.status();
    ASSERT_TRUE(store.Finish(*pending).ok());
    ASSERT_TRUE(store.Purge(3).ok());
  }
  done.store(true);
  lister.join();
  EXPECT_GT(lists.load(), 0);
  auto list = store.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ(list->back().zxid, h.db().last_applied_zxid());
}

// A checkpoint never finished (the server died during it) is deleted by
// RemoveUnfinished; finished snapshots stay.
TEST(SnapshotTest, RemoveUnfinishedDeletesOnlyTempDirs) {
  TempDir dir;
  EngineHarness h(dir.Sub("state"));
  SnapshotStore store(dir.Sub("snapshots"));
  EXPECT_EQ(*store.RemoveUnfinished(), 0);  // no dir yet
  ASSERT_EQ(h.Err(Create("/a", "data")), ZkError::kOk);
  auto snap = store.Create(h.db());
  ASSERT_TRUE(snap.ok()) << snap.status();
  ASSERT_EQ(h.Err(Create("/b", "data")), ZkError::kOk);
  auto pending = store.Checkpoint(h.db());
  ASSERT_TRUE(pending.ok()) << pending.status();
  ASSERT_TRUE(std::filesystem::exists(pending->tmp_dir));
  auto removed = store.RemoveUnfinished();
  ASSERT_TRUE(removed.ok()) << removed.status();
  EXPECT_EQ(*removed, 1);
  EXPECT_FALSE(std::filesystem::exists(pending->tmp_dir));
  auto list = store.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().path, snap->path);
  EXPECT_TRUE(std::filesystem::exists(snap->path + "/CURRENT"));
}

TEST(SnapshotTest, CreateListRestorePurge) {
  TempDir dir;
  EngineHarness h(dir.Sub("state"));
  SnapshotStore store(dir.Sub("snapshots"));
  std::vector<int64_t> zxids;
  std::vector<uint64_t> digests;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 20; ++i) {
      ASSERT_EQ(h.Err(Create(absl::StrCat("/r", round, "-", i), "data")),
                ZkError::kOk);
    }
    auto snap = store.Create(h.db());
    ASSERT_TRUE(snap.ok()) << snap.status();
    EXPECT_EQ(snap->zxid, h.db().last_applied_zxid());
    EXPECT_EQ(std::filesystem::path(snap->path).filename(),
              SnapshotStore::NameForZxid(snap->zxid));
    EXPECT_GT(snap->size_bytes, 0u);
    zxids.push_back(snap->zxid);
    digests.push_back(*h.db().ComputeDigest());
  }
  auto list = store.List();
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 5u);
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ((*list)[i].zxid, zxids[i]);

  // A snapshot opens read-only and holds exactly the state at its zxid.
  {
    auto snap_db = OpenDb((*list)[1].path, /*read_only=*/true);
    ASSERT_NE(snap_db, nullptr);
    EXPECT_EQ(snap_db->last_applied_zxid(), zxids[1]);
    EXPECT_EQ(*snap_db->ComputeDigest(), digests[1]);
    EXPECT_TRUE(snap_db->GetZnode("/r1-19").ok());
    EXPECT_FALSE(snap_db->GetZnode("/r2-0").ok());
  }
  // Restore into a new state dir: writable, same state.
  const std::string restored = dir.Sub("restored");
  ASSERT_TRUE(SnapshotStore::Restore((*list)[2].path, restored).ok());
  EXPECT_FALSE(SnapshotStore::Restore((*list)[2].path, restored).ok());
  {
    auto db = OpenDb(restored);
    ASSERT_NE(db, nullptr);
    EXPECT_EQ(*db->ComputeDigest(), digests[2]);
  }
  // Purge keeps at least 3, the newest.
  auto oldest = store.Purge(1);
  ASSERT_TRUE(oldest.ok());
  EXPECT_EQ(*oldest, zxids[2]);
  list = store.List();
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ(list->front().zxid, zxids[2]);
}

TEST(SnapshotSchedulerTest, FirstThresholdIsRandomizedThenFull) {
  for (uint64_t seed : {0u, 1u, 7u, 12345u}) {
    SnapshotScheduler s(1000, seed);
    EXPECT_GE(s.threshold(), 500);
    EXPECT_LE(s.threshold(), 1000);
    const int64_t first = s.threshold();
    EXPECT_FALSE(s.OnApplied(first - 1));
    EXPECT_TRUE(s.OnApplied(1));
    EXPECT_EQ(s.threshold(), 1000);
    EXPECT_FALSE(s.OnApplied(999));
    EXPECT_TRUE(s.OnApplied(5));
  }
  EXPECT_NE(SnapshotScheduler(1000, 1).threshold(),
            SnapshotScheduler(1000, 2).threshold());
}

TEST(RecoveryTest, ReplaysTheLogTailAfterLastApplied) {
  TempDir dir;
  std::vector<Txn> txns;
  uint64_t want_digest = 0;
  {
    EngineHarness h(dir.Sub("full"));
    for (int i = 0; i < 300; ++i) {
      ASSERT_EQ(h.Err(Create(i < 50 ? absl::StrCat("/n", i)
                                    : absl::StrCat("/n", i % 50, "/x", i),
                             "v")),
                ZkError::kOk);
      if (i % 7 == 0) {
        ASSERT_EQ(h.Err(SetDataRequest{absl::StrCat("/n", i % 50), "w", -1}),
                  ZkError::kOk);
      }
    }
    txns = h.txns();
    want_digest = *h.db().ComputeDigest();
  }
  WriteLog(txns, dir.Sub("log"), /*segment_bytes=*/4096);
  TxnLogOptions o;
  o.dir = dir.Sub("log");
  auto log = TxnLog::Open(o);
  ASSERT_TRUE(log.ok());
  EXPECT_GT((*log)->segments().size(), 2u);

  // A state DB that had applied only a prefix catches up by replay.
  auto db = OpenDb(dir.Sub("partial"));
  ASSERT_TRUE(db->Apply(absl::MakeConstSpan(txns.data(), 100), nullptr).ok());
  ReplayOptions upto;
  upto.up_to_zxid = txns[199].header().zxid();
  upto.batch_size = 7;
  auto n = ReplayLog(**log, *db, upto);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 100);
  EXPECT_EQ(db->last_applied_zxid(), txns[199].header().zxid());
  n = ReplayLog(**log, *db);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, static_cast<int64_t>(txns.size()) - 200);
  EXPECT_EQ(*db->ComputeDigest(), want_digest);
  // Idempotent: nothing left to apply.
  EXPECT_EQ(*ReplayLog(**log, *db), 0);
}

TEST(RecoveryTest, CorruptRecordIsReportedAndNeverApplied) {
  TempDir dir;
  std::vector<Txn> txns;
  {
    EngineHarness h(dir.Sub("src"));
    for (int i = 0; i < 40; ++i) {
      ASSERT_EQ(h.Err(Create(absl::StrCat("/k", i), std::string(50, 'a'))),
                ZkError::kOk);
    }
    txns = h.txns();
  }
  WriteLog(txns, dir.Sub("log"));
  // Flip a byte inside the payload of a record in the middle.
  std::string seg;
  for (const auto& e : std::filesystem::directory_iterator(dir.Sub("log"))) {
    seg = e.path().string();
  }
  const std::streamoff offset = 16 + 10 * (16 + 60) + 30;
  {
    std::fstream f(seg, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(offset);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5A);
    f.seekp(offset);
    f.write(&c, 1);
  }
  TxnLogOptions o;
  o.dir = dir.Sub("log");
  auto log = TxnLog::Open(o);
  ASSERT_FALSE(log.ok());
  EXPECT_TRUE(absl::IsDataLoss(log.status())) << log.status();
  EXPECT_NE(log.status().message().find(seg), std::string::npos)
      << log.status();
  EXPECT_NE(log.status().message().find("offset"), std::string::npos)
      << log.status();
  // Recovery cannot start from a damaged log: the state DB stays untouched.
  auto db = OpenDb(dir.Sub("state"));
  EXPECT_EQ(db->last_applied_zxid(), 0);
}

}  // namespace
}  // namespace rockeeper::engine
