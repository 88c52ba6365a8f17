// Snapshots of the state DB: RocksDB checkpoints (hard links to the live SST
// files plus a copy of the small metadata files) at an exact zxid.
//
// Layout: <dataDir>/snapshots/snapshot.<zxid as 16 lowercase hex digits>/ is
// a complete RocksDB directory that StateDb can open (read-only for tools, or
// read-write after Restore copies it into a new data dir). A checkpoint is
// first built in snapshot.tmp.<n> and renamed into place only when complete,
// so a crash never leaves a half snapshot under a final name.
//
// Taking one in two steps keeps the pause of the applies short: a
// StateDb::Flush beforehand (concurrent with applies) leaves little for the
// checkpoint's own flush, and the check of the result runs after it.
//
// Thread safety: Create and Checkpoint must not run concurrently with
// StateDb::Apply (callers take them between two batches). Finish, List and
// Purge may, and are thread-safe: an ensemble member checks and names its
// checkpoint on one thread while its ZAB driver lists the snapshots to sync
// a follower.
#ifndef ROCKEEPER_ENGINE_SNAPSHOT_H_
#define ROCKEEPER_ENGINE_SNAPSHOT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/state_db.h"

namespace rockeeper::engine {

struct SnapshotInfo {
  int64_t zxid = 0;
  std::string path;         // the snapshot directory
  uint64_t size_bytes = 0;  // sum of its files (hard links counted in full)
};

class SnapshotStore {
 public:
  // `dir` is <dataDir>/snapshots; created on first Create.
  explicit SnapshotStore(std::string dir) : dir_(std::move(dir)) {}

  // Checkpoints `db` at its last_applied_zxid(). If a snapshot of that
  // zxid already exists it is returned unchanged. = Checkpoint + Finish.
  absl::StatusOr<SnapshotInfo> Create(StateDb& db) const;

  // A checkpoint built but not yet checked and named.
  struct Pending {
    int64_t zxid = 0;
    std::string tmp_dir;  // empty: the snapshot of zxid existed already
  };
  // The part of Create that must not overlap an Apply: the RocksDB
  // checkpoint into a temp dir (it flushes the memtables first).
  absl::StatusOr<Pending> Checkpoint(StateDb& db) const;
  // The rest (may overlap applies): checks that the checkpoint is exactly
  // at its zxid, then renames it into place. On error the temp dir is gone.
  absl::StatusOr<SnapshotInfo> Finish(const Pending& pending) const;
  // All complete snapshots, oldest first. Leftover temp dirs are ignored.
  absl::StatusOr<std::vector<SnapshotInfo>> List() const;
  // Deletes all but the newest `keep` snapshots (keep is raised to at least
  // 3, as ZooKeeper's autopurge.snapRetainCount). Returns the zxid of the
  // oldest retained snapshot (0 if none): log records at or below it are no
  // longer needed (TxnLog::PurgeBefore(zxid + 1)).
  absl::StatusOr<int64_t> Purge(int keep) const;

  // Deletes the temp dirs of checkpoints never finished (a crash or kill
  // during a snapshot leaves one, holding hard links to SST files the state
  // DB has since deleted). Call before any Checkpoint, e.g. when the server
  // starts. Returns how many were deleted.
  absl::StatusOr<int> RemoveUnfinished() const;

  // Copies the snapshot at `snapshot_dir` into a new state DB directory
  // `target_dir` (which must not exist) that StateDb::Open can use.
  static absl::Status Restore(const std::string& snapshot_dir,
                              const std::string& target_dir);

  static std::string NameForZxid(int64_t zxid);

 private:
  absl::StatusOr<std::vector<SnapshotInfo>> ListLocked() const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  std::string dir_;
  // Serializes the changes of the directory (Finish's rename, Purge) with
  // List: a List beside a Purge could size a snapshot being removed.
  mutable absl::Mutex mu_;
};

// The log line of a snapshot taken: "INFO snapshot 0x<zxid> taken in <took>
// ms, applies paused <paused> ms (<bytes> bytes)", on stderr.
void LogSnapshotTaken(const SnapshotInfo& snapshot, int64_t took_ms,
                      int64_t paused_ms);

// Decides when the apply thread takes a snapshot: every `snap_count` txns
// (zoo.cfg snapCount, default 100000), with the first threshold drawn from
// [snap_count/2, snap_count] as ZooKeeper does, so that servers of an
// ensemble do not all snapshot at the same moment. Not thread-safe.
class SnapshotScheduler {
 public:
  SnapshotScheduler(int64_t snap_count, uint64_t seed);
  // Counts `txns` applied; true when a snapshot is due (the counter then
  // restarts with a full snap_count).
  bool OnApplied(int64_t txns);
  int64_t threshold() const { return threshold_; }

 private:
  int64_t snap_count_;
  int64_t threshold_;
  int64_t since_last_ = 0;
};

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_SNAPSHOT_H_
