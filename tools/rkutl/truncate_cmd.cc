// rkutl txnlog truncate: remove the records after a zxid.
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "tools/rkutl/cli.h"
#include "tools/rkutl/dump_format.h"
#include "tools/rkutl/log_access.h"

namespace rockeeper::rkutl {
namespace {

using engine::LogDamage;
using engine::TxnLogReader;

struct TruncatePreview {
  uint64_t records = 0;  // to be removed
  int64_t first = 0;
  int64_t last = 0;
  std::vector<std::string> deleted_files;
  std::string cut_file;  // empty if no segment is cut
  uint64_t cut_offset = 0;
};

TruncatePreview Preview(const TxnLogReader& reader, int64_t after) {
  TruncatePreview p;
  for (const auto& s : reader.segments()) {
    if (s.name_zxid > after) p.deleted_files.push_back(s.path);
  }
  RecordLocator locator(reader.segments());
  std::unique_ptr<engine::TxnLogIterator> it = reader.NewIterator(0);
  for (; it->Valid(); it->Next()) {
    const RecordLocator::Position pos =
        locator.Next(it->zxid(), it->payload().size());
    if (it->zxid() <= after) continue;
    if (p.records++ == 0) {
      p.first = it->zxid();
      if (reader.segments().empty() ||
          std::find(p.deleted_files.begin(), p.deleted_files.end(), pos.file) ==
              p.deleted_files.end()) {
        p.cut_file = pos.file;
        p.cut_offset = pos.offset;
      }
    }
    p.last = it->zxid();
  }
  return p;
}

void PrintPreview(const TruncatePreview& p, int64_t after,
                  const TxnLogReader& reader, std::ostream& out) {
  out << "records after " << Hex(after) << ": " << p.records << " (zxids "
      << Hex(p.first) << " - " << Hex(p.last) << ")\n";
  if (!p.cut_file.empty()) {
    out << "  cut " << p.cut_file << " at offset " << p.cut_offset << "\n";
  }
  for (const std::string& f : p.deleted_files) out << "  delete " << f << "\n";
  if (reader.damage().kind == LogDamage::Kind::kTornTail) {
    out << "  and the " << DamageLine(reader.damage()) << "\n";
  }
}

// Asks on the terminal; refuses when stdin is not one.
absl::Status Confirm() {
  if (isatty(STDIN_FILENO) != 1) {
    return absl::FailedPreconditionError(
        "refusing to truncate without confirmation: stdin is not a terminal "
        "(rerun with --force)");
  }
  std::cerr << "Remove these records? [y/N] " << std::flush;
  std::string answer;
  std::getline(std::cin, answer);
  answer = absl::AsciiStrToLower(absl::StripAsciiWhitespace(answer));
  if (answer != "y" && answer != "yes") {
    return absl::CancelledError("aborted: nothing was changed");
  }
  return absl::OkStatus();
}

absl::Status Truncate(const std::string& dir, int64_t after,
                      std::ostream& out) {
  absl::StatusOr<std::unique_ptr<engine::TxnLog>> log = OpenLogExclusive(dir);
  if (!log.ok()) return log.status();
  if ((*log)->recovery_report().modified()) {
    out << (*log)->recovery_report().ToString() << "\n";
  }
  if (absl::Status s = (*log)->TruncateAfter(after); !s.ok()) {
    return absl::Status(s.code(),
                        absl::StrCat("truncate ", dir, ": ", s.message()));
  }
  out << "truncated: the log now ends at zxid " << Hex((*log)->last_zxid())
      << "\n";
  return absl::OkStatus();
}

}  // namespace

absl::Status RunTruncate(const Args& args, std::ostream& out) {
  absl::StatusOr<std::string> dir = args.Require("log-dir");
  if (!dir.ok()) return dir.status();
  if (!args.Has("after")) return UsageError("missing required flag --after");
  absl::StatusOr<int64_t> after = args.GetInt("after", 0);
  if (!after.ok()) return after.status();
  if (*after < 0) return UsageError("--after must not be negative");
  absl::StatusOr<std::unique_ptr<TxnLogReader>> reader = OpenLogReader(*dir);
  if (!reader.ok()) return reader.status();
  if ((*reader)->damage().kind == LogDamage::Kind::kCorruption) {
    return absl::DataLossError(absl::StrCat(
        "cannot truncate a corrupt log (the engine refuses to open it): ",
        DamageLine((*reader)->damage())));
  }
  const TruncatePreview preview = Preview(**reader, *after);
  if (preview.records == 0) {
    out << "nothing to remove: the log ends at zxid "
        << Hex((*reader)->last_zxid()) << "\n";
    return absl::OkStatus();
  }
  PrintPreview(preview, *after, **reader, out);
  out.flush();
  reader->reset();
  if (!args.Has("force")) {
    if (absl::Status s = Confirm(); !s.ok()) return s;
  }
  return Truncate(*dir, *after, out);
}

}  // namespace rockeeper::rkutl
