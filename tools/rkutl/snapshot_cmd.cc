// rkutl snapshot list | dump | stat.
#include <filesystem>
#include <iostream>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/path_utils.h"
#include "engine/snapshot.h"
#include "tools/rkutl/cli.h"
#include "tools/rkutl/dump_format.h"
#include "tools/rkutl/json_dump.h"
#include "tools/rkutl/progress.h"
#include "tools/rkutl/state_source.h"
#include "tools/rkutl/tree_stats.h"
#include "tools/rkutl/tree_walk.h"

namespace rockeeper::rkutl {
namespace {
namespace fs = std::filesystem;

// --- list ------------------------------------------------------------------

struct ListedSnapshot {
  engine::SnapshotInfo info;
  int64_t nodes = -1;  // -1 if the snapshot could not be opened
  std::string error;
};

ListedSnapshot Inspect(const engine::SnapshotInfo& info) {
  ListedSnapshot out;
  out.info = info;
  absl::StatusOr<std::unique_ptr<engine::StateDb>> db =
      OpenStateDbReadOnly(info.path);
  if (!db.ok()) {
    out.error = std::string(db.status().message());
    return out;
  }
  absl::StatusOr<int64_t> below = (*db)->CountDescendants("/");
  if (!below.ok()) {
    out.error = std::string(below.status().message());
    return out;
  }
  out.nodes = *below + 1;
  return out;
}

void PrintSnapshotsText(const std::vector<ListedSnapshot>& snaps,
                        std::ostream& out) {
  out << absl::StrFormat("%-20s %14s %10s %10s  %s\n", "ZXID", "BYTES", "SIZE",
                         "NODES", "PATH");
  for (const ListedSnapshot& s : snaps) {
    out << absl::StrFormat("%-20s %14d %10s %10s  %s\n", Hex(s.info.zxid),
                           s.info.size_bytes, HumanBytes(s.info.size_bytes),
                           s.nodes >= 0 ? absl::StrCat(s.nodes) : "?",
                           s.info.path);
  }
}

void PrintSnapshotsJson(const std::vector<ListedSnapshot>& snaps,
                        std::ostream& out) {
  out << "{\"snapshots\":[";
  for (size_t i = 0; i < snaps.size(); ++i) {
    const ListedSnapshot& s = snaps[i];
    out << (i == 0 ? "\n" : ",\n") << "{\"zxid\":\"" << Hex(s.info.zxid)
        << "\",\"path\":" << JsonString(s.info.path)
        << ",\"sizeBytes\":" << s.info.size_bytes;
    if (s.nodes >= 0) out << ",\"nodes\":" << s.nodes;
    if (!s.error.empty()) out << ",\"error\":" << JsonString(s.error);
    out << "}";
  }
  out << "\n]}\n";
}

absl::Status RunList(const Args& args, std::ostream& out) {
  absl::StatusOr<std::string> data_dir = args.Require("data-dir");
  if (!data_dir.ok()) return data_dir.status();
  if (absl::Status s = CheckDirectory(*data_dir, "data dir"); !s.ok()) return s;
  const std::string dir = (fs::path(*data_dir) / "snapshots").string();
  absl::StatusOr<std::vector<engine::SnapshotInfo>> infos =
      engine::SnapshotStore(dir).List();
  if (!infos.ok()) return infos.status();
  std::vector<ListedSnapshot> snaps;
  int failed = 0;
  for (const engine::SnapshotInfo& info : *infos) {
    snaps.push_back(Inspect(info));
    if (!snaps.back().error.empty()) {
      ++failed;
      std::cerr << "rkutl: " << info.path << ": " << snaps.back().error << "\n";
    }
  }
  if (args.Has("json")) {
    PrintSnapshotsJson(snaps, out);
  } else if (snaps.empty()) {
    out << "no snapshots in " << dir << "\n";
  } else {
    PrintSnapshotsText(snaps, out);
  }
  if (failed > 0) {
    return absl::DataLossError(
        absl::StrCat(failed, " snapshot(s) could not be read"));
  }
  return absl::OkStatus();
}

// --- dump ------------------------------------------------------------------

absl::StatusOr<std::string> PathFlag(const Args& args) {
  const std::string path = args.Get("path").value_or("/");
  if (!engine::IsValidPath(path)) {
    return UsageError(
        absl::StrCat("--path: \"", path, "\" is not a valid znode path"));
  }
  return path;
}

absl::StatusOr<int64_t> MaxDepthFlag(const Args& args) {
  absl::StatusOr<int64_t> depth = args.GetInt("max-depth", -1);
  if (!depth.ok()) return depth.status();
  if (args.Has("max-depth") && *depth < 0) {
    return UsageError("--max-depth must be 0 or more");
  }
  return depth;
}

absl::Status WriteJsonHead(const StateSource& source, const std::string& root,
                           int64_t max_depth, std::ostream& out) {
  DumpHeader header;
  header.source = source.dir;
  header.last_applied_zxid = source.db->last_applied_zxid();
  header.current_epoch = source.db->current_epoch();
  header.accepted_epoch = source.db->accepted_epoch();
  header.root = root;
  header.max_depth = max_depth;
  std::vector<engine::SessionRecord> sessions;
  if (absl::Status s = source.db->ListSessions(&sessions); !s.ok()) return s;
  out << FormatDumpHead(header, sessions);
  return absl::OkStatus();
}

absl::Status CheckRoot(const StateSource& source, const std::string& root) {
  absl::StatusOr<engine::Znode> top = source.db->GetZnode(root);
  if (absl::IsNotFound(top.status())) {
    return absl::NotFoundError(
        absl::StrCat("node ", root, " does not exist in ", source.dir));
  }
  return top.status();
}

absl::Status StdoutStatus(const std::ostream& out) {
  return out.good() ? absl::OkStatus()
                    : absl::UnavailableError("write to stdout failed");
}

// Writes every node below `root`, as JSON lines or text blocks.
absl::Status WriteNodes(const StateSource& source, const std::string& root,
                        int64_t max_depth, bool json, std::ostream& out) {
  Progress progress("dump", "nodes");
  bool first = true;
  return WalkTree(*source.db, root, max_depth, [&](const NodeEntry& e) {
    if (json) {
      out << (first ? "" : kDumpNodeSeparator) << FormatNodeJson(e);
    } else {
      out << (first ? "" : "\n") << FormatNodeText(e);
    }
    first = false;
    progress.Add(1, e.node.data.size());
    return StdoutStatus(out);
  });
}

absl::Status RunDump(const Args& args, std::ostream& out) {
  absl::StatusOr<std::string> root = PathFlag(args);
  if (!root.ok()) return root.status();
  absl::StatusOr<int64_t> max_depth = MaxDepthFlag(args);
  if (!max_depth.ok()) return max_depth.status();
  absl::StatusOr<StateSource> source = OpenStateSource(args);
  if (!source.ok()) return source.status();
  if (absl::Status s = CheckRoot(*source, *root); !s.ok()) return s;
  const bool json = args.Has("json");
  if (json) {
    absl::Status s = WriteJsonHead(*source, *root, *max_depth, out);
    if (!s.ok()) return s;
  }
  absl::Status s = WriteNodes(*source, *root, *max_depth, json, out);
  if (!s.ok()) return s;
  if (json) out << kDumpTail;
  out.flush();
  return StdoutStatus(out);
}

// --- stat ------------------------------------------------------------------

absl::Status RunStat(const Args& args, std::ostream& out) {
  absl::StatusOr<std::string> root = PathFlag(args);
  if (!root.ok()) return root.status();
  absl::StatusOr<StateSource> source = OpenStateSource(args);
  if (!source.ok()) return source.status();
  TreeStats stats(10);
  {
    Progress progress("stat", "nodes");
    absl::Status s = WalkTree(*source->db, *root, -1, [&](const NodeEntry& e) {
      stats.Add(e);
      progress.Add(1, e.node.data.size());
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
  }
  std::vector<engine::SessionRecord> sessions;
  if (absl::Status s = source->db->ListSessions(&sessions); !s.ok()) return s;
  TreeStatsReport report{source->dir, source->db->last_applied_zxid(), *root};
  if (args.Has("json")) {
    out << stats.ToJson(report, sessions);
  } else {
    out << stats.ToText(report, sessions);
  }
  return absl::OkStatus();
}

std::vector<FlagSpec> WithSource(std::vector<FlagSpec> extra) {
  std::vector<FlagSpec> flags = StateSourceFlags();
  flags.insert(flags.end(), extra.begin(), extra.end());
  return flags;
}

constexpr char kSourceHelp[] =
    "Source (exactly one):\n"
    "  --snapshot PATH     a snapshot directory "
    "(dataDir/snapshots/snapshot.<zxid>)\n"
    "  --data-dir D        the newest snapshot in D/snapshots\n"
    "  --data-dir D --live the live state DB D/state, opened read-only (shows\n"
    "                      what a running server has flushed so far)\n";

}  // namespace

std::vector<Command> SnapshotCommands() {
  std::vector<Command> cmds;
  cmds.push_back(
      {"snapshot list",
       "list snapshots with zxid, size and node count",
       "usage: rkutl snapshot list --data-dir D [--json]\n\n"
       "Lists the snapshots in D/snapshots, oldest first: zxid, size on disk\n"
       "(hard links counted in full), node count, path.\n\n"
       "  --data-dir D  the server's dataDir\n"
       "  --json        one JSON document instead of a table\n",
       {{"data-dir", true}, {"json", false}},
       RunList});
  cmds.push_back(
      {"snapshot dump", "print the znodes of a snapshot (text or JSON)",
       absl::StrCat(
           "usage: rkutl snapshot dump (--snapshot PATH | --data-dir D "
           "[--live])\n"
           "                           [--path P] [--max-depth N] [--json]\n\n"
           "Prints every znode under P, depth first, children in byte order:\n"
           "the path, the Stat as zkCli prints it, the data and the ACL.\n"
           "With --json: one document whose \"nodes\" array has one object "
           "per\nline (data as UTF-8, or base64 with \"dataEncoding\": "
           "\"base64\");\n`snapshot restore --json` reads it back.\n\n",
           kSourceHelp,
           "\n  --path P       start at P (default /)\n"
           "  --max-depth N  only N levels below P (0: P alone)\n"
           "  --json         JSON instead of text\n"),
       WithSource({{"path", true}, {"max-depth", true}, {"json", false}}),
       RunDump});
  cmds.push_back(
      {"snapshot stat", "node, data, session and ephemeral statistics",
       absl::StrCat(
           "usage: rkutl snapshot stat (--snapshot PATH | --data-dir D "
           "[--live])\n"
           "                           [--path P] [--json]\n\n"
           "Node count (by type), total data bytes, depth, the 10 largest "
           "nodes,\nthe 10 widest parents, sessions and their ephemerals.\n\n",
           kSourceHelp,
           "\n  --path P  only the subtree at P (default /)\n"
           "  --json    JSON instead of text\n"),
       WithSource({{"path", true}, {"json", false}}), RunStat});
  cmds.push_back(
      {"snapshot restore",
       "restore a snapshot or a JSON dump into a new data dir",
       "usage: rkutl snapshot restore --snapshot PATH --data-dir NEWDIR\n"
       "       rkutl snapshot restore --json DUMP.json --data-dir NEWDIR\n\n"
       "Creates NEWDIR/state, a state DB a server can start from "
       "(NEWDIR/state\n"
       "must not exist). From a snapshot: a full copy of it. From a JSON dump\n"
       "(`snapshot dump --json` of the whole tree): the tree is rebuilt with\n"
       "synthetic txns that reproduce every Stat, then compared with the "
       "dump;\nany difference is listed and the exit code is 1.\n\n"
       "  --snapshot PATH  a snapshot directory\n"
       "  --json FILE      a JSON dump (- for stdin)\n"
       "  --data-dir NEWDIR  the new data dir\n",
       {{"snapshot", true}, {"json", true}, {"data-dir", true}},
       RunSnapshotRestore});
  return cmds;
}

}  // namespace rockeeper::rkutl
