// rkutl import-zookeeper and export-zookeeper: migration from and back to
// Apache ZooKeeper 3.8 data directories (docs/rkutl.md).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/state_dir.h"
#include "engine/txn_log.h"
#include "tools/rkutl/cli.h"
#include "tools/rkutl/json_dump.h"
#include "tools/rkutl/progress.h"
#include "tools/rkutl/restore_plan.h"
#include "tools/rkutl/state_source.h"
#include "tools/rkutl/tree_walk.h"
#include "tools/rkutl/zk_format.h"
#include "tools/rkutl/zk_import.h"
#include "tools/rkutl/zk_tree.h"

namespace rockeeper::rkutl {
namespace {
namespace fs = std::filesystem;

absl::Status IoError(const std::string& path, const std::error_code& ec,
                     absl::string_view what) {
  return absl::UnavailableError(
      absl::StrCat(what, " ", path, ": ", ec.message()));
}

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::UnavailableError(
      absl::StrCat(what, " ", path, ": ",
                   std::error_code(errno, std::generic_category()).message()));
}

// A read-only view of a whole file (mmap; the file is never written).
class MappedFile {
 public:
  static absl::StatusOr<std::unique_ptr<MappedFile>> Open(
      const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("open", path);
    absl::Cleanup close_fd = [fd] { ::close(fd); };
    struct stat st {};
    if (::fstat(fd, &st) != 0) return Errno("stat", path);
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " is not a regular file"));
    }
    auto file = std::unique_ptr<MappedFile>(new MappedFile());
    file->size_ = static_cast<size_t>(st.st_size);
    if (file->size_ > 0) {
      void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) return Errno("mmap", path);
      file->data_ = static_cast<const char*>(p);
    }
    return file;
  }
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<char*>(data_), size_);
  }
  absl::string_view data() const {
    return data_ == nullptr ? absl::string_view()
                            : absl::string_view(data_, size_);
  }

 private:
  MappedFile() = default;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

struct ZkFile {
  int64_t zxid = 0;
  std::string path;
};

// `prefix`.<hex zxid> files of `dir`, by zxid ascending (as ZooKeeper sorts
// them). Compressed snapshots are listed in `compressed`.
absl::StatusOr<std::vector<ZkFile>> ListZkFiles(
    const std::string& dir, absl::string_view prefix,
    std::vector<std::string>* compressed) {
  std::error_code ec;
  std::vector<ZkFile> files;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end;
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (std::optional<int64_t> z = zk::ZxidFromName(name, prefix)) {
      files.push_back({*z, it->path().string()});
    } else if (compressed != nullptr &&
               absl::StartsWith(name, absl::StrCat(prefix, ".")) &&
               (absl::EndsWith(name, ".gz") ||
                absl::EndsWith(name, ".snappy"))) {
      compressed->push_back(it->path().string());
    }
  }
  if (ec) return IoError(dir, ec, "list");
  std::sort(files.begin(), files.end(),
            [](const ZkFile& a, const ZkFile& b) { return a.zxid < b.zxid; });
  return files;
}

// ZooKeeper's layout is <dataDir>/version-2/: accept the dataDir too.
std::string VersionDir(const std::string& dir) {
  const fs::path v2 = fs::path(dir) / "version-2";
  std::error_code ec;
  if (fs::is_directory(v2, ec)) return v2.string();
  return dir;
}

class TreeLoader : public zk::SnapshotVisitor {
 public:
  TreeLoader(zk::ZkTree* tree, Progress* progress)
      : tree_(tree), progress_(progress) {}
  absl::Status Session(int64_t id, int32_t timeout_ms) override {
    tree_->AddSession(id, timeout_ms);
    return absl::OkStatus();
  }
  absl::Status AclEntry(int64_t index, engine::AclVector acl) override {
    return tree_->AddAclCacheEntry(index, std::move(acl));
  }
  absl::Status Node(std::string path, std::string data, bool data_null,
                    int64_t acl_index, const zk::StatPersisted& stat,
                    uint64_t offset) override {
    const size_t bytes = data.size() + path.size() + 80;
    absl::Status s = tree_->AddSnapshotNode(std::move(path), std::move(data),
                                            data_null, acl_index, stat);
    if (!s.ok()) {
      return absl::DataLossError(
          absl::StrCat(file_, " offset ", offset, ": ", s.message()));
    }
    progress_->Add(1, bytes);
    return absl::OkStatus();
  }
  std::string file_;

 private:
  zk::ZkTree* tree_;
  Progress* progress_;
};

bool NextZxidFollows(int64_t prev, int64_t next) {
  if (static_cast<uint64_t>(next) == static_cast<uint64_t>(prev) + 1) {
    return true;
  }
  // A new epoch starts at counter 1 (the leader's first proposal).
  return (next >> 32) > (prev >> 32) && (next & 0xFFFFFFFFLL) == 1;
}

}  // namespace

absl::StatusOr<ZkImportResult> LoadZooKeeperState(const ZkImportOptions& opts,
                                                  zk::ZkTree* tree) {
  ZkImportResult result;
  const std::string snap_dir = VersionDir(opts.snap_dir);
  const std::string log_dir = VersionDir(opts.log_dir);
  std::vector<std::string> compressed;
  absl::StatusOr<std::vector<ZkFile>> snaps =
      ListZkFiles(snap_dir, "snapshot", &compressed);
  if (!snaps.ok()) return snaps.status();
  if (snaps->empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no ZooKeeper snapshot (snapshot.<zxid>) in ", snap_dir,
        compressed.empty()
            ? ""
            : absl::StrCat("; compressed snapshots (", compressed.front(),
                           ") are not supported: decompress them first")));
  }
  const ZkFile& snap = snaps->back();
  result.snapshot_file = snap.path;
  result.snapshot_zxid = snap.zxid;
  for (const std::string& c : compressed) {
    result.warnings.push_back(absl::StrCat(
        "ignoring compressed snapshot ", c,
        " (not supported; decompress it if it is newer than ", snap.path, ")"));
  }
  const std::string hint =
      " (ZooKeeper would fall back to an older snapshot: move this file "
      "away to import from the previous one)";
  {
    absl::StatusOr<std::unique_ptr<MappedFile>> file =
        MappedFile::Open(snap.path);
    if (!file.ok()) return file.status();
    const absl::string_view data = (*file)->data();
    if (!zk::LooksLikeCompleteSnapshot(data)) {
      return absl::DataLossError(absl::StrCat(
          snap.path, " offset ", data.size(),
          ": incomplete snapshot (it does not end with the seal's \"/\"; "
          "truncated or still being written)",
          hint));
    }
    Progress progress("read snapshot", "nodes", data.size());
    TreeLoader loader(tree, &progress);
    loader.file_ = snap.path;
    absl::StatusOr<zk::SnapshotTrailer> trailer =
        zk::ParseSnapshot(snap.path, data, &loader);
    if (!trailer.ok()) {
      return absl::Status(trailer.status().code(),
                          absl::StrCat(trailer.status().message(), hint));
    }
    tree->FinishSnapshot(snap.zxid);
    result.snapshot_bytes = data.size();
    if (trailer->has_digest && trailer->digest_version == zk::kDigestVersion &&
        trailer->digest_zxid > 0) {
      result.expected_digest = {trailer->digest_zxid,
                                static_cast<uint64_t>(trailer->digest)};
    }
  }
  // A digest stored for the snapshot's own zxid can be checked only if no
  // later txn follows in the logs: the snapshot is fuzzy, and a txn applied
  // while it was written (logged before it was applied) can be in the tree
  // although the digest was taken before it. ZooKeeper checks it only when it
  // replays that zxid, which it never does for the snapshot's own.
  bool check_snapshot_digest =
      result.expected_digest && result.expected_digest->first == snap.zxid;

  // Logs: the one with the largest start zxid <= the snapshot's, and every
  // later one (FileTxnLog.getLogFiles).
  absl::StatusOr<std::vector<ZkFile>> logs =
      ListZkFiles(log_dir, "log", nullptr);
  if (!logs.ok()) return logs.status();
  size_t first = 0;
  for (size_t i = 0; i < logs->size(); ++i) {
    if ((*logs)[i].zxid <= snap.zxid) first = i;
  }
  int64_t prev = snap.zxid;
  std::optional<int64_t> last_digest;
  int64_t last_digest_zxid = 0;
  Progress progress("replay", "txns");
  for (size_t i = first; i < logs->size(); ++i) {
    const ZkFile& lf = (*logs)[i];
    absl::StatusOr<std::unique_ptr<MappedFile>> file =
        MappedFile::Open(lf.path);
    if (!file.ok()) return file.status();
    absl::StatusOr<zk::LogFileReader> reader =
        zk::LogFileReader::Open(lf.path, (*file)->data());
    if (!reader.ok()) return reader.status();
    result.log_files++;
    const bool last_file = i + 1 == logs->size();
    while (true) {
      const uint64_t offset = reader->offset();
      bool torn = false;
      absl::StatusOr<std::optional<zk::Txn>> txn = reader->Next(&torn);
      if (!txn.ok()) {
        if (torn && last_file && opts.allow_torn_tail) {
          result.warnings.push_back(absl::StrCat(
              txn.status().message(),
              "; --allow-torn-tail: importing the records before it"));
          break;
        }
        return absl::Status(
            txn.status().code(),
            absl::StrCat(txn.status().message(),
                         torn && last_file
                             ? "; a crash can leave a partial last record: "
                               "rerun with --allow-torn-tail to import the "
                               "records before it"
                             : ""));
      }
      if (!txn->has_value()) break;
      const zk::Txn& t = **txn;
      progress.Add(1, 0);
      if (t.header.zxid <= snap.zxid) continue;  // in the snapshot
      check_snapshot_digest = false;
      if (!NextZxidFollows(prev, t.header.zxid)) {
        return absl::DataLossError(absl::StrFormat(
            "%s offset %d: zxid 0x%x does not follow 0x%x: %s", lf.path, offset,
            t.header.zxid, prev,
            t.header.zxid <= prev
                ? "zxids go backwards"
                : "txns are missing (a log file was removed or cut short)"));
      }
      prev = t.header.zxid;
      if (absl::Status s = tree->Apply(t); !s.ok()) {
        return absl::DataLossError(
            absl::StrCat(lf.path, " offset ", offset, ": ", s.message()));
      }
      result.txns++;
      if (result.first_txn_zxid == 0) result.first_txn_zxid = t.header.zxid;
      if (t.digest) {
        last_digest = t.digest;
        last_digest_zxid = t.header.zxid;
      }
      if (result.expected_digest &&
          result.expected_digest->first == t.header.zxid) {
        result.digest_checks++;
        if (tree->Digest() != result.expected_digest->second) {
          result.warnings.push_back(absl::StrFormat(
              "tree digest after zxid 0x%x differs from the snapshot's", prev));
        }
      }
    }
  }
  if (check_snapshot_digest) {
    result.digest_checks++;
    if (tree->Digest() != result.expected_digest->second) {
      result.warnings.push_back(absl::StrFormat(
          "%s: tree digest %d differs from the digest %d stored for zxid "
          "0x%x",
          snap.path, tree->Digest(), result.expected_digest->second,
          snap.zxid));
    }
  }
  if (last_digest && last_digest_zxid == tree->last_processed_zxid()) {
    result.digest_checks++;
    if (tree->Digest() != static_cast<uint64_t>(*last_digest)) {
      result.warnings.push_back(absl::StrFormat(
          "the tree digest after the last txn (0x%x) is %d, ZooKeeper logged "
          "%d",
          last_digest_zxid, tree->Digest(),
          static_cast<uint64_t>(*last_digest)));
    }
  }
  return result;
}

absl::StatusOr<DumpContents> ZkTreeToDump(const zk::ZkTree& tree,
                                          std::vector<std::string>* warnings) {
  DumpContents dump;
  const int64_t zxid = tree.last_processed_zxid();
  dump.header.last_applied_zxid = zxid;
  dump.header.current_epoch = dump.header.accepted_epoch = zxid >> 32;
  for (const auto& [id, timeout] : tree.sessions()) {
    engine::SessionRecord s;
    s.set_session_id(id);
    s.set_timeout_ms(timeout);
    s.set_password(zk::ZkSessionPassword(id));
    auto it = tree.session_created_zxid().find(id);
    s.set_created_zxid(it == tree.session_created_zxid().end() ? 0
                                                               : it->second);
    dump.sessions.push_back(std::move(s));
  }
  if (tree.nodes().count("/") == 0 || tree.nodes().count("/zookeeper") == 0 ||
      tree.nodes().count("/zookeeper/quota") == 0) {
    return absl::DataLossError(
        "the ZooKeeper tree lacks one of its built-in nodes /, /zookeeper, "
        "/zookeeper/quota");
  }
  // Pre-order, children in byte order. /zookeeper/config is rockeeper's own
  // built-in node (ZooKeeper's holds its dynamic config).
  std::vector<std::string> stack = {"/"};
  while (!stack.empty()) {
    std::string path = std::move(stack.back());
    stack.pop_back();
    if (path == "/zookeeper/config") {
      NodeEntry e;
      e.path = path;
      e.node.aversion = -1;
      e.acl = {engine::MakeAcl(engine::perms::kRead, "world", "anyone")};
      dump.nodes.push_back(std::move(e));
      continue;
    }
    const zk::TreeNode& n = tree.nodes().at(path);
    NodeEntry e;
    e.path = path;
    e.node.czxid = n.stat.czxid;
    e.node.mzxid = n.stat.mzxid;
    e.node.pzxid = n.stat.pzxid;
    e.node.ctime_ms = n.stat.ctime_ms;
    e.node.mtime_ms = n.stat.mtime_ms;
    e.node.version = n.stat.version;
    e.node.cversion = n.stat.cversion;
    e.node.aversion = n.stat.aversion;
    e.node.ephemeral_owner = n.stat.ephemeral_owner;
    e.node.num_children = static_cast<int32_t>(n.children.size());
    e.node.data = n.data;
    e.node.data_null = n.data_null;
    e.acl = tree.acl(n.acl);
    if (engine::IsSessionOwner(n.stat.ephemeral_owner) &&
        tree.sessions().count(n.stat.ephemeral_owner) == 0) {
      warnings->push_back(absl::StrFormat(
          "ephemeral %s: its session 0x%x is not in the session table", path,
          n.stat.ephemeral_owner));
    }
    dump.nodes.push_back(std::move(e));
    for (auto it = n.children.rbegin(); it != n.children.rend(); ++it) {
      const std::string child =
          path == "/" ? absl::StrCat("/", *it) : absl::StrCat(path, "/", *it);
      if (path == "/zookeeper" && *it == "config") {
        stack.push_back(child);
        continue;
      }
      if (tree.nodes().count(child) == 0) continue;
      stack.push_back(child);
    }
  }
  if (tree.nodes().at("/zookeeper").children.count("config") == 0) {
    // A tree without /zookeeper/config (older ZooKeeper): rockeeper has it.
    NodeEntry e;
    e.path = "/zookeeper/config";
    e.node.aversion = -1;
    e.acl = {engine::MakeAcl(engine::perms::kRead, "world", "anyone")};
    for (NodeEntry& n : dump.nodes) {
      if (n.path == "/zookeeper") n.node.num_children++;
    }
    dump.nodes.push_back(std::move(e));
  }
  return dump;
}

namespace {

absl::Status RunImport(const Args& args, std::ostream& out) {
  ZkImportOptions opts;
  absl::StatusOr<std::string> snap_dir = args.Require("snap-dir");
  if (!snap_dir.ok()) return snap_dir.status();
  absl::StatusOr<std::string> out_dir = args.Require("out");
  if (!out_dir.ok()) return out_dir.status();
  opts.snap_dir = *snap_dir;
  opts.log_dir = args.Get("log-dir").value_or(*snap_dir);
  opts.allow_torn_tail = args.Has("allow-torn-tail");
  const bool force = args.Has("force");
  if (absl::Status s = CheckDirectory(opts.snap_dir, "snapshot dir"); !s.ok()) {
    return s;
  }
  if (absl::Status s = CheckDirectory(opts.log_dir, "log dir"); !s.ok()) {
    return s;
  }
  // The server's data: state DB, snapshots, log (its default place).
  const fs::path out_path(*out_dir);
  const std::vector<fs::path> existing_parts = {
      out_path / "state", out_path / "snapshots", out_path / "log"};
  std::error_code ec;
  std::vector<fs::path> to_replace;
  for (const fs::path& p : existing_parts) {
    if (fs::exists(p, ec)) to_replace.push_back(p);
  }
  if (!to_replace.empty() && !force) {
    return absl::AlreadyExistsError(absl::StrCat(
        to_replace.front().string(),
        " already exists: import needs a new data dir (or --force to "
        "replace its state, snapshots and log)"));
  }

  zk::ZkTree tree;
  absl::StatusOr<ZkImportResult> loaded = LoadZooKeeperState(opts, &tree);
  if (!loaded.ok()) return loaded.status();
  PrintDiagnostics("warning", loaded->warnings);
  std::vector<std::string> warnings;
  absl::StatusOr<DumpContents> dump = ZkTreeToDump(tree, &warnings);
  if (!dump.ok()) return dump.status();
  PrintDiagnostics("warning", warnings);
  dump->header.source = loaded->snapshot_file;

  fs::create_directories(out_path, ec);
  if (ec) return IoError(out_path.string(), ec, "create");
  const std::string target = (out_path / "state").string();
  const std::string tmp = target + ".rkutl-importing";
  fs::remove_all(tmp, ec);
  absl::Cleanup remove_tmp = [&] { fs::remove_all(tmp, ec); };
  absl::StatusOr<std::vector<std::string>> diffs =
      BuildStateFromDump(&*dump, tmp);
  if (!diffs.ok()) return diffs.status();
  if (!diffs->empty()) {
    PrintDiagnostics("difference", *diffs);
    return absl::DataLossError(absl::StrCat(
        "the imported state differs from the ZooKeeper tree in ", diffs->size(),
        " place(s), listed above; nothing was written to ", *out_dir));
  }
  for (const fs::path& p : to_replace) {
    fs::remove_all(p, ec);
    if (ec) return IoError(p.string(), ec, "remove");
    out << "removed " << p.string() << " (--force)\n";
  }
  fs::rename(tmp, target, ec);
  if (ec) return IoError(tmp, ec, "rename");

  const ZkImportResult& r = *loaded;
  out << "read " << r.snapshot_file << " (zxid " << Hex(r.snapshot_zxid) << ", "
      << HumanBytes(r.snapshot_bytes) << ")\n";
  if (r.log_files == 0) {
    out << "note: no log.<zxid> file in " << VersionDir(opts.log_dir)
        << " after the snapshot: imported the snapshot alone (give --log-dir "
           "if ZooKeeper's dataLogDir is elsewhere)\n";
  }
  out << "replayed " << r.txns << " txns from " << r.log_files
      << " log file(s)";
  if (r.txns > 0) {
    out << " (zxids " << Hex(r.first_txn_zxid) << " - "
        << Hex(tree.last_processed_zxid()) << ")";
  }
  out << "\n";
  if (r.digest_checks > 0) {
    out << "tree digest checked at " << r.digest_checks << " point(s)\n";
  }
  out << "imported " << dump->nodes.size() << " znodes and "
      << dump->sessions.size() << " sessions into " << target << " (last zxid "
      << Hex(dump->header.last_applied_zxid) << ", epoch "
      << dump->header.current_epoch << ")\n";
  return absl::OkStatus();
}

absl::Status WriteAll(int fd, const std::string& data,
                      const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write", path);
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

absl::Status RunExport(const Args& args, std::ostream& out) {
  absl::StatusOr<std::string> data_dir = args.Require("data-dir");
  if (!data_dir.ok()) return data_dir.status();
  absl::StatusOr<std::string> snap_dir = args.Require("out-snap-dir");
  if (!snap_dir.ok()) return snap_dir.status();
  const std::string log_dir =
      args.Get("log-dir").value_or((fs::path(*data_dir) / "log").string());
  if (absl::Status s = CheckDirectory(*data_dir, "data dir"); !s.ok()) return s;

  absl::StatusOr<std::unique_ptr<engine::StateDb>> db =
      OpenStateDbReadOnly(engine::LiveStateDir(*data_dir).value_or(
          (fs::path(*data_dir) / "state").string()));
  if (!db.ok()) return db.status();
  const int64_t zxid = (*db)->last_applied_zxid();
  std::error_code ec;
  if (fs::is_directory(log_dir, ec)) {
    absl::StatusOr<std::unique_ptr<engine::TxnLogReader>> log =
        engine::TxnLogReader::Open(log_dir);
    if (!log.ok()) return log.status();
    if ((*log)->last_zxid() > zxid) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the txn log in ", log_dir, " has records up to ",
          Hex((*log)->last_zxid()), ", after the state DB's last applied zxid ",
          Hex(zxid),
          ": start the server once (it replays them), stop it, then export"));
    }
  }

  // Refuse to mix with existing ZooKeeper files: ZooKeeper would pick the
  // newest snapshot and replay logs on top of it.
  fs::create_directories(*snap_dir, ec);
  if (ec) return IoError(*snap_dir, ec, "create");
  for (absl::string_view prefix : {"snapshot", "log"}) {
    std::vector<std::string> compressed;
    absl::StatusOr<std::vector<ZkFile>> files =
        ListZkFiles(*snap_dir, prefix, &compressed);
    if (!files.ok()) return files.status();
    if (!files->empty() || !compressed.empty()) {
      return absl::AlreadyExistsError(absl::StrCat(
          *snap_dir, " already holds ZooKeeper files (",
          files->empty() ? compressed.front() : files->front().path,
          "): export writes only into a directory without snapshots or logs"));
    }
  }
  const std::string name =
      absl::StrCat("snapshot.", absl::Hex(static_cast<uint64_t>(zxid)));
  const std::string target = (fs::path(*snap_dir) / name).string();
  const std::string tmp =
      (fs::path(*snap_dir) / absl::StrCat(".", name, ".rkutl-tmp")).string();

  // Pass 1: the ACL lists in use (the snapshot's ACL cache comes first).
  std::map<int64_t, engine::AclVector> acls;
  int64_t nodes = 0;
  int64_t ttl_nodes = 0;
  absl::Status s = WalkTree(**db, "/", -1, [&](const NodeEntry& e) {
    if (e.node.acl_id != engine::kOpenAclId) acls.emplace(e.node.acl_id, e.acl);
    if (engine::IsTtlOwner(e.node.ephemeral_owner)) ++ttl_nodes;
    ++nodes;
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::vector<engine::SessionRecord> sessions;
  if (absl::Status st = (*db)->ListSessions(&sessions); !st.ok()) return st;

  const int fd =
      ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("create", tmp);
  bool done = false;
  absl::Cleanup cleanup = [&] {
    ::close(fd);
    if (!done) ::unlink(tmp.c_str());
  };
  std::string buffer, chunk;
  zk::SnapshotWriter w(&buffer);
  w.Header();
  std::vector<std::pair<int64_t, int32_t>> session_list;
  for (const auto& se : sessions) {
    session_list.emplace_back(se.session_id(), se.timeout_ms());
  }
  w.Sessions(session_list);
  w.Acls(std::vector<std::pair<int64_t, engine::AclVector>>(acls.begin(),
                                                            acls.end()));
  uint64_t digest = 0;
  Progress progress("export", "nodes", 0);
  s = WalkTree(**db, "/", -1, [&](const NodeEntry& e) {
    zk::StatPersisted st;
    st.czxid = e.node.czxid;
    st.mzxid = e.node.mzxid;
    st.ctime_ms = e.node.ctime_ms;
    st.mtime_ms = e.node.mtime_ms;
    st.version = e.node.version;
    st.cversion = e.node.cversion;
    st.aversion = e.node.aversion;
    st.ephemeral_owner = e.node.ephemeral_owner;
    st.pzxid = e.node.pzxid;
    absl::string_view path = e.path;
    if (path == "/") path = "";  // ZooKeeper writes the root as ""
    w.Node(path, e.node.data, e.node.acl_id, st, e.node.data_null);
    digest += zk::NodeDigest(path, e.node.data, st);
    progress.Add(1, e.node.data.size());
    if (w.buffered() >= (1u << 20)) {
      w.TakeChunk(&chunk);
      return WriteAll(fd, chunk, tmp);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  w.Finish(zxid, static_cast<int64_t>(digest));
  w.TakeChunk(&chunk);
  if (absl::Status st = WriteAll(fd, chunk, tmp); !st.ok()) return st;
  if (::fsync(fd) != 0) return Errno("fsync", tmp);
  // link() fails if the target appeared meanwhile: never overwrite.
  if (::link(tmp.c_str(), target.c_str()) != 0) return Errno("create", target);
  ::unlink(tmp.c_str());
  done = true;
  const int dir_fd = ::open(snap_dir->c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd >= 0) {
    (void)::fsync(dir_fd);
    ::close(dir_fd);
  }
  out << "wrote " << target << ": " << nodes << " znodes, " << sessions.size()
      << " sessions, " << acls.size() << " ACL lists, zxid " << Hex(zxid)
      << ", tree digest " << digest << "\n";
  if (ttl_nodes > 0) {
    // Without extended types ZooKeeper reads a TTL owner as a dead session
    // and deletes the node when it loads the snapshot.
    out << "note: " << ttl_nodes
        << " TTL node(s): start ZooKeeper with "
           "-Dzookeeper.extendedTypesEnabled=true to keep them\n";
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> ZooKeeperCommands() {
  return {
      {"import-zookeeper",
       "import an Apache ZooKeeper 3.8 data dir into a new data dir",
       "usage: rkutl import-zookeeper --snap-dir D [--log-dir L] --out OUT\n"
       "                              [--force] [--allow-torn-tail]\n\n"
       "Reads ZooKeeper's newest snapshot.<zxid> in D, replays the log.<zxid>\n"
       "files of L after it (as ZooKeeper's own restore does) and writes the\n"
       "resulting tree, sessions and zxid as OUT/state, a state DB a "
       "rockeeper\n"
       "server starts from. D and L may be ZooKeeper's dataDir/dataLogDir or\n"
       "their version-2 subdirectories; L defaults to D. The input is only\n"
       "read. Damage (truncation, checksum, gaps) stops the import.\n\n"
       "  --snap-dir D       ZooKeeper's snapshot directory\n"
       "  --log-dir L        ZooKeeper's txn log directory (default D)\n"
       "  --out OUT          the new rockeeper data dir\n"
       "  --force            replace OUT/state, OUT/snapshots and OUT/log\n"
       "  --allow-torn-tail  accept a partial last record in the newest log\n"
       "                     (left by a crash) and import what precedes it\n",
       {{"snap-dir", true},
        {"log-dir", true},
        {"out", true},
        {"force", false},
        {"allow-torn-tail", false}},
       RunImport},
      {"export-zookeeper",
       "write a ZooKeeper 3.8 snapshot of a data dir (to migrate back)",
       "usage: rkutl export-zookeeper --data-dir D --out-snap-dir S "
       "[--log-dir L]\n\n"
       "Writes S/snapshot.<zxid>, a ZooKeeper 3.8 snapshot (checksum seals "
       "and\n"
       "tree digest) of the state DB D/state, which must be complete: the\n"
       "server stopped, its log (L, default D/log) holding no records past "
       "the\n"
       "state. S is ZooKeeper's dataDir/version-2; it must hold no snapshot.*\n"
       "or log.* files (nothing is overwritten).\n\n"
       "  --data-dir D       the rockeeper data dir\n"
       "  --out-snap-dir S   ZooKeeper's <dataDir>/version-2 directory\n"
       "  --log-dir L        the rockeeper txn log dir (default D/log)\n",
       {{"data-dir", true}, {"out-snap-dir", true}, {"log-dir", true}},
       RunExport},
  };
}

}  // namespace rockeeper::rkutl
