// Fuzz target: decoders of persisted and replicated records: Txn (the txn
// log payload and, later, ZAB proposals) with ValidateTxn, ZnodeRecord merge
// patches, StatsTrack text, paths and ACL ids. No crash, no UB, and every
// Txn that ValidateTxn accepts has the invariants Apply relies on.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "engine/acl.h"
#include "engine/path_utils.h"
#include "engine/quota.h"
#include "engine/state_db.h"
#include "engine/znode_merge.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace rockeeper::engine;
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  Txn txn;
  if (txn.ParseFromString(bytes) && ValidateTxn(txn).ok()) {
    if (txn.header().zxid() <= 0) std::abort();
    if (txn.has_create() && !IsValidPath(txn.create().path())) std::abort();
  }
  // Merge: base = first half, operands = the rest split in two.
  auto op = NewZnodeMergeOperator();
  const size_t half = size / 2;
  const rocksdb::Slice base(bytes.data(), half);
  std::vector<rocksdb::Slice> operands = {
      rocksdb::Slice(bytes.data() + half, (size - half) / 2),
      rocksdb::Slice(bytes.data() + half + (size - half) / 2,
                     size - half - (size - half) / 2)};
  std::string new_value;
  rocksdb::Slice existing_operand;
  rocksdb::MergeOperator::MergeOperationInput in("k", &base, operands, nullptr);
  rocksdb::MergeOperator::MergeOperationOutput out(new_value, existing_operand);
  op->FullMergeV2(in, &out);
  std::deque<rocksdb::Slice> dq(operands.begin(), operands.end());
  op->PartialMergeMulti("k", dq, &new_value, nullptr);

  if (auto s = ParseStatsTrack(bytes)) {
    if (!ParseStatsTrack(FormatStatsTrack(*s))) std::abort();
  }
  if (IsValidPath(bytes) && bytes != "/") {
    if (!IsValidPath(ParentPath(bytes))) std::abort();
    if (PathDepth(ParentPath(bytes)) + 1 != PathDepth(bytes)) std::abort();
  }
  IpMatches(bytes.substr(0, half), bytes.substr(half));
  Acl acl = MakeAcl(31, bytes.substr(0, half), bytes.substr(half));
  AclVector fixed;
  FixupAcl({acl}, {{"digest", bytes}}, &fixed);
  QuotaRootOf(bytes, kQuotaLimitsNode);
  return 0;
}
