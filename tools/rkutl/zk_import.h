// Loading an Apache ZooKeeper 3.8 data dir (newest snapshot + txn logs) into
// the in-memory model of its DataTree, and turning that into the dump form
// that BuildStateFromDump (restore_plan.h) writes into a state DB with exact
// Stats. Used by `rkutl import-zookeeper` (zk_commands.cc) and its tests.
#ifndef ROCKEEPER_TOOLS_RKUTL_ZK_IMPORT_H_
#define ROCKEEPER_TOOLS_RKUTL_ZK_IMPORT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/rkutl/json_dump.h"
#include "tools/rkutl/zk_tree.h"

namespace rockeeper::rkutl {

struct ZkImportOptions {
  std::string snap_dir;  // dataDir or dataDir/version-2
  std::string log_dir;   // dataLogDir or dataLogDir/version-2
  // Accept a record cut short at the end of the newest log file.
  bool allow_torn_tail = false;
};

struct ZkImportResult {
  std::string snapshot_file;
  int64_t snapshot_zxid = 0;
  uint64_t snapshot_bytes = 0;
  int64_t log_files = 0;
  int64_t txns = 0;  // replayed (zxid after the snapshot's)
  int64_t first_txn_zxid = 0;
  // The snapshot's ZxidDigest (zxid, digest), if it has one.
  std::optional<std::pair<int64_t, uint64_t>> expected_digest;
  int64_t digest_checks = 0;
  std::vector<std::string> warnings;  // digest mismatches, ignored files
};

// Reads the newest snapshot and replays the logs after it into `tree` (fresh).
// Any damage is an error naming the file and offset; the files are only read
// (mmap read-only).
absl::StatusOr<ZkImportResult> LoadZooKeeperState(const ZkImportOptions& opts,
                                                  zk::ZkTree* tree);

// The tree as a complete dump: nodes in pre-order (children in byte order)
// with persisted Stats, sessions with ZooKeeper's passwords (createdZxid 0
// when the createSession txn was not replayed), last zxid, epochs = zxid>>32.
// ZooKeeper's /zookeeper/config is replaced by rockeeper's built-in node.
absl::StatusOr<DumpContents> ZkTreeToDump(const zk::ZkTree& tree,
                                          std::vector<std::string>* warnings);

}  // namespace rockeeper::rkutl

#endif  // ROCKEEPER_TOOLS_RKUTL_ZK_IMPORT_H_
