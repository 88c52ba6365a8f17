// Rebuilding a state DB from a JSON dump through the public StateDb::Apply:
// a sequence of synthetic txns that reproduces every node's exact Stat.
//
// Apply derives a node's fields from txns: a create sets czxid = mzxid =
// pzxid = zxid and ctime = mtime = the txn time, data and ACL; a setData sets
// data, version, mzxid and mtime; a setACL the ACL and aversion; a child's
// create or delete sets the parent's pzxid (and cversion and numChildren,
// which the txn carries as absolute values); quota stat updates set data
// alone. So for each dumped node the plan emits, at the dumped zxids:
//   * a create at cZxid (time ctime) with the final data and ACL,
//   * a setData at mZxid (time mtime) if mZxid/version/mtime differ from
//     what the create leaves,
//   * at pZxid, if the children's creates do not already leave the final
//     pZxid/cversion/numChildren: the create and delete of a temporary child
//     (which set all three),
//   * a setACL at an unused zxid after cZxid if aclVersion is not 0
//     (setACL records no zxid in the node),
// ops sharing a zxid going into one multi txn (creates parents first); a
// createSession at each session's createdZxid; and an empty (error) txn at
// lastAppliedZxid so that the DB ends exactly there.
//
// For any dump of a real tree this is exact. Dumps that no history could
// produce (edited by hand) may not be reproducible; the plan then says what
// will differ, and CompareWithDump lists what did.
#ifndef ROCKEEPER_TOOLS_RKUTL_RESTORE_PLAN_H_
#define ROCKEEPER_TOOLS_RKUTL_RESTORE_PLAN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/state_db.h"
#include "tools/rkutl/json_dump.h"

namespace rockeeper::rkutl {

struct RestorePlan {
  std::vector<engine::Txn> txns;      // strictly increasing zxids
  std::vector<std::string> warnings;  // what will not be reproduced exactly
};

// Plans the txns that rebuild `dump` on a fresh state DB. Errors for dumps
// that do not describe a tree (duplicate or invalid paths, a node without
// its parent, a non-built-in node with cZxid 0, a partial dump).
// `target` is the fresh state DB the plan will be applied to (its built-in
// nodes are the starting point).
absl::StatusOr<RestorePlan> PlanRestore(const DumpContents& dump,
                                        const engine::StateDb& target);

// Differences between `db` and `dump` (nodes, stats, data, ACLs, sessions,
// last applied zxid), one human-readable line each; empty if identical.
absl::StatusOr<std::vector<std::string>> CompareWithDump(
    const engine::StateDb& db, const DumpContents& dump);

// Builds a new state DB in `dir` (which must not exist) from `dump`: plans,
// applies the txns, sets the epochs, flushes, and returns the differences
// between the result and the dump (empty: exact). Warnings of the plan are
// printed to stderr. Sessions whose createdZxid is 0 (unknown) are created
// at a free zxid, which is then stored into `dump`.
// (Implemented in snapshot_restore.cc.)
absl::StatusOr<std::vector<std::string>> BuildStateFromDump(
    DumpContents* dump, const std::string& dir);

// Prints up to 50 lines "rkutl: <label>: <item>" to stderr.
void PrintDiagnostics(absl::string_view label,
                      const std::vector<std::string>& items);

}  // namespace rockeeper::rkutl

#endif  // ROCKEEPER_TOOLS_RKUTL_RESTORE_PLAN_H_
