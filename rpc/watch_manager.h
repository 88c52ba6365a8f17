// WatchManager: the watches of this server's sessions (in memory, as in
// ZooKeeper: watches are not replicated). Decides which sessions an applied
// change notifies, with ZooKeeper 3.8's rules:
//   NodeCreated         data/exists watches on the path
//   NodeDeleted         data/exists and child watches on the path
//   NodeDataChanged     data/exists watches on the path
//   NodeChildrenChanged child watches on the (parent) path
// One-shot watches are removed when they fire. Persistent watches fire for
// every event on their path; persistent-recursive watches for created,
// deleted and data-changed events on their path and every descendant (not
// for NodeChildrenChanged). A session gets at most one event per trigger.
//
// Thread safety: all methods are thread-safe.
#ifndef ROCKEEPER_RPC_WATCH_MANAGER_H_
#define ROCKEEPER_RPC_WATCH_MANAGER_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "engine/state_db.h"

namespace rockeeper::rpc {

enum class WatchKind {
  kData,                 // getData / exists on an existing node
  kExist,                // exists on a missing node
  kChild,                // getChildren
  kPersistent,           // addWatch PERSISTENT
  kPersistentRecursive,  // addWatch PERSISTENT_RECURSIVE
};

struct Notification {
  int64_t session_id;
  engine::WatchEventType type;
  std::string path;
};

class WatchManager {
 public:
  void Add(int64_t session_id, const std::string& path, WatchKind kind);
  // Removes the session's watches of `path` of the given kinds; returns how
  // many were removed.
  int Remove(int64_t session_id, const std::string& path,
             const std::vector<WatchKind>& kinds);
  void RemoveSession(int64_t session_id);
  // Whether the session has a watch of `path` of one of the kinds
  // (ZooKeeper's checkWatches).
  bool Contains(int64_t session_id, const std::string& path,
                const std::vector<WatchKind>& kinds) const;
  // The notifications `trigger` causes; one-shot watches that fired are gone.
  std::vector<Notification> Trigger(const engine::WatchTrigger& trigger);
  size_t watch_count() const;
  // For `wchs`: sessions with a watch, watched paths, watches.
  struct Summary {
    size_t sessions = 0;
    size_t paths = 0;
    size_t watches = 0;
  };
  Summary summary() const;
  // For `wchc`: each watching session's watched paths (any kind), sorted by
  // session id then path.
  std::vector<std::pair<int64_t, std::vector<std::string>>> BySession() const;
  // For `wchp`: each watched path's sessions, sorted by path then id.
  std::vector<std::pair<std::string, std::vector<int64_t>>> ByPath() const;

 private:
  using Sessions = absl::flat_hash_set<int64_t>;
  using Table = absl::flat_hash_map<std::string, Sessions>;
  Table& TableFor(WatchKind kind) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves (one-shot) or copies (persistent) the watchers of `path`.
  static void Fire(Table& table, const std::string& path, bool one_shot,
                   Sessions* out);

  mutable absl::Mutex mu_;
  Table data_ ABSL_GUARDED_BY(mu_);
  Table exist_ ABSL_GUARDED_BY(mu_);
  Table child_ ABSL_GUARDED_BY(mu_);
  Table persistent_ ABSL_GUARDED_BY(mu_);
  Table recursive_ ABSL_GUARDED_BY(mu_);
  // Paths each session watches, for RemoveSession.
  absl::flat_hash_map<int64_t, absl::flat_hash_set<std::string>> by_session_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_WATCH_MANAGER_H_
