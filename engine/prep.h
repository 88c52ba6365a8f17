// Prep: turns a write request into a fully determined Txn, or a ZooKeeper
// error, against committed state (the StateDb) plus an overlay of pending
// changes: txns already prepared (proposed) but not yet applied. The overlay
// lets many writes be in flight while each one sees its predecessors.
//
// Lifecycle of an overlay entry: Prepare() adds the changes of a successful
// request tagged with its zxid; OnApplied(zxid) drops entries whose txn the
// StateDb has applied (they are visible there now); Reset() drops all of them
// (a proposal was abandoned, e.g. on leader change).
//
// Validation order and error codes follow ZooKeeper 3.8's
// PrepRequestProcessor (see shared/reference, section 1.9).
//
// Thread safety: all methods are thread-safe (one internal mutex); Prepare is
// normally called by one thread in zxid order, OnApplied by the apply thread.
// OnApplied never waits for a Prepare: when the mutex is busy it only
// records the zxid, and the next Prepare drops the entries (an applied
// entry still equals the DB's state until then: any later change of the
// same path has an entry of its own).
#ifndef ROCKEEPER_ENGINE_PREP_H_
#define ROCKEEPER_ENGINE_PREP_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "engine/requests.h"
#include "engine/state_db.h"
#include "engine/zk_error.h"

namespace rockeeper::engine {

struct PrepOptions {
  // zookeeper.extendedTypesEnabled: allow TTL nodes. Default: false, as in
  // ZooKeeper (TTL creates then fail with UNIMPLEMENTED).
  bool extended_types_enabled = false;
  // zookeeper.skipACL: no permission checks at all. Default: false.
  bool skip_acl = false;
  // zookeeper.enforceQuota: reject creates and setData that would exceed a
  // hard quota limit with QUOTAEXCEEDED. Default: false (usage is still
  // tracked in the zookeeper_stats nodes).
  bool enforce_quota = false;
};

struct PrepOutcome {
  // kOk with `txn` set on success. On failure `txn` is empty and `err` is
  // the code; for a multi, `multi_errors` then holds one code per op (0
  // before the failing op, its code, -2 RUNTIMEINCONSISTENCY after it).
  ZkError err = ZkError::kOk;
  std::optional<Txn> txn;
  std::vector<ZkError> multi_errors;
};

class Prep {
 public:
  Prep(const StateDb* db, PrepOptions options);

  // Prepares `request` for zxid `zxid` stamped with `time_ms`. A failed
  // request consumes nothing: the caller may reuse the zxid. An
  // absl::Status error means the state DB could not be read.
  absl::StatusOr<PrepOutcome> Prepare(const RequestContext& ctx,
                                      const WriteRequest& request, int64_t zxid,
                                      int64_t time_ms);

  void OnApplied(int64_t zxid);
  void Reset();
  // Overlay entries of txns not applied yet.
  size_t pending_count() const;

 private:
  struct NodeView {
    bool exists = false;
    Znode node;     // node.acl_id is meaningless when `acl` came from
    AclVector acl;  // a pending create or setACL
    // node.acl_id is the node's id in the acls CF (the view came from the
    // state DB, possibly changed since by txns that keep the ACL).
    bool acl_id_known = false;
  };
  class Scratch;

  // Drops the entries of txns up to applied_zxid_.
  void DropApplied() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::StatusOr<NodeView> Lookup(absl::string_view path) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<bool> SessionExists(int64_t session_id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<std::string>> EphemeralsOf(
      int64_t session_id) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Quota roots: paths that have a zookeeper_limits node (committed or
  // pending). Loaded from the DB on first use and after Reset().
  absl::Status LoadQuotaRoots() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The deepest quota root at or above `path`; empty if none.
  std::string MaxQuotaRoot(absl::string_view path) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Usage of the subtree at `root`: committed state plus pending changes.
  absl::StatusOr<StateDb::Usage> PendingAwareUsage(absl::string_view root) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Charges a count/bytes change at `path` to its deepest quota root's
  // zookeeper_stats node (in `scratch`); QUOTAEXCEEDED if enforced hard
  // limits would be broken.
  absl::StatusOr<ZkError> ChargeQuota(
      const std::string& path, int64_t count_delta, int64_t bytes_delta,
      Scratch& scratch, absl::flat_hash_set<std::string>& touched_stats)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const StateDb* db_;
  const PrepOptions options_;
  mutable absl::Mutex mu_;
  // The newest zxid OnApplied reported.
  std::atomic<int64_t> applied_zxid_{0};
  absl::flat_hash_map<std::string, std::pair<int64_t, NodeView>> pending_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int64_t, std::pair<int64_t, bool>> pending_sessions_
      ABSL_GUARDED_BY(mu_);
  // (zxid, path or "" + session) in zxid order, to drop applied entries.
  std::deque<std::pair<int64_t, std::string>> pending_order_
      ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<int64_t, int64_t>> pending_session_order_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<std::string> quota_roots_ ABSL_GUARDED_BY(mu_);
  bool quota_roots_loaded_ ABSL_GUARDED_BY(mu_) = false;
};

// The Stat of a node right after `create` (for create2 responses).
Stat StatOfCreated(const record::v1::CreateTxn& create,
                   const record::v1::TxnHeader& header);

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_PREP_H_
