// The disk side of the ZAB core (replication/zab/node.h) on a real server:
// the epoch files and the leader's read access to its own txn log and
// snapshots.
//
// Epoch files (as ZooKeeper's, in the snapshot directory): `acceptedEpoch`
// and `currentEpoch`, each the epoch in ASCII decimal with no newline,
// replaced atomically (write `<name>.tmp`, fsync, rename, fsync the
// directory), so a crash leaves the old or the new value, never a torn one.
#ifndef ROCKEEPER_REPLICATION_ZAB_DURABLE_H_
#define ROCKEEPER_REPLICATION_ZAB_DURABLE_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/snapshot.h"
#include "engine/txn_log.h"
#include "replication/zab/node.h"

namespace rockeeper::zab {

inline constexpr char kAcceptedEpochFile[] = "acceptedEpoch";
inline constexpr char kCurrentEpochFile[] = "currentEpoch";

// Reads `dir`/`name`: nullopt if the file does not exist; InvalidArgument
// naming the file if it is not a non-negative decimal number (at most 20
// bytes).
absl::StatusOr<std::optional<int64_t>> ReadEpochFile(const std::string& dir,
                                                     const char* name);
// Atomically replaces `dir`/`name` with `epoch` (see above); durable when OK.
absl::Status WriteEpochFile(const std::string& dir, const char* name,
                            int64_t epoch);

// LogStorage over a server's txn log and snapshot store. The log is known to
// hold every entry after zxid z if it holds a record <= z, if its first
// record directly follows z in the same epoch, if it starts at the very
// first zxid (1 << 32 | 1) and z == 0, or if z is the base set with
// set_log_base (the snapshot a SNAP install started the log after).
//
// Thread safety: as thread-safe as TxnLog (Read may run concurrently with
// appends; it sees durable records only).
class TxnLogStorage : public LogStorage {
 public:
  // Neither pointer is owned; `snapshots` may be null.
  TxnLogStorage(const engine::TxnLog* log,
                const engine::SnapshotStore* snapshots)
      : log_(log), snapshots_(snapshots) {}

  absl::StatusOr<std::vector<Entry>> Read(int64_t after_zxid,
                                          int64_t upto_zxid) override;
  std::optional<int64_t> LatestSnapshotZxid() override;

  void set_log_base(int64_t zxid) { log_base_ = zxid; }

 private:
  const engine::TxnLog* log_;
  const engine::SnapshotStore* snapshots_;
  std::optional<int64_t> log_base_;
};

// The DurableState a Node starts from: the epoch files (created from the
// log's last epoch when missing, as ZooKeeper does; FailedPrecondition when
// acceptedEpoch < currentEpoch or the log holds an epoch newer than
// currentEpoch), the log's last zxid and per-epoch last zxids, and the
// applied zxid of the state DB.
absl::StatusOr<DurableState> LoadDurableState(const std::string& epoch_dir,
                                              const engine::TxnLog& log,
                                              int64_t applied_zxid);

}  // namespace rockeeper::zab

#endif  // ROCKEEPER_REPLICATION_ZAB_DURABLE_H_
