// rkutl purge: delete old snapshots and the log segments only they needed.
#include <filesystem>
#include <ostream>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "engine/snapshot.h"
#include "tools/rkutl/cli.h"
#include "tools/rkutl/dump_format.h"
#include "tools/rkutl/log_access.h"
#include "tools/rkutl/state_source.h"

namespace rockeeper::rkutl {
namespace {
namespace fs = std::filesystem;

constexpr int kMinKeep = 3;

std::set<std::string> SegmentPaths(const engine::TxnLog& log) {
  std::set<std::string> paths;
  for (const auto& s : log.segments()) paths.insert(s.path);
  return paths;
}

absl::Status RunPurge(const Args& args, std::ostream& out) {
  absl::StatusOr<std::string> data_dir = args.Require("data-dir");
  if (!data_dir.ok()) return data_dir.status();
  if (!args.Has("keep")) return UsageError("missing required flag --keep");
  absl::StatusOr<int64_t> keep = args.GetInt("keep", kMinKeep);
  if (!keep.ok()) return keep.status();
  if (*keep < kMinKeep || *keep > 1'000'000) {
    return UsageError(absl::StrCat("--keep must be at least ", kMinKeep));
  }
  if (absl::Status s = CheckDirectory(*data_dir, "data dir"); !s.ok()) return s;
  const std::string log_dir =
      args.Get("log-dir").value_or((fs::path(*data_dir) / "log").string());
  // The log's exclusive lock also keeps a server from starting meanwhile.
  absl::StatusOr<std::unique_ptr<engine::TxnLog>> log =
      OpenLogExclusive(log_dir);
  if (!log.ok()) return log.status();
  if ((*log)->recovery_report().modified()) {
    out << (*log)->recovery_report().ToString() << "\n";
  }
  const engine::SnapshotStore store(
      (fs::path(*data_dir) / "snapshots").string());
  absl::StatusOr<std::vector<engine::SnapshotInfo>> before = store.List();
  if (!before.ok()) return before.status();
  absl::StatusOr<int64_t> oldest_kept = store.Purge(static_cast<int>(*keep));
  if (!oldest_kept.ok()) return oldest_kept.status();
  size_t removed_snaps = 0;
  for (const engine::SnapshotInfo& s : *before) {
    if (s.zxid < *oldest_kept) {
      out << "deleted snapshot " << s.path << "\n";
      ++removed_snaps;
    }
  }
  int removed_segments = 0;
  if (*oldest_kept > 0) {
    const std::set<std::string> segs_before = SegmentPaths(**log);
    absl::StatusOr<int> n = (*log)->PurgeBefore(*oldest_kept + 1);
    if (!n.ok()) return n.status();
    removed_segments = *n;
    const std::set<std::string> segs_after = SegmentPaths(**log);
    for (const std::string& p : segs_before) {
      if (segs_after.count(p) == 0) out << "deleted log segment " << p << "\n";
    }
  }
  out << "kept " << before->size() - removed_snaps << " snapshot(s)";
  if (*oldest_kept > 0) out << " (oldest at zxid " << Hex(*oldest_kept) << ")";
  out << "; deleted " << removed_snaps << " snapshot(s) and "
      << removed_segments << " log segment(s)\n";
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> PurgeCommands() {
  return {{"purge",
           "delete old snapshots and the log segments they needed",
           "usage: rkutl purge --data-dir D [--log-dir L] --keep N\n\n"
           "Keeps the newest N snapshots (N >= 3) in D/snapshots, deletes the\n"
           "older ones, then deletes the txn log segments whose records are\n"
           "all at or before the oldest kept snapshot. The server must be\n"
           "stopped: the log directory is locked while it runs.\n\n"
           "  --data-dir D  the server's dataDir\n"
           "  --log-dir L   the txn log directory (default D/log)\n"
           "  --keep N      snapshots to keep, at least 3\n",
           {{"data-dir", true}, {"log-dir", true}, {"keep", true}},
           RunPurge}};
}

}  // namespace rockeeper::rkutl
