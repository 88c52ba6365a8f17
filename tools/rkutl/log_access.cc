#include "tools/rkutl/log_access.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "tools/rkutl/progress.h"
#include "tools/rkutl/state_source.h"

namespace rockeeper::rkutl {
namespace {

uint64_t SegmentFileBytes(const std::string& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (absl::StartsWith(e.path().filename().string(), "log.") &&
        e.is_regular_file(ec)) {
      total += e.file_size(ec);
    }
  }
  return total;
}

}  // namespace

absl::StatusOr<std::unique_ptr<engine::TxnLogReader>> OpenLogReader(
    const std::string& dir) {
  if (absl::Status s = CheckDirectory(dir, "log dir"); !s.ok()) return s;
  Progress progress("reading log", "records", SegmentFileBytes(dir));
  const uint64_t base = ProcessBytesRead();
  progress.SetBytesSource([base] { return ProcessBytesRead() - base; });
  absl::StatusOr<std::unique_ptr<engine::TxnLogReader>> reader =
      engine::TxnLogReader::Open(dir);
  if (!reader.ok()) {
    return absl::Status(
        reader.status().code(),
        absl::StrCat("read log dir ", dir, ": ", reader.status().message()));
  }
  return reader;
}

absl::StatusOr<std::unique_ptr<engine::TxnLog>> OpenLogExclusive(
    const std::string& dir) {
  if (absl::Status s = CheckDirectory(dir, "log dir"); !s.ok()) return s;
  engine::TxnLogOptions options;
  options.dir = dir;
  absl::StatusOr<std::unique_ptr<engine::TxnLog>> log =
      engine::TxnLog::Open(options);
  if (absl::IsFailedPrecondition(log.status())) {
    return absl::FailedPreconditionError(absl::StrCat(
        "log dir ", dir,
        " is locked by another process (is the server running? stop it "
        "first): ",
        log.status().message()));
  }
  if (!log.ok()) {
    return absl::Status(
        log.status().code(),
        absl::StrCat("open log dir ", dir, ": ", log.status().message()));
  }
  return log;
}

std::string DamageLine(const engine::LogDamage& d) {
  switch (d.kind) {
    case engine::LogDamage::Kind::kNone:
      return "no damage";
    case engine::LogDamage::Kind::kTornTail:
      return absl::StrCat("torn tail at ", d.file, " offset ", d.offset, ": ",
                          d.detail, " (", d.dropped_bytes,
                          " bytes after the last valid record; a server "
                          "truncates them when it opens the log)");
    case engine::LogDamage::Kind::kCorruption:
      return absl::StrCat("corruption at ", d.file, " offset ", d.offset, ": ",
                          d.detail);
  }
  return "";
}

RecordLocator::Position RecordLocator::Next(int64_t zxid,
                                            uint64_t payload_size) {
  while (index_ + 1 < segs_.size() && zxid >= segs_[index_ + 1].name_zxid) {
    ++index_;
    offset_ = engine::kTxnLogFileHeaderSize;
  }
  Position pos{segs_.empty() ? "" : segs_[index_].path, offset_};
  offset_ += engine::kTxnLogRecordHeaderSize + payload_size;
  return pos;
}

uint64_t RecordBytes(const std::vector<engine::TxnLogSegmentInfo>& segs) {
  uint64_t total = 0;
  for (const auto& s : segs) {
    if (s.valid_end > engine::kTxnLogFileHeaderSize) {
      total += s.valid_end - engine::kTxnLogFileHeaderSize;
    }
  }
  return total;
}

}  // namespace rockeeper::rkutl
