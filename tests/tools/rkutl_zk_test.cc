// ZooKeeper import/export: the format primitives against Java's values, the
// replay of fuzzy snapshots (every snapshot point, each snapshot containing
// later txns than its name says), export -> import round trips, and damaged
// files (every truncation, random corruption) that must give an error naming
// the file and offset, never a crash. The real-ZooKeeper test is
// tests/tools/zk_import/zk_import_test.py.
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/path_utils.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"
#include "tests/tools/rkutl_test_util.h"
#include "tools/rkutl/zk_format.h"
#include "tools/rkutl/zk_import.h"
#include "tools/rkutl/zk_tree.h"

namespace rockeeper::rkutl::testing {
namespace {

namespace fs = std::filesystem;
using engine::testing::TempDir;
using zk::op::kCheck;
using zk::op::kCloseSession;
using zk::op::kCreate;
using zk::op::kCreate2;
using zk::op::kCreateContainer;
using zk::op::kCreateSession;
using zk::op::kCreateTtl;
using zk::op::kDelete;
using zk::op::kError;
using zk::op::kMulti;
using zk::op::kSetAcl;
using zk::op::kSetData;

std::string Hex(absl::string_view bytes) {
  std::string out;
  for (char c : bytes)
    absl::StrAppendFormat(&out, "%02x", static_cast<uint8_t>(c));
  return out;
}

TEST(ZkFormat, SessionPasswordsMatchZooKeeper) {
  // shared/reference/ZK_PROTOCOL_REFERENCE.md, Appendix A (computed with Java
  // and matched by a real server).
  EXPECT_EQ(Hex(zk::ZkSessionPassword(0x0100000000000000LL)),
            "f22acd4a97e69d6d20a49bb638eadb38");
  EXPECT_EQ(Hex(zk::ZkSessionPassword(0x01000a1b2c3d0000LL)),
            "99540115b2ac339b9f3f41ba4b39270b");
  EXPECT_EQ(Hex(zk::ZkSessionPassword(0x0100000d6b9f0006LL)),
            "b9db7f91643e42c814d43732b477a6d3");
}

TEST(ZkFormat, ChecksumsMatchJava) {
  EXPECT_EQ(zk::Adler32(zk::kAdler32Init, "Wikipedia"), 0x11E60398u);
  EXPECT_EQ(zk::Crc32(0, "123456789"), 0xCBF43926u);
  // Adler-32 over more than the 5552-byte reduction block, in pieces.
  std::string big(100000, '\xff');
  const uint32_t whole = zk::Adler32(zk::kAdler32Init, big);
  uint32_t parts = zk::kAdler32Init;
  for (size_t i = 0; i < big.size(); i += 777) {
    parts = zk::Adler32(parts, absl::string_view(big).substr(i, 777));
  }
  EXPECT_EQ(whole, parts);
}

TEST(ZkFormat, FileNames) {
  EXPECT_EQ(zk::ZxidFromName("snapshot.1f", "snapshot"), 0x1f);
  EXPECT_EQ(zk::ZxidFromName("log.100000001", "log"), 0x100000001LL);
  EXPECT_FALSE(zk::ZxidFromName("snapshot.1f.gz", "snapshot").has_value());
  EXPECT_FALSE(zk::ZxidFromName("snapshot.", "snapshot").has_value());
  EXPECT_FALSE(zk::ZxidFromName("logs.1", "log").has_value());
  EXPECT_FALSE(zk::ZxidFromName("log.ffffffffffffffff", "log").has_value());
}

// --- Encoding ZooKeeper files (test side) ---------------------------------

void EncodeBody(const zk::TxnBody& b, zk::Writer* w) {
  switch (b.type) {
    case kCreateSession:
      w->Int(b.timeout_ms);
      break;
    case kCloseSession:
      w->Int(static_cast<int32_t>(b.paths_to_delete.size()));
      for (const auto& p : b.paths_to_delete) w->String(p);
      break;
    case kCreate:
    case kCreate2:
    case kCreateTtl:
    case kCreateContainer:
      w->String(b.path);
      if (b.data_null) {
        w->Int(-1);
      } else {
        w->Buffer(b.data);
      }
      w->AclList(b.acl);
      if (b.type == kCreate || b.type == kCreate2) w->Bool(b.ephemeral);
      w->Int(b.parent_cversion);
      if (b.type == kCreateTtl) w->Long(b.ttl_ms);
      break;
    case kDelete:
      w->String(b.path);
      break;
    case kSetData:
      w->String(b.path);
      w->Buffer(b.data);
      w->Int(b.version);
      break;
    case kSetAcl:
      w->String(b.path);
      w->AclList(b.acl);
      w->Int(b.version);
      break;
    case kCheck:
      w->String(b.path);
      w->Int(b.version);
      break;
    case kError:
      w->Int(b.err);
      break;
    case kMulti:
      w->Int(static_cast<int32_t>(b.sub.size()));
      for (const auto& s : b.sub) {
        zk::Writer sub;
        EncodeBody(s, &sub);
        w->Int(s.type);
        w->Buffer(sub.data());
      }
      break;
    default:
      ADD_FAILURE() << "cannot encode type " << b.type;
  }
}

std::string EncodeEntry(const zk::Txn& t) {
  zk::Writer w;
  w.Long(t.header.client_id);
  w.Int(t.header.cxid);
  w.Long(t.header.zxid);
  w.Long(t.header.time_ms);
  w.Int(t.header.type);
  EncodeBody(t.body, &w);
  if (t.digest) {
    w.Int(zk::kDigestVersion);
    w.Long(*t.digest);
  }
  return w.data();
}

std::string LogFile(const std::vector<zk::Txn>& txns, size_t zero_tail) {
  zk::Writer w;
  w.Int(zk::kLogMagic);
  w.Int(zk::kFormatVersion);
  w.Long(0);
  for (const zk::Txn& t : txns) {
    const std::string entry = EncodeEntry(t);
    w.Long(zk::Adler32(zk::kAdler32Init, entry));
    w.Buffer(entry);
    w.data().push_back('B');
  }
  w.data().append(zero_tail, '\0');
  return w.data();
}

// `digest` defaults to the tree's own.
std::string SnapshotFile(const zk::ZkTree& tree, int64_t digest_zxid,
                         std::optional<uint64_t> digest = std::nullopt) {
  std::string out;
  zk::SnapshotWriter w(&out);
  w.Header();
  std::vector<std::pair<int64_t, int32_t>> sessions(tree.sessions().begin(),
                                                    tree.sessions().end());
  w.Sessions(sessions);
  std::map<int64_t, engine::AclVector> acls;
  for (const auto& [path, node] : tree.nodes()) {
    if (node.acl >= 0) acls.emplace(node.acl + 100, tree.acl(node.acl));
  }
  w.Acls({acls.begin(), acls.end()});
  std::vector<std::string> stack = {"/"};
  while (!stack.empty()) {
    const std::string path = stack.back();
    stack.pop_back();
    const zk::TreeNode& n = tree.nodes().at(path);
    w.Node(path == "/" ? "" : path, n.data, n.acl >= 0 ? n.acl + 100 : -1,
           n.stat, n.data_null);
    for (const auto& c : n.children) {
      stack.push_back(path == "/" ? absl::StrCat("/", c)
                                  : absl::StrCat(path, "/", c));
    }
  }
  w.Finish(digest_zxid, static_cast<int64_t>(digest.value_or(tree.Digest())));
  return out;
}

// The tree of a fresh ZooKeeper 3.8 (snapshot.0).
zk::ZkTree FreshTree() {
  zk::ZkTree t;
  EXPECT_TRUE(
      t.AddAclCacheEntry(1, {engine::MakeAcl(1, "world", "anyone")}).ok());
  zk::StatPersisted zero;
  EXPECT_TRUE(t.AddSnapshotNode("", "", false, -1, zero).ok());
  EXPECT_TRUE(t.AddSnapshotNode("/zookeeper", "", false, -1, zero).ok());
  zk::StatPersisted config;
  config.aversion = -1;
  EXPECT_TRUE(
      t.AddSnapshotNode("/zookeeper/config", "", false, 1, config).ok());
  EXPECT_TRUE(t.AddSnapshotNode("/zookeeper/quota", "", false, -1, zero).ok());
  t.FinishSnapshot(0);
  return t;
}

// Random valid ZooKeeper txns, each applied to `truth` as it is generated
// (so parentCVersion, versions and ephemerals are those a server logs).
class History {
 public:
  explicit History(uint32_t seed) : rng_(seed), truth_(FreshTree()) {
    states_.push_back(truth_);
  }

  void Run(int n) {
    for (int i = 0; i < n; ++i) Step();
  }
  const std::vector<zk::Txn>& txns() const { return txns_; }
  // The tree after the first `i` txns.
  const zk::ZkTree& state(size_t i) const { return states_[i]; }

 private:
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  std::vector<std::string> Paths(bool leaves_only) const {
    std::vector<std::string> out;
    for (const auto& [path, node] : truth_.nodes()) {
      if (path == "/" || absl::StartsWith(path, "/zookeeper")) continue;
      if (leaves_only && !node.children.empty()) continue;
      out.push_back(path);
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  engine::AclVector RandomAcl() {
    switch (Pick(3)) {
      case 0:
        return engine::OpenAclUnsafe();
      case 1:
        return {engine::MakeAcl(1, "world", "anyone")};
      default:
        return {engine::MakeAcl(31, "digest", "u:x0IDz7Zc1KxgRDBUjyEvmSHBmSs="),
                engine::MakeAcl(1, "world", "anyone")};
    }
  }

  zk::TxnBody CreateBody() {
    std::vector<std::string> parents = {"/"};
    for (const std::string& p : Paths(false)) {
      if (!engine::IsSessionOwner(truth_.nodes().at(p).stat.ephemeral_owner)) {
        parents.push_back(p);
      }
    }
    const std::string parent = parents[Pick(static_cast<int>(parents.size()))];
    zk::TxnBody b;
    b.path = absl::StrCat(parent == "/" ? "" : parent, "/n", next_name_++);
    b.data = Pick(4) == 0 ? "" : absl::StrCat("data", Pick(1000));
    b.data_null = b.data.empty() && Pick(2) == 0;
    b.acl = RandomAcl();
    b.parent_cversion = truth_.nodes().at(parent).stat.cversion + 1;
    switch (Pick(6)) {
      case 0:
        b.type = kCreateContainer;
        break;
      case 1:
        b.type = kCreateTtl;
        b.ttl_ms = 1 + Pick(100000);
        break;
      case 2:
        if (!truth_.sessions().empty()) {
          b.type = kCreate2;
          b.ephemeral = true;
          break;
        }
        [[fallthrough]];
      default:
        b.type = Pick(2) ? kCreate : kCreate2;
    }
    return b;
  }

  void Step() {
    zk::Txn t;
    t.header.zxid = static_cast<int64_t>(txns_.size()) + 1;
    t.header.time_ms = 1700000000000 + t.header.zxid * 7;
    t.header.cxid = static_cast<int32_t>(t.header.zxid);
    zk::TxnBody& b = t.body;
    const std::vector<std::string> leaves = Paths(true);
    const std::vector<std::string> all = Paths(false);
    auto random_session = [&]() {
      auto it = truth_.sessions().begin();
      std::advance(it, Pick(static_cast<int>(truth_.sessions().size())));
      return it->first;
    };
    const int choice = Pick(20);
    if (choice < 2 || txns_.empty()) {
      b.type = kCreateSession;
      b.timeout_ms = 4000 + Pick(4) * 1000;
      t.header.client_id = 0x0100000000000000LL + next_session_++;
    } else if (choice < 3 && !truth_.sessions().empty()) {
      b.type = kCloseSession;
      t.header.client_id = random_session();
      b.has_paths_to_delete = true;
      for (const auto& [path, node] : truth_.nodes()) {
        if (node.stat.ephemeral_owner == t.header.client_id) {
          b.paths_to_delete.push_back(path);
        }
      }
      std::sort(b.paths_to_delete.begin(), b.paths_to_delete.end());
    } else if (choice < 9 || all.empty()) {
      b = CreateBody();
      if (b.ephemeral) t.header.client_id = random_session();
    } else if (choice < 12 && !leaves.empty()) {
      b.type = kDelete;
      b.path = leaves[Pick(static_cast<int>(leaves.size()))];
    } else if (choice < 15) {
      b.type = kSetData;
      b.path = all[Pick(static_cast<int>(all.size()))];
      b.data = absl::StrCat("v", Pick(100));
      b.version = truth_.nodes().at(b.path).stat.version + 1;
    } else if (choice < 16) {
      b.type = kSetAcl;
      b.path = all[Pick(static_cast<int>(all.size()))];
      b.acl = RandomAcl();
      b.version = truth_.nodes().at(b.path).stat.aversion + 1;
    } else if (choice < 18) {
      // A successful multi: create under /, setData, check. Its creates'
      // parentCVersion is computed as the ops apply in order.
      b.type = kMulti;
      zk::TxnBody c1 = CreateBody();
      if (c1.ephemeral) {
        c1.ephemeral = false;  // multi ops share the header's session
        c1.type = kCreate;
      }
      b.sub.push_back(c1);
      zk::TxnBody set;
      set.type = kSetData;
      set.path = all[Pick(static_cast<int>(all.size()))];
      set.data = "multi";
      set.version = truth_.nodes().at(set.path).stat.version + 1;
      b.sub.push_back(set);
      zk::TxnBody check;
      check.type = kCheck;
      check.path = "/";
      check.version = 0;
      b.sub.push_back(check);
    } else if (choice < 19) {
      // A failed multi: the ops before the failure keep their bodies, the
      // failing one and those after are errors. Changes nothing.
      b.type = kMulti;
      b.sub.push_back(CreateBody());
      b.sub.back().ephemeral = false;
      zk::TxnBody e1, e2;
      e1.type = e2.type = kError;
      e1.err = -110;
      e2.err = -2;
      b.sub.push_back(e1);
      b.sub.push_back(e2);
    } else {
      b.type = kError;
      b.err = -101;
    }
    t.header.type = b.type;
    ASSERT_TRUE(truth_.Apply(t).ok());
    if (Pick(3) == 0) t.digest = static_cast<int64_t>(truth_.Digest());
    txns_.push_back(t);
    states_.push_back(truth_);
  }

  std::mt19937 rng_;
  zk::ZkTree truth_;
  std::vector<zk::Txn> txns_;
  std::vector<zk::ZkTree> states_;
  int next_name_ = 0;
  int next_session_ = 0;
};

// Node-by-node equality (stat, data, null flag, ACL list) and sessions.
void ExpectSameTree(const zk::ZkTree& got, const zk::ZkTree& want,
                    const std::string& what) {
  ASSERT_EQ(got.nodes().size(), want.nodes().size()) << what;
  for (const auto& [path, w] : want.nodes()) {
    auto it = got.nodes().find(path);
    ASSERT_NE(it, got.nodes().end()) << what << ": " << path;
    const zk::TreeNode& g = it->second;
    const auto tie = [](const zk::StatPersisted& s) {
      return std::make_tuple(s.czxid, s.mzxid, s.pzxid, s.ctime_ms, s.mtime_ms,
                             s.version, s.cversion, s.aversion,
                             s.ephemeral_owner);
    };
    EXPECT_EQ(tie(g.stat), tie(w.stat)) << what << ": stat of " << path;
    EXPECT_EQ(g.data, w.data) << what << ": " << path;
    EXPECT_EQ(g.data_null, w.data_null) << what << ": " << path;
    EXPECT_EQ(g.children, w.children) << what << ": " << path;
    EXPECT_EQ(engine::AclListFingerprint(got.acl(g.acl)),
              engine::AclListFingerprint(want.acl(w.acl)))
        << what << ": ACL of " << path;
  }
  EXPECT_EQ(got.sessions(), want.sessions()) << what;
  EXPECT_EQ(got.last_processed_zxid(), want.last_processed_zxid()) << what;
  EXPECT_EQ(got.Digest(), want.Digest()) << what;
}

// A ZooKeeper dataDir/version-2 with snapshot.<snap_zxid> holding the state
// after `contents` txns (> snap_zxid: a fuzzy snapshot) and the log split
// into two files.
struct ZkDir {
  std::string dir;
  std::string snapshot;
  std::vector<std::string> logs;
};

ZkDir WriteZkDir(const std::string& dir, const History& h, size_t snap_zxid,
                 size_t contents) {
  ZkDir d;
  d.dir = dir;
  fs::create_directories(dir);
  d.snapshot = absl::StrFormat("%s/snapshot.%x", dir, snap_zxid);
  WriteFile(d.snapshot, SnapshotFile(h.state(contents), contents));
  const auto& txns = h.txns();
  const size_t split = txns.size() / 2;
  const std::vector<std::pair<size_t, size_t>> parts = {{0, split},
                                                        {split, txns.size()}};
  for (const auto& [from, to] : parts) {
    if (from == to) continue;
    const std::string path =
        absl::StrFormat("%s/log.%x", dir, txns[from].header.zxid);
    WriteFile(path, LogFile({txns.begin() + static_cast<long>(from),
                             txns.begin() + static_cast<long>(to)},
                            from == 0 ? 100 : 4096));
    d.logs.push_back(path);
  }
  return d;
}

absl::StatusOr<ZkImportResult> Load(const std::string& dir, zk::ZkTree* tree,
                                    bool allow_torn_tail = false) {
  ZkImportOptions opts;
  opts.snap_dir = opts.log_dir = dir;
  opts.allow_torn_tail = allow_torn_tail;
  return LoadZooKeeperState(opts, tree);
}

TEST(ZkImport, FuzzySnapshotsReplayToTheSameTree) {
  for (uint32_t seed = 1; seed <= 3; ++seed) {
    History h(seed);
    h.Run(150);
    const size_t n = h.txns().size();
    TempDir tmp;
    for (size_t snap : {size_t{0}, size_t{1}, size_t{7}, n / 2 - 1, n / 2,
                        n / 2 + 3, n - 2, n}) {
      for (size_t extra : {size_t{0}, size_t{1}, size_t{4}, size_t{30}}) {
        const size_t contents = std::min(n, snap + extra);
        const std::string what =
            absl::StrCat("seed ", seed, " snapshot ", snap, "+", extra);
        const ZkDir d = WriteZkDir(tmp.Sub(absl::StrCat(snap, "-", extra)), h,
                                   snap, contents);
        zk::ZkTree tree;
        absl::StatusOr<ZkImportResult> r = Load(d.dir, &tree);
        ASSERT_TRUE(r.ok()) << what << ": " << r.status();
        EXPECT_TRUE(r->warnings.empty()) << what << ": " << r->warnings.front();
        EXPECT_EQ(r->txns, static_cast<int64_t>(n - snap)) << what;
        ExpectSameTree(tree, h.state(n), what);
      }
    }
  }
}

TEST(ZkImport, ADigestForTheSnapshotsZxidIsNotCheckedAgainstAFuzzyTree) {
  // ZooKeeper names the snapshot and may store its digest for the zxid it
  // started at, while a txn logged after it is already (partly) in the tree:
  // seen in a real ZooKeeper 3.8 snapshot. Not a mismatch (ZooKeeper does
  // not compare it either); the digest after the last txn is still checked.
  History h(5);
  h.Run(40);
  const size_t n = h.txns().size();
  int tried = 0;
  for (size_t snap = 3; snap + 1 < n && tried < 3; snap += 5) {
    // Only where the next txn changes the tree (not a failed one).
    if (h.state(snap).Digest() == h.state(snap + 1).Digest()) continue;
    ++tried;
    const std::string what = absl::StrCat("snapshot ", snap);
    TempDir tmp;
    ZkDir d = WriteZkDir(tmp.Sub("d"), h, snap, snap + 1);
    WriteFile(d.snapshot,
              SnapshotFile(h.state(snap + 1), static_cast<int64_t>(snap),
                           h.state(snap).Digest()));
    zk::ZkTree tree;
    absl::StatusOr<ZkImportResult> r = Load(d.dir, &tree);
    ASSERT_TRUE(r.ok()) << what << ": " << r.status();
    EXPECT_TRUE(r->warnings.empty()) << what << ": " << r->warnings.front();
    ExpectSameTree(tree, h.state(n), what);
  }
  EXPECT_EQ(tried, 3);
}

TEST(ZkImport, WrongDigestIsReported) {
  // A snapshot whose stored digest (for its own zxid) is not its tree's.
  std::string out;
  zk::SnapshotWriter w(&out);
  w.Header();
  w.Sessions({{0x0100000000000001LL, 5000}});
  w.Acls({});
  zk::StatPersisted zero;
  w.Node("", "", -1, zero);
  w.Node("/zookeeper", "", -1, zero);
  w.Node("/zookeeper/quota", "", -1, zero);
  w.Finish(0x28, 12345);
  TempDir tmp;
  fs::create_directories(tmp.Sub("d"));
  WriteFile(tmp.Sub("d/snapshot.28"), out);
  zk::ZkTree tree;
  absl::StatusOr<ZkImportResult> r = Load(tmp.Sub("d"), &tree);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->warnings.size(), 1u);
  EXPECT_NE(r->warnings[0].find("digest"), std::string::npos);
  EXPECT_EQ(tree.sessions().size(), 1u);
}

TEST(ZkImport, GapsAndMissingSnapshotsAreErrors) {
  History h(4);
  h.Run(60);
  TempDir tmp;
  const ZkDir d = WriteZkDir(tmp.Sub("gap"), h, 10, 10);
  // Drop the first log file: the txns after the snapshot are missing.
  fs::remove(d.logs[0]);
  zk::ZkTree tree;
  absl::StatusOr<ZkImportResult> r = Load(d.dir, &tree);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("does not follow 0xa"), std::string::npos)
      << r.status();
  EXPECT_NE(r.status().message().find(d.logs[1]), std::string::npos);

  fs::create_directories(tmp.Sub("empty"));
  zk::ZkTree t2;
  r = Load(tmp.Sub("empty"), &t2);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no ZooKeeper snapshot"),
            std::string::npos);
}

// Every message must name the file and an offset, and say no more than the
// input justifies (no crash, no huge allocation: ASan/UBSan builds run this).
void ExpectCleanError(const absl::Status& s, const std::string& file,
                      const std::string& what) {
  EXPECT_NE(s.message().find(file), std::string::npos) << what << ": " << s;
  EXPECT_NE(s.message().find("offset"), std::string::npos) << what << ": " << s;
}

TEST(ZkImport, EveryTruncationIsAnErrorOrAPrefix) {
  History h(5);
  h.Run(50);
  TempDir tmp;
  const ZkDir d = WriteZkDir(tmp.Sub("t"), h, 20, 23);
  const std::string snap = ReadFile(d.snapshot);
  for (size_t len = 0; len < snap.size(); ++len) {
    WriteFile(d.snapshot, snap.substr(0, len));
    zk::ZkTree tree;
    absl::StatusOr<ZkImportResult> r = Load(d.dir, &tree);
    // Without its digest section (20 bytes + 13-byte seal) a snapshot is
    // a valid pre-3.6 one.
    if (len == snap.size() - 33) {
      EXPECT_TRUE(r.ok()) << r.status();
      continue;
    }
    ASSERT_FALSE(r.ok()) << "snapshot cut at " << len;
    ExpectCleanError(r.status(), d.snapshot, absl::StrCat("cut at ", len));
  }
  WriteFile(d.snapshot, snap);
  // The last log: a cut inside a record is a torn tail (an error unless
  // allowed), a cut at a record boundary a shorter log.
  const std::string log = ReadFile(d.logs.back());
  const size_t used = log.find_last_not_of('\0') + 1;
  int ok = 0, torn = 0;
  for (size_t len = 0; len <= used; ++len) {
    WriteFile(d.logs.back(), log.substr(0, len));
    zk::ZkTree tree;
    absl::StatusOr<ZkImportResult> r = Load(d.dir, &tree);
    if (r.ok()) {
      ++ok;
      continue;
    }
    ExpectCleanError(r.status(), d.logs.back(), absl::StrCat("cut at ", len));
    if (r.status().message().find("--allow-torn-tail") != std::string::npos) {
      ++torn;
      zk::ZkTree t2;
      EXPECT_TRUE(Load(d.dir, &t2, true).ok()) << len;
    }
  }
  EXPECT_GT(ok, 10);
  EXPECT_GT(torn, 100);
  // The first log, cut: a gap before the second log's first txn.
  const std::string first = ReadFile(d.logs[0]);
  for (size_t len = 16; len < first.size() - 100; len += 7) {
    WriteFile(d.logs[0], first.substr(0, len));
    zk::ZkTree tree;
    absl::StatusOr<ZkImportResult> r = Load(d.dir, &tree);
    ASSERT_FALSE(r.ok()) << len;
  }
}

TEST(ZkImport, RandomCorruptionNeverCrashes) {
  History h(6);
  h.Run(80);
  TempDir tmp;
  const ZkDir d = WriteZkDir(tmp.Sub("c"), h, 30, 31);
  const int iterations = [] {
    const char* env = std::getenv("RK_ZK_FUZZ_ITERATIONS");
    return env != nullptr ? std::atoi(env) : 1500;
  }();
  std::mt19937 rng(12345);
  std::vector<std::string> files = {d.snapshot};
  files.insert(files.end(), d.logs.begin(), d.logs.end());
  std::map<std::string, std::string> originals;
  for (const auto& f : files) originals[f] = ReadFile(f);
  int errors = 0;
  for (int i = 0; i < iterations; ++i) {
    const std::string& victim = files[rng() % files.size()];
    std::string data = originals[victim];
    const size_t used = data.find_last_not_of('\0') + 1;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      const size_t at = rng() % used;
      switch (rng() % 3) {
        case 0:
          data[at] = static_cast<char>(data[at] ^ (1 << (rng() % 8)));
          break;
        case 1:  // a huge or negative length-like value
          for (size_t j = at; j < std::min(used, at + 4); ++j) {
            data[j] = static_cast<char>(rng() % 2 ? 0x7f : 0xff);
          }
          break;
        default:
          data[at] = static_cast<char>(rng());
      }
    }
    // Direct decoder calls too (no file-level checks in front of them).
    {
      zk::ZkTree tree;
      struct V : zk::SnapshotVisitor {
        absl::Status Session(int64_t, int32_t) override {
          return absl::OkStatus();
        }
        absl::Status AclEntry(int64_t, engine::AclVector) override {
          return absl::OkStatus();
        }
        absl::Status Node(std::string, std::string, bool, int64_t,
                          const zk::StatPersisted&, uint64_t) override {
          return absl::OkStatus();
        }
      } v;
      (void)zk::ParseSnapshot("x", data, &v);
      absl::StatusOr<zk::LogFileReader> lr = zk::LogFileReader::Open("x", data);
      for (int k = 0; lr.ok() && k < 10000; ++k) {
        absl::StatusOr<std::optional<zk::Txn>> t = lr->Next();
        if (!t.ok() || !t->has_value()) break;
      }
    }
    WriteFile(victim, data);
    zk::ZkTree tree;
    absl::StatusOr<ZkImportResult> r = Load(d.dir, &tree);
    if (!r.ok()) {
      ++errors;
      EXPECT_NE(r.status().message().find("offset"), std::string::npos)
          << r.status();
    }
    WriteFile(victim, originals[victim]);
  }
  EXPECT_GT(errors, iterations / 2);
}

// export (binary) -> import (binary) -> same dump, for rockeeper's sample
// data dir (every node type, quotas, sessions).
TEST(ZkExport, RoundTripOfSampleDataDir) {
  TempDir tmp;
  const SampleDataDir sample = BuildSampleDataDir(tmp.Sub("rk"), 1);
  const std::string zk_dir = tmp.Sub("zk/version-2");
  RunResult r = RunRkutl({"export-zookeeper", "--data-dir", sample.data_dir,
                          "--out-snap-dir", zk_dir});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string snap =
      absl::StrFormat("%s/snapshot.%x", zk_dir, sample.last_zxid);
  ASSERT_TRUE(fs::exists(snap)) << r.out;
  // Nothing is overwritten.
  RunResult again = RunRkutl({"export-zookeeper", "--data-dir", sample.data_dir,
                              "--out-snap-dir", zk_dir});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("already holds ZooKeeper files"), std::string::npos);

  r = RunRkutl({"import-zookeeper", "--snap-dir", tmp.Sub("zk"), "--out",
                tmp.Sub("back")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_NE(r.out.find("tree digest checked at 1 point"), std::string::npos)
      << r.out;
  const RunResult a = RunRkutl(
      {"snapshot", "dump", "--data-dir", sample.data_dir, "--live", "--json"});
  const RunResult b = RunRkutl(
      {"snapshot", "dump", "--data-dir", tmp.Sub("back"), "--live", "--json"});
  ASSERT_EQ(a.exit_code, 0);
  ASSERT_EQ(b.exit_code, 0);
  // Equal apart from the source line and the sessions' createdZxid (which a
  // ZooKeeper snapshot does not record).
  const std::vector<std::string> la = Lines(a.out), lb = Lines(b.out);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 1; i < la.size(); ++i) {
    if (absl::StrContains(la[i], "\"sessionId\"")) {
      EXPECT_EQ(la[i].substr(0, la[i].find("createdZxid")),
                lb[i].substr(0, lb[i].find("createdZxid")));
      continue;
    }
    EXPECT_EQ(la[i], lb[i]);
  }
}

TEST(ZkCommands, UsageAndRefusals) {
  TempDir tmp;
  RunResult r = RunRkutl({"import-zookeeper", "--out", tmp.Sub("o")});
  EXPECT_EQ(r.exit_code, 2);
  r = RunRkutl({"export-zookeeper", "--data-dir", tmp.path()});
  EXPECT_EQ(r.exit_code, 2);
  r = RunRkutl({"import-zookeeper", "--snap-dir", tmp.Sub("missing"), "--out",
                tmp.Sub("o")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("missing"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace rockeeper::rkutl::testing
