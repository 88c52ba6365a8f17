// Merge operator of the `znodes` column family.
//
// Values and merge operands are both serialized ZnodeRecord messages
// (proto/rockeeper/record/v1/records.proto) whose fields are all `optional`.
// An operand is a patch: the fields it carries replace the base's (protobuf
// MergeFrom). Apply uses patches to change part of a znode (a parent's child
// stats, a node's data or ACL) without reading it first.
//
// A patch applied to a missing key is a logic error (Prep only patches nodes
// that exist); the merge then fails and the read reports Corruption.
#ifndef ROCKEEPER_ENGINE_ZNODE_MERGE_H_
#define ROCKEEPER_ENGINE_ZNODE_MERGE_H_

#include <memory>

#include "rocksdb/merge_operator.h"

namespace rockeeper::engine {

std::shared_ptr<rocksdb::MergeOperator> NewZnodeMergeOperator();

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_ZNODE_MERGE_H_
