#include "tools/rkutl/tree_walk.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace rockeeper::rkutl {

std::string ChildPath(absl::string_view parent, absl::string_view name) {
  if (parent == "/") return absl::StrCat("/", name);
  return absl::StrCat(parent, "/", name);
}

absl::Status WalkTree(
    const engine::StateDb& db, absl::string_view root, int64_t max_depth,
    const std::function<absl::Status(const NodeEntry&)>& visit) {
  absl::StatusOr<engine::Znode> top = db.GetZnode(root);
  if (!top.ok()) {
    if (absl::IsNotFound(top.status())) {
      return absl::NotFoundError(
          absl::StrCat("node ", root, " does not exist"));
    }
    return top.status();
  }
  // (path, depth below root), popped from the back: children are pushed in
  // reverse so that they come out in byte order.
  std::vector<std::pair<std::string, int64_t>> stack;
  stack.emplace_back(std::string(root), 0);
  std::vector<std::string> names;
  while (!stack.empty()) {
    auto [path, depth] = std::move(stack.back());
    stack.pop_back();
    absl::StatusOr<engine::Znode> node = db.GetZnode(path);
    if (absl::IsNotFound(node.status())) continue;  // deleted meanwhile
    if (!node.ok()) return node.status();
    absl::StatusOr<engine::AclVector> acl = db.GetAcl(node->acl_id);
    if (!acl.ok()) {
      return absl::DataLossError(
          absl::StrCat(path, ": ", acl.status().message()));
    }
    NodeEntry entry{path, *std::move(node), *std::move(acl)};
    if (absl::Status s = visit(entry); !s.ok()) return s;
    if (max_depth >= 0 && depth >= max_depth) continue;
    names.clear();
    if (absl::Status s = db.ListChildren(path, &names); !s.ok()) return s;
    for (auto it = names.rbegin(); it != names.rend(); ++it) {
      stack.emplace_back(ChildPath(path, *it), depth + 1);
    }
  }
  return absl::OkStatus();
}

}  // namespace rockeeper::rkutl
