// Depth-first walk of a znode tree through StateDb::GetZnode/ListChildren.
#ifndef ROCKEEPER_TOOLS_RKUTL_TREE_WALK_H_
#define ROCKEEPER_TOOLS_RKUTL_TREE_WALK_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "engine/state_db.h"
#include "tools/rkutl/dump_format.h"

namespace rockeeper::rkutl {

// Visits `root` and its descendants down to `max_depth` levels below it
// (-1: all) in pre-order, children in byte order of their names, with each
// node's ACL resolved. Stops at the first error from `visit` or the DB.
// NotFound if `root` does not exist. Nodes that vanish during the walk (a
// live DB) are skipped.
absl::Status WalkTree(
    const engine::StateDb& db, absl::string_view root, int64_t max_depth,
    const std::function<absl::Status(const NodeEntry&)>& visit);

// Joins a parent path and a child name ("/" + "a" -> "/a").
std::string ChildPath(absl::string_view parent, absl::string_view name);

}  // namespace rockeeper::rkutl

#endif  // ROCKEEPER_TOOLS_RKUTL_TREE_WALK_H_
