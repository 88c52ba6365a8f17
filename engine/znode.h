// Znode: a decoded znode as the state DB stores it, and its conversion to
// and from the stored record (record::v1::ZnodeRecord, the value of a key in
// the `znodes` column family).
#ifndef ROCKEEPER_ENGINE_ZNODE_H_
#define ROCKEEPER_ENGINE_ZNODE_H_

#include <cstdint>
#include <string>

#include "rockeeper/record/v1/records.pb.h"

namespace rockeeper::engine {

// ACL id of OPEN_ACL_UNSAFE, used by built-in nodes.
inline constexpr int64_t kOpenAclId = -1;

// A decoded znode as persisted (cversion is the persisted count).
struct Znode {
  int64_t czxid = 0;
  int64_t mzxid = 0;
  int64_t pzxid = 0;
  int64_t ctime_ms = 0;
  int64_t mtime_ms = 0;
  int32_t version = 0;
  int32_t cversion = 0;
  int32_t aversion = 0;
  int64_t ephemeral_owner = 0;  // raw
  int32_t num_children = 0;
  int64_t acl_id = kOpenAclId;
  std::string data;
  bool data_null = false;  // ZooKeeper's null data; `data` is empty
};

// The merge operator's rule (engine/znode_merge.cc) for every field but
// the data: the fields present in `patch` win. `Node` has Znode's field
// names (a Znode, or an entry of the znode cache).
template <typename Node>
void MergePatchStat(const record::v1::ZnodeRecord& p, Node* n) {
  if (p.has_czxid()) n->czxid = p.czxid();
  if (p.has_mzxid()) n->mzxid = p.mzxid();
  if (p.has_pzxid()) n->pzxid = p.pzxid();
  if (p.has_ctime_ms()) n->ctime_ms = p.ctime_ms();
  if (p.has_mtime_ms()) n->mtime_ms = p.mtime_ms();
  if (p.has_version()) n->version = p.version();
  if (p.has_cversion()) n->cversion = p.cversion();
  if (p.has_aversion()) n->aversion = p.aversion();
  if (p.has_ephemeral_owner()) n->ephemeral_owner = p.ephemeral_owner();
  if (p.has_num_children()) n->num_children = p.num_children();
  if (p.has_acl_id()) n->acl_id = p.acl_id();
  if (p.has_data_null()) n->data_null = p.data_null();
}
// The whole rule, data included.
inline void MergePatch(const record::v1::ZnodeRecord& p, Znode* n) {
  MergePatchStat(p, n);
  if (p.has_data()) n->data = p.data();
}

Znode ZnodeFromRecord(const record::v1::ZnodeRecord& r);
// Every field set (so that the record is whole, not a merge patch).
record::v1::ZnodeRecord ZnodeToRecord(const Znode& n);

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_ZNODE_H_
