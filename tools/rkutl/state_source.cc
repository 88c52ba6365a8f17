#include "tools/rkutl/state_source.h"

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "engine/snapshot.h"
#include "engine/state_dir.h"
#include "tools/rkutl/cli.h"

namespace rockeeper::rkutl {
namespace fs = std::filesystem;

std::vector<FlagSpec> StateSourceFlags() {
  return {{"snapshot", true}, {"data-dir", true}, {"live", false}};
}

absl::Status CheckDirectory(const std::string& dir, absl::string_view what) {
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  if (ec || !fs::exists(st)) {
    return absl::NotFoundError(absl::StrCat(
        what, " ", dir, ": ", ec ? ec.message() : "No such file or directory"));
  }
  if (!fs::is_directory(st)) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", dir, ": not a directory"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<engine::StateDb>> OpenStateDbReadOnly(
    const std::string& dir) {
  if (absl::Status s = CheckDirectory(dir, "state directory"); !s.ok()) {
    return s;
  }
  std::error_code ec;
  if (!fs::exists(fs::path(dir) / "CURRENT", ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir, ": not a state DB or snapshot (no RocksDB CURRENT file)"));
  }
  engine::StateDbOptions options;
  options.path = dir;
  options.read_only = true;
  options.block_cache_bytes = 64u << 20;
  absl::StatusOr<std::unique_ptr<engine::StateDb>> db =
      engine::StateDb::Open(options);
  if (!db.ok()) {
    return absl::Status(
        db.status().code(),
        absl::StrCat("open ", dir, " read-only: ", db.status().message()));
  }
  return db;
}

absl::StatusOr<StateSource> OpenStateSource(const Args& args) {
  const bool has_snapshot = args.Has("snapshot");
  const bool has_data_dir = args.Has("data-dir");
  if (has_snapshot == has_data_dir) {
    return UsageError("give exactly one of --snapshot or --data-dir");
  }
  if (args.Has("live") && !has_data_dir) {
    return UsageError("--live needs --data-dir");
  }
  StateSource source;
  if (has_snapshot) {
    absl::StatusOr<std::string> dir = args.Require("snapshot");
    if (!dir.ok()) return dir.status();
    source.dir = *dir;
  } else {
    absl::StatusOr<std::string> data_dir = args.Require("data-dir");
    if (!data_dir.ok()) return data_dir.status();
    if (absl::Status s = CheckDirectory(*data_dir, "data dir"); !s.ok()) {
      return s;
    }
    if (args.Has("live")) {
      absl::StatusOr<std::string> live = engine::LiveStateDir(*data_dir);
      if (!live.ok()) return live.status();
      source.dir = *live;
    } else {
      const std::string snap_dir = (fs::path(*data_dir) / "snapshots").string();
      absl::StatusOr<std::vector<engine::SnapshotInfo>> snaps =
          engine::SnapshotStore(snap_dir).List();
      if (!snaps.ok()) return snaps.status();
      if (snaps->empty()) {
        return absl::NotFoundError(absl::StrCat("no snapshot in ", snap_dir,
                                                " (use --live to read ",
                                                *data_dir, "/state)"));
      }
      source.dir = snaps->back().path;
    }
  }
  absl::StatusOr<std::unique_ptr<engine::StateDb>> db =
      OpenStateDbReadOnly(source.dir);
  if (!db.ok()) return db.status();
  source.db = *std::move(db);
  return source;
}

}  // namespace rockeeper::rkutl
