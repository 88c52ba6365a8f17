// rkutl txnlog dump | verify | stat | truncate.
#include <iostream>
#include <limits>
#include <map>
#include <ostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/state_db.h"
#include "tools/rkutl/cli.h"
#include "tools/rkutl/dump_format.h"
#include "tools/rkutl/log_access.h"
#include "tools/rkutl/progress.h"
#include "tools/rkutl/txn_format.h"

namespace rockeeper::rkutl {
namespace {

using engine::LogDamage;
using engine::TxnLogReader;

absl::StatusOr<std::unique_ptr<TxnLogReader>> ReaderFromArgs(const Args& args) {
  absl::StatusOr<std::string> dir = args.Require("log-dir");
  if (!dir.ok()) return dir.status();
  return OpenLogReader(*dir);
}

std::string ZxidRange(int64_t first, int64_t last) {
  if (last == 0) return "none";
  return absl::StrCat(Hex(first), " - ", Hex(last));
}

int64_t FirstZxid(const TxnLogReader& reader) {
  for (const auto& s : reader.segments()) {
    if (s.records > 0) return s.name_zxid;
  }
  return 0;
}

// --- dump ------------------------------------------------------------------

absl::Status RunDump(const Args& args, std::ostream& out) {
  absl::StatusOr<int64_t> from = args.GetInt("from", 0);
  if (!from.ok()) return from.status();
  absl::StatusOr<int64_t> to =
      args.GetInt("to", std::numeric_limits<int64_t>::max());
  if (!to.ok()) return to.status();
  if (*to < *from) return UsageError("--to is before --from");
  absl::StatusOr<std::unique_ptr<TxnLogReader>> reader = ReaderFromArgs(args);
  if (!reader.ok()) return reader.status();
  const bool json = args.Has("json");
  Progress progress("dump", "records");
  std::unique_ptr<engine::TxnLogIterator> it = (*reader)->NewIterator(*from);
  bool reached_end = true;
  for (; it->Valid(); it->Next()) {
    if (it->zxid() > *to) {
      reached_end = false;
      break;
    }
    out << (json ? FormatTxnJson(it->zxid(), it->payload())
                 : FormatTxnText(it->zxid(), it->payload()))
        << "\n";
    progress.Add(1, engine::kTxnLogRecordHeaderSize + it->payload().size());
  }
  out.flush();
  if (!out.good()) return absl::UnavailableError("write to stdout failed");
  if (!reached_end) return absl::OkStatus();
  const LogDamage& damage = (*reader)->damage();
  if (damage.kind == LogDamage::Kind::kTornTail) {
    std::cerr << "rkutl: warning: " << DamageLine(damage) << "\n";
    return absl::OkStatus();
  }
  if (!it->status().ok() && damage.ok()) return it->status();
  if (!damage.ok()) return absl::DataLossError(DamageLine(damage));
  return absl::OkStatus();
}

// --- verify ----------------------------------------------------------------

// Checks that every valid record holds a well-formed Txn with its own zxid.
// Returns the first problem as a "corruption at ..." line, or "".
std::string CheckPayloads(const TxnLogReader& reader, uint64_t* records) {
  Progress progress("verify", "records", RecordBytes(reader.segments()));
  RecordLocator locator(reader.segments());
  std::unique_ptr<engine::TxnLogIterator> it = reader.NewIterator(0);
  for (; it->Valid(); it->Next()) {
    const RecordLocator::Position pos =
        locator.Next(it->zxid(), it->payload().size());
    engine::Txn txn;
    std::string problem;
    if (!txn.ParseFromArray(it->payload().data(),
                            static_cast<int>(it->payload().size()))) {
      problem = "payload is not a Txn";
    } else if (txn.header().zxid() != it->zxid()) {
      problem = absl::StrCat("txn header zxid ", Hex(txn.header().zxid()),
                             " differs from the record's");
    } else if (absl::Status s = engine::ValidateTxn(txn); !s.ok()) {
      problem = std::string(s.message());
    }
    if (!problem.empty()) {
      return absl::StrCat("corruption at ", pos.file, " offset ", pos.offset,
                          ": record zxid ", Hex(it->zxid()), ": ", problem);
    }
    ++*records;
    progress.Add(1, engine::kTxnLogRecordHeaderSize + it->payload().size());
  }
  if (!it->status().ok() && reader.damage().ok()) {
    return absl::StrCat("read error: ", it->status().message());
  }
  return "";
}

absl::Status RunVerify(const Args& args, std::ostream& out) {
  absl::StatusOr<std::unique_ptr<TxnLogReader>> reader = ReaderFromArgs(args);
  if (!reader.ok()) return reader.status();
  uint64_t records = 0;
  const std::string payload_problem = CheckPayloads(**reader, &records);
  const LogDamage& damage = (*reader)->damage();
  if (!payload_problem.empty()) out << payload_problem << "\n";
  if (!damage.ok()) out << DamageLine(damage) << "\n";
  if (!payload_problem.empty() || !damage.ok()) {
    out << records << " valid records before the damage\n";
    return ReportedError("txn log damaged");
  }
  out << "OK: " << (*reader)->segments().size() << " segments, " << records
      << " records, zxids "
      << ZxidRange(FirstZxid(**reader), (*reader)->last_zxid()) << ", "
      << HumanBytes(RecordBytes((*reader)->segments())) << "\n";
  return absl::OkStatus();
}

// --- stat ------------------------------------------------------------------

struct LogCounts {
  uint64_t records = 0;
  std::map<std::string, uint64_t> by_type;
};

LogCounts CountRecords(const TxnLogReader& reader) {
  LogCounts counts;
  Progress progress("stat", "records", RecordBytes(reader.segments()));
  std::unique_ptr<engine::TxnLogIterator> it = reader.NewIterator(0);
  for (; it->Valid(); it->Next()) {
    engine::Txn txn;
    const bool ok = txn.ParseFromArray(it->payload().data(),
                                       static_cast<int>(it->payload().size()));
    ++counts.by_type[ok ? TxnTypeName(txn.header().type()) : "(not a Txn)"];
    ++counts.records;
    progress.Add(1, engine::kTxnLogRecordHeaderSize + it->payload().size());
  }
  return counts;
}

void PrintStatText(const std::string& dir, const TxnLogReader& reader,
                   const LogCounts& counts, std::ostream& out) {
  uint64_t file_bytes = 0;
  out << "log dir: " << dir << "\n";
  out << "segments: " << reader.segments().size() << "\n";
  for (const auto& s : reader.segments()) {
    file_bytes += s.file_size;
    out << absl::StrFormat(
        "  %s  records %d  zxids %s  bytes %d (file %d)\n", s.path, s.records,
        ZxidRange(s.name_zxid, s.last_zxid), s.valid_end, s.file_size);
  }
  const uint64_t bytes = RecordBytes(reader.segments());
  out << "records: " << counts.records << "\n";
  out << "zxids: " << ZxidRange(FirstZxid(reader), reader.last_zxid()) << "\n";
  out << "record bytes: " << bytes << " (" << HumanBytes(bytes)
      << "), files: " << file_bytes << " (" << HumanBytes(file_bytes) << ")\n";
  out << "records by type:\n";
  for (const auto& [type, n] : counts.by_type) {
    out << absl::StrFormat("  %-16s %d\n", type, n);
  }
  if (!reader.damage().ok()) out << DamageLine(reader.damage()) << "\n";
}

void PrintStatJson(const std::string& dir, const TxnLogReader& reader,
                   const LogCounts& counts, std::ostream& out) {
  out << "{\"logDir\":" << JsonString(dir) << ",\"segments\":[";
  uint64_t file_bytes = 0;
  for (size_t i = 0; i < reader.segments().size(); ++i) {
    const auto& s = reader.segments()[i];
    file_bytes += s.file_size;
    out << (i > 0 ? "," : "") << "{\"path\":" << JsonString(s.path)
        << ",\"firstZxid\":\"" << Hex(s.name_zxid) << "\",\"lastZxid\":\""
        << Hex(s.last_zxid) << "\",\"records\":" << s.records
        << ",\"validBytes\":" << s.valid_end << ",\"fileBytes\":" << s.file_size
        << "}";
  }
  out << "],\"records\":" << counts.records << ",\"firstZxid\":\""
      << Hex(FirstZxid(reader)) << "\",\"lastZxid\":\""
      << Hex(reader.last_zxid())
      << "\",\"recordBytes\":" << RecordBytes(reader.segments())
      << ",\"fileBytes\":" << file_bytes << ",\"byType\":{";
  bool first = true;
  for (const auto& [type, n] : counts.by_type) {
    out << (first ? "" : ",") << JsonString(type) << ":" << n;
    first = false;
  }
  out << "}";
  if (!reader.damage().ok()) {
    out << ",\"damage\":" << JsonString(DamageLine(reader.damage()));
  }
  out << "}\n";
}

absl::Status RunStat(const Args& args, std::ostream& out) {
  absl::StatusOr<std::unique_ptr<TxnLogReader>> reader = ReaderFromArgs(args);
  if (!reader.ok()) return reader.status();
  const LogCounts counts = CountRecords(**reader);
  const std::string dir = *args.Get("log-dir");
  if (args.Has("json")) {
    PrintStatJson(dir, **reader, counts, out);
  } else {
    PrintStatText(dir, **reader, counts, out);
  }
  if ((*reader)->damage().kind == LogDamage::Kind::kCorruption) {
    return absl::DataLossError(DamageLine((*reader)->damage()));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> TxnLogCommands() {
  std::vector<Command> cmds;
  cmds.push_back(
      {"txnlog dump",
       "print txn log records",
       "usage: rkutl txnlog dump --log-dir L [--from Z] [--to Z] [--json]\n\n"
       "One line per record: zxid, time (UTC), session, cxid, type and the\n"
       "body (path, data length, version, ...). With --json one JSON object\n"
       "per line with the whole Txn. A torn tail is reported as a warning;\n"
       "corruption stops the dump with exit code 1.\n\n"
       "  --log-dir L  the txn log directory (dataLogDir, or dataDir/log)\n"
       "  --from Z     first zxid (decimal or 0x hex)\n"
       "  --to Z       last zxid\n"
       "  --json       JSON lines instead of text\n",
       {{"log-dir", true}, {"from", true}, {"to", true}, {"json", false}},
       RunDump});
  cmds.push_back(
      {"txnlog verify",
       "check every record of a txn log (read-only)",
       "usage: rkutl txnlog verify --log-dir L\n\n"
       "Validates every segment and record (header, checksums, zxid order,\n"
       "and that each payload is a well-formed Txn) without modifying\n"
       "anything. Exit 0 with a summary if clean; otherwise prints\n"
       "  torn tail at <file> offset <n>: ...\n"
       "  corruption at <file> offset <n>: <detail>\n"
       "and exits 1.\n\n"
       "  --log-dir L  the txn log directory\n",
       {{"log-dir", true}},
       RunVerify});
  cmds.push_back(
      {"txnlog stat",
       "segments, records, zxid range, bytes, types",
       "usage: rkutl txnlog stat --log-dir L [--json]\n\n"
       "Segments (records, zxid range, bytes), totals and records per txn\n"
       "type.\n\n"
       "  --log-dir L  the txn log directory\n"
       "  --json       JSON instead of text\n",
       {{"log-dir", true}, {"json", false}},
       RunStat});
  cmds.push_back(
      {"txnlog truncate",
       "remove the records after a zxid (server stopped)",
       "usage: rkutl txnlog truncate --log-dir L --after ZXID [--force]\n\n"
       "Removes every record with a zxid greater than ZXID. Without --force\n"
       "it prints what would be removed and asks for confirmation (only on a\n"
       "terminal: with stdin not a terminal it refuses). The server must be\n"
       "stopped (the log directory is locked while it runs).\n\n"
       "  --log-dir L   the txn log directory\n"
       "  --after ZXID  keep records up to this zxid (decimal or 0x hex)\n"
       "  --force       do it without asking\n",
       {{"log-dir", true}, {"after", true}, {"force", false}},
       RunTruncate});
  return cmds;
}

}  // namespace rockeeper::rkutl
