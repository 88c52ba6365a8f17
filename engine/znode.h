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

Znode ZnodeFromRecord(const record::v1::ZnodeRecord& r);
// Every field set (so that the record is whole, not a merge patch).
record::v1::ZnodeRecord ZnodeToRecord(const Znode& n);

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_ZNODE_H_
