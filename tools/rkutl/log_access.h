// Access to a txn log directory for the txnlog and purge commands: read-only
// through TxnLogReader (with the file and byte offset of every record and a
// one-line description of damage), and exclusive through TxnLog for the
// commands that modify it.
#ifndef ROCKEEPER_TOOLS_RKUTL_LOG_ACCESS_H_
#define ROCKEEPER_TOOLS_RKUTL_LOG_ACCESS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/txn_log.h"

namespace rockeeper::rkutl {

// Opens `dir` read-only and validates it (reading every segment once).
// Reports bytes read as progress on a terminal.
absl::StatusOr<std::unique_ptr<engine::TxnLogReader>> OpenLogReader(
    const std::string& dir);

// Opens the log for writing (TxnLog::Open: takes the directory's exclusive
// lock, cuts a torn tail, removes stale temporary files). A lock held by a
// running server is reported as such. `dir` must exist.
absl::StatusOr<std::unique_ptr<engine::TxnLog>> OpenLogExclusive(
    const std::string& dir);

// "torn tail at <file> offset <n>: ..." or "corruption at <file> offset
// <n>: <detail>".
std::string DamageLine(const engine::LogDamage& damage);

// Tracks which segment file and byte offset each record comes from, for
// records visited in order from the start of the log.
class RecordLocator {
 public:
  explicit RecordLocator(const std::vector<engine::TxnLogSegmentInfo>& segs)
      : segs_(segs) {}
  // Position of the record with `zxid` and `payload_size`, the next one in
  // log order; advances past it.
  struct Position {
    std::string file;
    uint64_t offset = 0;
  };
  Position Next(int64_t zxid, uint64_t payload_size);

 private:
  const std::vector<engine::TxnLogSegmentInfo>& segs_;
  size_t index_ = 0;
  uint64_t offset_ = engine::kTxnLogFileHeaderSize;
};

// Bytes of records (headers included) in the valid part of each segment.
uint64_t RecordBytes(const std::vector<engine::TxnLogSegmentInfo>& segs);

}  // namespace rockeeper::rkutl

#endif  // ROCKEEPER_TOOLS_RKUTL_LOG_ACCESS_H_
