#include "replication/zab/durable.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rockeeper::zab {
namespace {

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::Status FsyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return Errno("open " + path);
  const int rc = ::fsync(fd);
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : Errno("fsync " + path);
}

}  // namespace

absl::StatusOr<std::optional<int64_t>> ReadEpochFile(const std::string& dir,
                                                     const char* name) {
  const std::string path = absl::StrCat(dir, "/", name);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<int64_t>();
    return Errno("open " + path);
  }
  char buf[32];
  const ssize_t n = ::read(fd, buf, sizeof(buf));
  ::close(fd);
  if (n < 0) return Errno("read " + path);
  int64_t epoch = 0;
  if (n == 0 || n > 20 ||
      !absl::SimpleAtoi(absl::string_view(buf, static_cast<size_t>(n)),
                        &epoch) ||
      epoch < 0 || buf[0] < '0' || buf[0] > '9') {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an epoch (a decimal number)"));
  }
  return std::optional<int64_t>(epoch);
}

absl::Status WriteEpochFile(const std::string& dir, const char* name,
                            int64_t epoch) {
  const std::string path = absl::StrCat(dir, "/", name);
  const std::string tmp = path + ".tmp";
  const std::string text = absl::StrCat(epoch);
  const int fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("open " + tmp);
  const bool ok = ::write(fd, text.data(), text.size()) ==
                      static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok) {
    errno = saved;
    return Errno("write " + tmp);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Errno("rename " + tmp);
  return FsyncPath(dir, O_RDONLY | O_DIRECTORY);
}

absl::StatusOr<std::vector<Entry>> TxnLogStorage::Read(int64_t after_zxid,
                                                       int64_t upto_zxid) {
  std::vector<Entry> out;
  if (after_zxid >= upto_zxid) return out;
  // Opened first: a purge (on the snapshot thread) after it does not affect
  // it, and the check below, made later, then held when it was opened.
  std::unique_ptr<engine::TxnLogIterator> it =
      log_->NewIterator(after_zxid + 1);
  // Does the log reach back to after_zxid? Look at its first record.
  std::unique_ptr<engine::TxnLogIterator> head = log_->NewIterator(0);
  if (!head->Valid()) {
    if (!head->status().ok()) return head->status();
    return absl::NotFoundError("the txn log is empty");
  }
  const int64_t first = head->zxid();
  const bool covered =
      (log_base_.has_value() && *log_base_ == after_zxid) ||
      first <= after_zxid ||
      (EpochOf(first) == EpochOf(after_zxid) && first == after_zxid + 1) ||
      (after_zxid == 0 && first == MakeZxid(1, 1));
  if (!covered) {
    return absl::NotFoundError(
        absl::StrCat("the txn log starts at 0x", absl::Hex(first),
                     " and does not reach back to 0x", absl::Hex(after_zxid)));
  }
  for (; it->Valid() && it->zxid() <= upto_zxid; it->Next()) {
    out.push_back(Entry{it->zxid(), std::string(it->payload())});
  }
  if (!it->status().ok()) return it->status();
  return out;
}

std::optional<int64_t> TxnLogStorage::LatestSnapshotZxid() {
  if (snapshots_ == nullptr) return std::nullopt;
  absl::StatusOr<std::vector<engine::SnapshotInfo>> list = snapshots_->List();
  if (!list.ok() || list->empty()) return std::nullopt;
  int64_t best = 0;
  for (const engine::SnapshotInfo& s : *list) best = std::max(best, s.zxid);
  return best;
}

absl::StatusOr<DurableState> LoadDurableState(const std::string& epoch_dir,
                                              const engine::TxnLog& log,
                                              int64_t applied_zxid) {
  DurableState ds;
  ds.applied_zxid = applied_zxid;
  std::unique_ptr<engine::TxnLogIterator> it = log.NewIterator(0);
  int64_t last = 0;
  for (; it->Valid(); it->Next()) {
    last = it->zxid();
    ds.epoch_lasts[EpochOf(last)] = last;
  }
  if (!it->status().ok()) return it->status();
  ds.last_logged_zxid = std::max(last, applied_zxid);
  const int64_t log_epoch = EpochOf(ds.last_logged_zxid);
  absl::StatusOr<std::optional<int64_t>> current =
      ReadEpochFile(epoch_dir, kCurrentEpochFile);
  if (!current.ok()) return current.status();
  absl::StatusOr<std::optional<int64_t>> accepted =
      ReadEpochFile(epoch_dir, kAcceptedEpochFile);
  if (!accepted.ok()) return accepted.status();
  ds.current_epoch = current->value_or(log_epoch);
  ds.accepted_epoch = accepted->value_or(ds.current_epoch);
  if (!current->has_value()) {
    absl::Status s =
        WriteEpochFile(epoch_dir, kCurrentEpochFile, ds.current_epoch);
    if (!s.ok()) return s;
  }
  if (!accepted->has_value()) {
    absl::Status s =
        WriteEpochFile(epoch_dir, kAcceptedEpochFile, ds.accepted_epoch);
    if (!s.ok()) return s;
  }
  if (ds.accepted_epoch < ds.current_epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat(epoch_dir, ": acceptedEpoch ", ds.accepted_epoch,
                     " is less than currentEpoch ", ds.current_epoch));
  }
  if (log_epoch > ds.current_epoch) {
    return absl::FailedPreconditionError(
        absl::StrCat(epoch_dir, ": the log holds epoch ", log_epoch,
                     ", newer than currentEpoch ", ds.current_epoch));
  }
  return ds;
}

}  // namespace rockeeper::zab
