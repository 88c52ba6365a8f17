#include "engine/snapshot.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rocksdb/utilities/checkpoint.h"

namespace rockeeper::engine {
namespace fs = std::filesystem;
namespace {

constexpr char kPrefix[] = "snapshot.";
constexpr char kTmpPrefix[] = "snapshot.tmp.";

absl::Status FromErrorCode(const std::error_code& ec, absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", ec.message()));
}

absl::Status FsyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", dir));
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) return absl::ErrnoToStatus(saved, absl::StrCat("fsync ", dir));
  return absl::OkStatus();
}

uint64_t DirSize(const fs::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_regular_file(ec)) total += entry.file_size(ec);
  }
  return total;
}

}  // namespace

std::string SnapshotStore::NameForZxid(int64_t zxid) {
  return absl::StrFormat("snapshot.%016x", static_cast<uint64_t>(zxid));
}

absl::StatusOr<SnapshotInfo> SnapshotStore::Create(StateDb& db) const {
  absl::StatusOr<Pending> pending = Checkpoint(db);
  if (!pending.ok()) return pending.status();
  return Finish(*pending);
}

absl::StatusOr<SnapshotStore::Pending> SnapshotStore::Checkpoint(
    StateDb& db) const {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) return FromErrorCode(ec, absl::StrCat("create ", dir_));
  const int64_t zxid = db.last_applied_zxid();
  const fs::path final_dir = fs::path(dir_) / NameForZxid(zxid);
  if (fs::exists(final_dir, ec)) return Pending{zxid, ""};
  const fs::path tmp_dir = fs::path(dir_) / absl::StrCat(kTmpPrefix, zxid);
  fs::remove_all(tmp_dir, ec);

  rocksdb::Checkpoint* raw = nullptr;
  rocksdb::Status s = rocksdb::Checkpoint::Create(db.rocksdb(), &raw);
  if (!s.ok()) return absl::InternalError(s.ToString());
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  // log_size_for_flush = 0: always flush, so the checkpoint holds every
  // applied txn (the RocksDB WAL is disabled for state writes).
  s = checkpoint->CreateCheckpoint(tmp_dir.string(), /*log_size_for_flush=*/0);
  if (!s.ok()) {
    fs::remove_all(tmp_dir, ec);
    return absl::InternalError(absl::StrCat("checkpoint: ", s.ToString()));
  }
  return Pending{zxid, tmp_dir.string()};
}

absl::StatusOr<SnapshotInfo> SnapshotStore::Finish(
    const Pending& pending) const {
  const fs::path final_dir = fs::path(dir_) / NameForZxid(pending.zxid);
  std::error_code ec;
  if (pending.tmp_dir.empty()) {
    return SnapshotInfo{pending.zxid, final_dir.string(), DirSize(final_dir)};
  }
  // The checkpoint must be exactly at `zxid`: verify from its own meta.
  {
    StateDbOptions opts;
    opts.path = pending.tmp_dir;
    opts.read_only = true;
    opts.block_cache_bytes = 1 << 20;
    absl::StatusOr<std::unique_ptr<StateDb>> snap = StateDb::Open(opts);
    if (!snap.ok()) {
      fs::remove_all(pending.tmp_dir, ec);
      return snap.status();
    }
    if ((*snap)->last_applied_zxid() != pending.zxid) {
      snap->reset();
      fs::remove_all(pending.tmp_dir, ec);
      return absl::FailedPreconditionError(
          "state DB changed during snapshot (Apply ran concurrently)");
    }
  }
  absl::MutexLock lock(&mu_);
  fs::rename(pending.tmp_dir, final_dir, ec);
  if (ec) return FromErrorCode(ec, "rename snapshot");
  // The name must be durable before the caller purges the log records an
  // older snapshot needed.
  if (absl::Status s = FsyncDir(dir_); !s.ok()) return s;
  return SnapshotInfo{pending.zxid, final_dir.string(), DirSize(final_dir)};
}

void LogSnapshotTaken(const SnapshotInfo& snapshot, int64_t took_ms,
                      int64_t paused_ms) {
  std::fprintf(stderr,
               "INFO snapshot 0x%llx taken in %lld ms, applies paused %lld "
               "ms (%llu bytes)\n",
               static_cast<unsigned long long>(snapshot.zxid),
               static_cast<long long>(took_ms),
               static_cast<long long>(paused_ms),
               static_cast<unsigned long long>(snapshot.size_bytes));
}

absl::StatusOr<std::vector<SnapshotInfo>> SnapshotStore::List() const {
  absl::ReaderMutexLock lock(&mu_);
  return ListLocked();
}

absl::StatusOr<std::vector<SnapshotInfo>> SnapshotStore::ListLocked() const {
  std::vector<SnapshotInfo> out;
  std::error_code ec;
  if (!fs::exists(dir_, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(kPrefix, 0) != 0 || !entry.is_directory(ec)) continue;
    const std::string hex = name.substr(sizeof(kPrefix) - 1);
    uint64_t zxid = 0;
    if (hex.size() != 16 || !absl::SimpleHexAtoi(hex, &zxid)) continue;
    out.push_back({static_cast<int64_t>(zxid), entry.path().string(),
                   DirSize(entry.path())});
  }
  if (ec) return FromErrorCode(ec, absl::StrCat("list ", dir_));
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.zxid < b.zxid; });
  return out;
}

absl::StatusOr<int64_t> SnapshotStore::Purge(int keep) const {
  keep = std::max(keep, 3);
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::vector<SnapshotInfo>> all = ListLocked();
  if (!all.ok()) return all.status();
  if (all->empty()) return 0;
  const size_t drop = all->size() > static_cast<size_t>(keep)
                          ? all->size() - static_cast<size_t>(keep)
                          : 0;
  for (size_t i = 0; i < drop; ++i) {
    std::error_code ec;
    fs::remove_all((*all)[i].path, ec);
    if (ec) return FromErrorCode(ec, absl::StrCat("remove ", (*all)[i].path));
  }
  return (*all)[drop].zxid;
}

absl::StatusOr<int> SnapshotStore::RemoveUnfinished() const {
  absl::MutexLock lock(&mu_);
  std::error_code ec;
  if (!fs::exists(dir_, ec)) return 0;
  std::vector<fs::path> unfinished;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    if (entry.path().filename().string().rfind(kTmpPrefix, 0) == 0) {
      unfinished.push_back(entry.path());
    }
  }
  if (ec) return FromErrorCode(ec, absl::StrCat("list ", dir_));
  for (const fs::path& p : unfinished) {
    fs::remove_all(p, ec);
    if (ec) return FromErrorCode(ec, absl::StrCat("remove ", p.string()));
  }
  return static_cast<int>(unfinished.size());
}

absl::Status SnapshotStore::Restore(const std::string& snapshot_dir,
                                    const std::string& target_dir) {
  std::error_code ec;
  if (fs::exists(target_dir, ec)) {
    return absl::AlreadyExistsError(absl::StrCat(target_dir, " exists"));
  }
  const fs::path tmp = target_dir + ".restoring";
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return FromErrorCode(ec, absl::StrCat("create ", tmp.string()));
  // Full copies, not hard links: the restored DB must not share files that
  // RocksDB may later delete in the snapshot (or vice versa).
  fs::copy(snapshot_dir, tmp, fs::copy_options::recursive, ec);
  if (ec) return FromErrorCode(ec, "copy snapshot");
  fs::rename(tmp, target_dir, ec);
  if (ec) return FromErrorCode(ec, "rename restored DB");
  return absl::OkStatus();
}

SnapshotScheduler::SnapshotScheduler(int64_t snap_count, uint64_t seed)
    : snap_count_(std::max<int64_t>(snap_count, 2)) {
  const int64_t half = snap_count_ / 2;
  threshold_ = half + static_cast<int64_t>(
                          seed % static_cast<uint64_t>(snap_count_ - half + 1));
}

bool SnapshotScheduler::OnApplied(int64_t txns) {
  since_last_ += txns;
  if (since_last_ < threshold_) return false;
  since_last_ = 0;
  threshold_ = snap_count_;
  return true;
}

}  // namespace rockeeper::engine
