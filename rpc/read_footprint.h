// ReadFootprint: what a read request looks at, so that the front end can
// tell whether a later write of the same session may be applied before the
// read ran.
//
// Why: ZooKeeper executes a session's requests in order. A write sent after
// a read may still be proposed and logged first (see
// replication/apply_gate.h); it must not be applied before the read ran
// only if the read could observe it. Reads and writes on unrelated paths
// (ClickHouse lists one directory while it inserts into another) then need
// no gate at all, and the apply thread never waits for them.
//
// The rules are conservative: a read observes a write if the write creates,
// deletes, sets or re-ACLs the read's node or one of its children (a node's
// stat carries its children's count and pzxid), may create a sibling of it
// (a sequential create's name is known only after Prep), or changes anything
// below a subtree read; reads under /zookeeper (quota stats change with
// writes anywhere) and session creates/closes (ephemerals anywhere) always
// count as observed. The one visible difference left is the zxid in a read's
// reply header, which may be past a later write of its session.
#ifndef ROCKEEPER_RPC_READ_FOOTPRINT_H_
#define ROCKEEPER_RPC_READ_FOOTPRINT_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "engine/requests.h"

namespace rockeeper::rpc {

enum class ReadScope : uint8_t {
  kNode,     // the node at `path`: data, ACL, stat, child list (exists,
             // getData, getChildren, getACL)
  kSubtree,  // every node at or below `path` (getAllChildrenNumber)
  kAll,      // anything: always observes (the default; multi-reads,
             // getEphemerals, anything not classified)
};

struct ReadFootprint {
  ReadScope scope = ReadScope::kAll;
  absl::string_view path;
};

// True if a read with footprint `read` could observe the effects of
// `write` (see above).
bool ReadObservesWrite(const ReadFootprint& read,
                       const engine::WriteRequest& write);

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_READ_FOOTPRINT_H_
