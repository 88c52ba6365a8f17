#include "rpc/read_footprint.h"

#include <type_traits>
#include <variant>

#include "absl/strings/match.h"
#include "engine/path_utils.h"

namespace rockeeper::rpc {
namespace {

// Calls fn(path, sequential) for each path a write changes; `sequential`:
// a sequential create, whose final name is any child of its parent.
template <typename Fn>
void ForEachWrittenPath(const engine::WriteRequest& write, Fn fn) {
  auto one = [&fn](const auto& op) {
    using T = std::decay_t<decltype(op)>;
    if constexpr (std::is_same_v<T, engine::CreateRequest>) {
      fn(absl::string_view(op.path),
         op.flags == engine::kPersistentSequential ||
             op.flags == engine::kEphemeralSequential ||
             op.flags == engine::kPersistentSequentialWithTtl);
    } else if constexpr (std::is_same_v<T, engine::DeleteRequest> ||
                         std::is_same_v<T, engine::DeleteContainerRequest> ||
                         std::is_same_v<T, engine::SetDataRequest> ||
                         std::is_same_v<T, engine::SetAclRequest>) {
      fn(absl::string_view(op.path), false);
    }
  };
  if (const auto* m = std::get_if<engine::MultiRequest>(&write)) {
    for (const auto& op : m->ops) std::visit(one, op);
  } else {
    std::visit(one, write);
  }
}

bool IsAtOrBelow(absl::string_view path, absl::string_view root) {
  if (root == "/") return true;
  return absl::StartsWith(path, root) &&
         (path.size() == root.size() || path[root.size()] == '/');
}

}  // namespace

bool ReadObservesWrite(const ReadFootprint& read,
                       const engine::WriteRequest& write) {
  if (read.scope == ReadScope::kAll || IsAtOrBelow(read.path, "/zookeeper") ||
      std::holds_alternative<engine::CloseSessionRequest>(write) ||
      std::holds_alternative<engine::CreateSessionRequest>(write)) {
    return true;
  }
  bool observes = false;
  ForEachWrittenPath(write, [&](absl::string_view path, bool sequential) {
    if (observes) return;
    if (read.scope == ReadScope::kSubtree) {
      observes = IsAtOrBelow(path, read.path);
      return;
    }
    const absl::string_view parent = engine::ParentPath(path);
    observes = path == read.path || parent == read.path ||
               (sequential && engine::ParentPath(read.path) == parent);
  });
  return observes;
}

}  // namespace rockeeper::rpc
