// rkutl snapshot restore: a snapshot, or a JSON dump, into a new data dir.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <system_error>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "engine/snapshot.h"
#include "tools/rkutl/cli.h"
#include "tools/rkutl/json_dump.h"
#include "tools/rkutl/progress.h"
#include "tools/rkutl/restore_plan.h"
#include "tools/rkutl/state_source.h"

namespace rockeeper::rkutl {
namespace {
namespace fs = std::filesystem;

constexpr size_t kApplyBatch = 1000;
constexpr size_t kMaxListed = 50;

absl::Status IoError(const std::string& path, const std::error_code& ec,
                     absl::string_view what) {
  return absl::UnavailableError(
      absl::StrCat(what, " ", path, ": ", ec.message()));
}

// The new state dir; refuses to touch an existing one.
absl::StatusOr<std::string> NewStateDir(const std::string& data_dir) {
  const std::string target = (fs::path(data_dir) / "state").string();
  std::error_code ec;
  if (fs::exists(target, ec)) {
    return absl::AlreadyExistsError(
        absl::StrCat(target, " already exists: restore needs a new data dir"));
  }
  fs::create_directories(data_dir, ec);
  if (ec) return IoError(data_dir, ec, "create");
  return target;
}

absl::StatusOr<std::string> ReadInput(const std::string& path) {
  if (path == "-") {
    std::ostringstream buf;
    buf << std::cin.rdbuf();
    return buf.str();
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec(errno, std::generic_category());
    return absl::NotFoundError(absl::StrCat("open ", path, ": ", ec.message()));
  }
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad()) return absl::UnavailableError(absl::StrCat("read ", path));
  return text;
}

absl::Status RestoreSnapshot(const std::string& snapshot,
                             const std::string& data_dir, std::ostream& out) {
  int64_t zxid = 0;
  {
    absl::StatusOr<std::unique_ptr<engine::StateDb>> src =
        OpenStateDbReadOnly(snapshot);
    if (!src.ok()) return src.status();
    zxid = (*src)->last_applied_zxid();
  }
  absl::StatusOr<std::string> target = NewStateDir(data_dir);
  if (!target.ok()) return target.status();
  if (absl::Status s = engine::SnapshotStore::Restore(snapshot, *target);
      !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("restore ", snapshot, " into ",
                                               *target, ": ", s.message()));
  }
  absl::StatusOr<std::unique_ptr<engine::StateDb>> check =
      OpenStateDbReadOnly(*target);
  if (!check.ok()) return check.status();
  out << "restored snapshot " << snapshot << " (zxid " << Hex(zxid) << ") into "
      << *target << "\n";
  return absl::OkStatus();
}

absl::Status ApplyPlan(const RestorePlan& plan, engine::StateDb& db) {
  Progress progress("restore", "txns");
  for (size_t i = 0; i < plan.txns.size(); i += kApplyBatch) {
    const size_t n = std::min(kApplyBatch, plan.txns.size() - i);
    absl::Status s =
        db.Apply(absl::MakeConstSpan(plan.txns).subspan(i, n), nullptr);
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("apply synthetic txns: ", s.message()));
    }
    progress.Add(n, 0);
  }
  return absl::OkStatus();
}

}  // namespace

void PrintDiagnostics(absl::string_view label,
                      const std::vector<std::string>& items) {
  for (size_t i = 0; i < items.size() && i < kMaxListed; ++i) {
    std::cerr << "rkutl: " << label << ": " << items[i] << "\n";
  }
  if (items.size() > kMaxListed) {
    std::cerr << "rkutl: ... and " << items.size() - kMaxListed << " more\n";
  }
}

absl::StatusOr<std::vector<std::string>> BuildStateFromDump(
    DumpContents* dump_ptr, const std::string& tmp) {
  DumpContents& dump = *dump_ptr;
  engine::StateDbOptions options;
  options.path = tmp;
  options.block_cache_bytes = 32u << 20;
  options.write_buffer_bytes = 32u << 20;
  absl::StatusOr<std::unique_ptr<engine::StateDb>> db =
      engine::StateDb::Open(options);
  if (!db.ok()) return db.status();
  absl::StatusOr<RestorePlan> plan = PlanRestore(dump, **db);
  if (!plan.ok()) return plan.status();
  PrintDiagnostics("warning", plan->warnings);
  // Sessions without a recorded createdZxid got a free zxid from the plan.
  for (const engine::Txn& txn : plan->txns) {
    if (!txn.has_create_session()) continue;
    for (engine::SessionRecord& s : dump.sessions) {
      if (s.session_id() == txn.header().session_id() &&
          s.created_zxid() == 0) {
        s.set_created_zxid(txn.header().zxid());
      }
    }
  }
  if (absl::Status s = ApplyPlan(*plan, **db); !s.ok()) return s;
  if (dump.header.current_epoch != 0 || dump.header.accepted_epoch != 0) {
    absl::Status s =
        (*db)->SetEpochs(dump.header.current_epoch, dump.header.accepted_epoch);
    if (!s.ok()) return s;
  }
  if (absl::Status s = (*db)->Flush(); !s.ok()) return s;
  return CompareWithDump(**db, dump);
}

namespace {

absl::Status RestoreJson(const std::string& json_path,
                         const std::string& data_dir, std::ostream& out) {
  absl::StatusOr<std::string> text = ReadInput(json_path);
  if (!text.ok()) return text.status();
  absl::StatusOr<DumpContents> dump = ParseJsonDump(*text);
  if (!dump.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(json_path, ": ", dump.status().message()));
  }
  std::string().swap(*text);  // free it before building
  absl::StatusOr<std::string> target = NewStateDir(data_dir);
  if (!target.ok()) return target.status();
  const std::string tmp = *target + ".rkutl-restoring";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  absl::Cleanup remove_tmp = [&] { fs::remove_all(tmp, ec); };
  absl::StatusOr<std::vector<std::string>> diffs =
      BuildStateFromDump(&*dump, tmp);
  if (!diffs.ok()) return diffs.status();
  fs::rename(tmp, *target, ec);
  if (ec) return IoError(tmp, ec, "rename");
  out << "restored " << dump->nodes.size() << " nodes and "
      << dump->sessions.size() << " sessions (last zxid "
      << Hex(dump->header.last_applied_zxid) << ") from " << json_path
      << " into " << *target << "\n";
  if (!diffs->empty()) {
    PrintDiagnostics("difference", *diffs);
    return absl::DataLossError(
        absl::StrCat("the restored state differs from the dump in ",
                     diffs->size(), " place(s), listed above"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status RunSnapshotRestore(const Args& args, std::ostream& out) {
  const bool has_snapshot = args.Has("snapshot");
  const bool has_json = args.Has("json");
  if (has_snapshot == has_json) {
    return UsageError("give exactly one of --snapshot or --json");
  }
  absl::StatusOr<std::string> data_dir = args.Require("data-dir");
  if (!data_dir.ok()) return data_dir.status();
  absl::StatusOr<std::string> input =
      args.Require(has_snapshot ? "snapshot" : "json");
  if (!input.ok()) return input.status();
  return has_snapshot ? RestoreSnapshot(*input, *data_dir, out)
                      : RestoreJson(*input, *data_dir, out);
}

}  // namespace rockeeper::rkutl
