// An in-memory model of ZooKeeper 3.8's DataTree for `rkutl
// import-zookeeper`: loaded from a snapshot, then rolled forward with the txn
// log exactly as ZooKeeper's own restore does (DataTree.processTxn and
// FileTxnSnapLog.processTransaction), including the rules that make
// replaying txns already contained in a fuzzy snapshot harmless:
//   * create of an existing node: no change, except that a plain create
//     (opcode 1) still raises the parent's cversion/pzxid if its
//     parentCVersion is larger (3.8.0 keeps the node's ACL);
//   * create: the parent's cversion and pzxid change only if the txn's
//     parentCVersion is larger than the current cversion;
//   * delete: the parent's pzxid becomes max(pzxid, zxid), even if the node
//     is already gone; missing nodes are ignored;
//   * setData / setACL store the txn's (absolute) version;
//   * closeSession deletes the listed paths and the session's remaining
//     ephemerals; a multi containing an error sub-txn changes nothing;
//   * quota stats nodes are recomputed on load and updated per txn.
//
// Thread safety: none; one thread.
#ifndef ROCKEEPER_TOOLS_RKUTL_ZK_TREE_H_
#define ROCKEEPER_TOOLS_RKUTL_ZK_TREE_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "tools/rkutl/zk_format.h"

namespace rockeeper::rkutl::zk {

struct TreeNode {
  StatPersisted stat;
  std::string data;
  bool data_null = false;
  int32_t acl = -1;  // index into ZkTree::acl(); -1 = OPEN_ACL_UNSAFE
  std::set<std::string> children;  // names
};

class ZkTree {
 public:
  ZkTree();

  // --- Loading a snapshot (ParseSnapshot's visitor calls) ---
  void AddSession(int64_t id, int32_t timeout_ms) {
    sessions_[id] = timeout_ms;
  }
  // `acl_index`: the snapshot's ACL cache index (-1 = open).
  absl::Status AddAclCacheEntry(int64_t index, engine::AclVector acl);
  // `path` "" or "/" for the root. Errors: the parent is missing, duplicate
  // node, unknown ACL index, invalid path.
  absl::Status AddSnapshotNode(std::string path, std::string data,
                               bool data_null, int64_t acl_index,
                               const StatPersisted& stat);
  // After the last node: the quota stats as ZooKeeper recomputes them.
  void FinishSnapshot(int64_t snapshot_zxid);

  // --- Rolling forward ---
  // Applies one logged txn. Failures ZooKeeper ignores on replay (missing
  // node, existing node) are ignored and counted in ignored_ops(); a txn
  // with an invalid path is an error (InvalidArgument naming the zxid).
  absl::Status Apply(const Txn& txn);

  int64_t last_processed_zxid() const { return last_processed_zxid_; }
  const std::map<int64_t, int32_t>& sessions() const { return sessions_; }
  // zxid of each session's createSession txn, for sessions created by a
  // replayed txn.
  const std::map<int64_t, int64_t>& session_created_zxid() const {
    return session_created_;
  }
  const absl::node_hash_map<std::string, TreeNode>& nodes() const {
    return nodes_;
  }
  const engine::AclVector& acl(int32_t index) const;
  int64_t ignored_ops() const { return ignored_ops_; }
  // The tree digest (DigestCalculator v2 summed over all nodes).
  uint64_t Digest() const;

 private:
  int32_t InternAcl(const engine::AclVector& acl);
  absl::Status ApplyBody(const TxnHeader& h, const TxnBody& b);
  // Returns true if the node already existed.
  bool CreateNode(const TxnHeader& h, const TxnBody& b, int64_t owner);
  void DeleteNode(const std::string& path, int64_t zxid);
  void KillSession(int64_t session, int64_t zxid, const TxnBody& b);
  void SetCversionPzxid(const std::string& parent, int32_t cversion,
                        int64_t zxid);
  // Quotas (DataTree.updateQuotaStat / updateQuotaForPath).
  std::string MaxQuotaPrefix(const std::string& path) const;
  void UpdateQuotaStat(const std::string& prefix, int64_t bytes_diff,
                       int64_t count_diff);
  void RecomputeQuota(const std::string& prefix);
  void Counts(const std::string& path, int64_t* count, int64_t* bytes) const;

  // node_hash_map: references stay valid while nodes are added.
  absl::node_hash_map<std::string, TreeNode> nodes_;
  absl::flat_hash_map<int64_t, std::set<std::string>> ephemerals_;
  std::map<int64_t, int32_t> sessions_;
  std::map<int64_t, int64_t> session_created_;
  std::vector<engine::AclVector> acls_;
  absl::flat_hash_map<std::string, int32_t> acl_ids_;   // fingerprint -> index
  absl::flat_hash_map<int64_t, int32_t> snapshot_acl_;  // cache index -> ours
  std::set<std::string> quota_prefixes_;
  int64_t last_processed_zxid_ = 0;
  int64_t ignored_ops_ = 0;
};

// Parent path ("/" for top-level nodes) and base name of a non-root path.
std::string ZkParent(const std::string& path);

}  // namespace rockeeper::rkutl::zk

#endif  // ROCKEEPER_TOOLS_RKUTL_ZK_TREE_H_
