#include "engine/znode_merge.h"

#include <string>

#include "rockeeper/record/v1/records.pb.h"

namespace rockeeper::engine {
namespace {

using record::v1::ZnodeRecord;

// Parses `op` and merges it into `rec` (fields present in `op` win).
bool MergePatch(const rocksdb::Slice& op, ZnodeRecord* rec) {
  ZnodeRecord patch;
  if (!patch.ParseFromArray(op.data(), static_cast<int>(op.size()))) {
    return false;
  }
  rec->MergeFrom(patch);
  return true;
}

class ZnodeMergeOperator : public rocksdb::MergeOperator {
 public:
  bool FullMergeV2(const MergeOperationInput& in,
                   MergeOperationOutput* out) const override {
    if (in.existing_value == nullptr) return false;
    ZnodeRecord rec;
    if (!rec.ParseFromArray(in.existing_value->data(),
                            static_cast<int>(in.existing_value->size()))) {
      return false;
    }
    for (const rocksdb::Slice& op : in.operand_list) {
      if (!MergePatch(op, &rec)) return false;
    }
    return rec.SerializeToString(&out->new_value);
  }

  bool PartialMergeMulti(const rocksdb::Slice& /*key*/,
                         const std::deque<rocksdb::Slice>& operands,
                         std::string* new_value,
                         rocksdb::Logger* /*logger*/) const override {
    ZnodeRecord patch;
    for (const rocksdb::Slice& op : operands) {
      if (!MergePatch(op, &patch)) return false;
    }
    return patch.SerializeToString(new_value);
  }

  const char* Name() const override { return "rockeeper.ZnodeMerge.v1"; }
};

}  // namespace

std::shared_ptr<rocksdb::MergeOperator> NewZnodeMergeOperator() {
  return std::make_shared<ZnodeMergeOperator>();
}

}  // namespace rockeeper::engine
