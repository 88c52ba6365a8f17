#include "tools/rkutl/zk_tree.h"

#include <algorithm>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/path_utils.h"
#include "engine/state_db.h"

namespace rockeeper::rkutl::zk {
namespace {

constexpr absl::string_view kQuotaRoot = "/zookeeper/quota";
constexpr absl::string_view kLimitNode = "zookeeper_limits";
constexpr absl::string_view kStatNode = "zookeeper_stats";

std::string BaseOf(const std::string& path) {
  return path.substr(path.rfind('/') + 1);
}

// StatsTrack: "count=N,bytes=M[=;key=value...]" with ',' or ';' between
// pairs. Returns false if the text does not parse (ZooKeeper would fail).
bool ParseStats(absl::string_view text, std::map<std::string, int64_t>* out) {
  out->clear();
  if (text.empty()) return true;
  for (absl::string_view pair :
       absl::StrSplit(text, absl::ByAnyChar(",;"), absl::SkipEmpty())) {
    std::vector<absl::string_view> kv = absl::StrSplit(pair, '=');
    while (kv.size() > 1 && kv.back().empty()) kv.pop_back();  // Java split
    if (kv.size() < 2) return false;
    int64_t v = 0;
    if (!absl::SimpleAtoi(kv[1], &v)) return false;
    (*out)[std::string(kv[0])] = v;
  }
  return true;
}

std::string FormatStats(const std::map<std::string, int64_t>& stats) {
  auto get = [&](const std::string& k) -> int64_t {
    auto it = stats.find(k);
    return it == stats.end() ? -1 : it->second;
  };
  std::string out =
      absl::StrCat("count=", get("count"), ",bytes=", get("bytes"));
  bool first = true;
  for (const auto& [k, v] : stats) {  // std::map: sorted, as ZooKeeper sorts
    if (k == "count" || k == "bytes") continue;
    if (first) out += "=";
    first = false;
    absl::StrAppend(&out, ";", k, "=", v);
  }
  return out;
}

}  // namespace

namespace {

// Java's int/long arithmetic wraps; C++'s signed overflow is undefined.
int32_t WrapAdd(int32_t a, int32_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(a) +
                              static_cast<uint32_t>(b));
}
int64_t WrapAdd(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) +
                              static_cast<uint64_t>(b));
}

}  // namespace

std::string ZkParent(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

ZkTree::ZkTree() = default;

const engine::AclVector& ZkTree::acl(int32_t index) const {
  static const engine::AclVector* const kOpen =
      new engine::AclVector(engine::OpenAclUnsafe());
  if (index < 0 || static_cast<size_t>(index) >= acls_.size()) return *kOpen;
  return acls_[static_cast<size_t>(index)];
}

int32_t ZkTree::InternAcl(const engine::AclVector& acl) {
  const std::string fp = engine::AclListFingerprint(acl);
  auto [it, inserted] =
      acl_ids_.try_emplace(fp, static_cast<int32_t>(acls_.size()));
  if (inserted) acls_.push_back(acl);
  return it->second;
}

absl::Status ZkTree::AddAclCacheEntry(int64_t index, engine::AclVector acl) {
  snapshot_acl_[index] = InternAcl(acl);
  return absl::OkStatus();
}

absl::Status ZkTree::AddSnapshotNode(std::string path, std::string data,
                                     bool data_null, int64_t acl_index,
                                     const StatPersisted& stat) {
  if (path.empty()) path.push_back('/');  // ZooKeeper writes the root as ""
  const bool root = path == "/";
  if (nodes_.empty() != root) {
    return absl::InvalidArgumentError(
        root ? "the root node appears twice"
             : absl::StrCat("node ", path, " comes before the root node"));
  }
  if (!root && !engine::IsValidPath(path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid node path \"", absl::CHexEscape(path), "\""));
  }
  TreeNode node;
  node.stat = stat;
  node.data = std::move(data);
  node.data_null = data_null;
  if (acl_index != -1) {
    auto it = snapshot_acl_.find(acl_index);
    if (it == snapshot_acl_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("node ", path, " refers to ACL index ", acl_index,
                       " which is not in the snapshot's ACL cache"));
    }
    node.acl = it->second;
  }
  if (!root) {
    auto parent = nodes_.find(ZkParent(path));
    if (parent == nodes_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("node ", path, ": its parent ", ZkParent(path),
                       " is not in the snapshot before it"));
    }
    parent->second.children.insert(BaseOf(path));
    if (engine::IsSessionOwner(stat.ephemeral_owner)) {
      ephemerals_[stat.ephemeral_owner].insert(path);
    }
  }
  if (!nodes_.try_emplace(path, std::move(node)).second) {
    return absl::InvalidArgumentError(
        absl::StrCat("node ", path, " appears twice"));
  }
  return absl::OkStatus();
}

void ZkTree::FinishSnapshot(int64_t snapshot_zxid) {
  last_processed_zxid_ = snapshot_zxid;
  // DataTree.setupQuota: every leaf ".../zookeeper_limits" under the quota
  // root names a quota; its stats node is recomputed.
  std::vector<std::string> stack = {std::string(kQuotaRoot)};
  while (!stack.empty()) {
    const std::string path = std::move(stack.back());
    stack.pop_back();
    auto it = nodes_.find(path);
    if (it == nodes_.end()) continue;
    if (it->second.children.empty()) {
      const std::string end = absl::StrCat("/", kLimitNode);
      const size_t at = path.find(end);
      if (absl::EndsWith(path, end) && at > kQuotaRoot.size()) {
        const std::string real =
            path.substr(kQuotaRoot.size(), at - kQuotaRoot.size());
        RecomputeQuota(real);
        quota_prefixes_.insert(real);
      }
      continue;
    }
    for (const std::string& c : it->second.children) {
      stack.push_back(absl::StrCat(path, "/", c));
    }
  }
}

std::string ZkTree::MaxQuotaPrefix(const std::string& path) const {
  std::string best;
  for (const std::string& p : quota_prefixes_) {
    if (p.size() > best.size() &&
        (path == p || absl::StartsWith(path, absl::StrCat(p, "/")))) {
      best = p;
    }
  }
  if (best == "/zookeeper") return "";
  return best;
}

void ZkTree::Counts(const std::string& path, int64_t* count,
                    int64_t* bytes) const {
  std::vector<std::string> stack = {path};  // iterative: trees can be deep
  while (!stack.empty()) {
    const std::string p = std::move(stack.back());
    stack.pop_back();
    auto it = nodes_.find(p);
    if (it == nodes_.end()) continue;
    *count += 1;
    *bytes += static_cast<int64_t>(it->second.data.size());
    for (const std::string& c : it->second.children) {
      stack.push_back(p == "/" ? absl::StrCat("/", c)
                               : absl::StrCat(p, "/", c));
    }
  }
}

void ZkTree::RecomputeQuota(const std::string& prefix) {
  auto stat = nodes_.find(absl::StrCat(kQuotaRoot, prefix, "/", kStatNode));
  if (stat == nodes_.end()) return;
  int64_t count = 0, bytes = 0;
  Counts(prefix, &count, &bytes);
  stat->second.data = absl::StrCat("count=", count, ",bytes=", bytes);
  stat->second.data_null = false;
}

void ZkTree::UpdateQuotaStat(const std::string& prefix, int64_t bytes_diff,
                             int64_t count_diff) {
  auto stat = nodes_.find(absl::StrCat(kQuotaRoot, prefix, "/", kStatNode));
  if (stat == nodes_.end()) return;
  std::map<std::string, int64_t> stats;
  if (!ParseStats(stat->second.data, &stats)) return;
  auto get = [&](const char* k) {
    auto it = stats.find(k);
    return it == stats.end() ? -1 : it->second;
  };
  stats["count"] = WrapAdd(get("count"), count_diff);
  stats["bytes"] = WrapAdd(get("bytes"), bytes_diff);
  stat->second.data = FormatStats(stats);
  stat->second.data_null = false;
}

absl::Status ZkTree::Apply(const Txn& txn) {
  const TxnHeader& h = txn.header;
  // FileTxnSnapLog.processTransaction: the session table first.
  if (h.type == op::kCreateSession) {
    sessions_[h.client_id] = txn.body.timeout_ms;
    session_created_[h.client_id] = h.zxid;
  } else if (h.type == op::kCloseSession) {
    sessions_.erase(h.client_id);
    session_created_.erase(h.client_id);
  }
  absl::Status s = ApplyBody(h, txn.body);
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("txn zxid 0x", absl::Hex(h.zxid), ": ", s.message()));
  }
  last_processed_zxid_ = std::max(last_processed_zxid_, h.zxid);
  return absl::OkStatus();
}

absl::Status ZkTree::ApplyBody(const TxnHeader& h, const TxnBody& b) {
  auto check_path = [&]() -> absl::Status {
    if (b.path == "/" || !engine::IsValidPath(b.path)) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid path \"", absl::CHexEscape(b.path),
                       "\" in a txn of type ", b.type));
    }
    return absl::OkStatus();
  };
  switch (b.type) {
    case op::kCreate:
    case op::kCreate2:
    case op::kCreateTtl:
    case op::kCreateContainer: {
      if (absl::Status s = check_path(); !s.ok()) return s;
      int64_t owner = 0;
      if (b.type == op::kCreateTtl) {
        owner = engine::kTtlOwnerMask | b.ttl_ms;
      } else if (b.type == op::kCreateContainer) {
        owner = engine::kContainerOwner;
      } else if (b.ephemeral) {
        owner = h.client_id;
      }
      const bool existed = CreateNode(h, b, owner);
      if (existed) {
        ++ignored_ops_;
        // DataTree.processTxn: a plain create that finds its node (fuzzy
        // snapshot) still moves the parent's cversion and pzxid forward.
        if (b.type == op::kCreate) {
          SetCversionPzxid(ZkParent(b.path), b.parent_cversion, h.zxid);
        }
      }
      return absl::OkStatus();
    }
    case op::kDelete:
    case op::kDeleteContainer:
      if (absl::Status s = check_path(); !s.ok()) return s;
      DeleteNode(b.path, h.zxid);
      return absl::OkStatus();
    case op::kSetData:
    case op::kReconfig: {
      if (b.path != "/") {
        if (absl::Status s = check_path(); !s.ok()) return s;
      }
      auto it = nodes_.find(b.path);
      if (it == nodes_.end()) {
        ++ignored_ops_;
        return absl::OkStatus();
      }
      TreeNode& n = it->second;
      const int64_t diff = static_cast<int64_t>(b.data.size()) -
                           static_cast<int64_t>(n.data.size());
      n.data = b.data;
      n.data_null = b.data_null;
      n.stat.mtime_ms = h.time_ms;
      n.stat.mzxid = h.zxid;
      n.stat.version = b.version;
      if (const std::string prefix = MaxQuotaPrefix(b.path); !prefix.empty()) {
        UpdateQuotaStat(prefix, diff, 0);
      }
      return absl::OkStatus();
    }
    case op::kSetAcl: {
      if (b.path != "/") {
        if (absl::Status s = check_path(); !s.ok()) return s;
      }
      auto it = nodes_.find(b.path);
      if (it == nodes_.end()) {
        ++ignored_ops_;
        return absl::OkStatus();
      }
      it->second.stat.aversion = b.version;
      it->second.acl = InternAcl(b.acl);
      return absl::OkStatus();
    }
    case op::kCloseSession:
      KillSession(h.client_id, h.zxid, b);
      return absl::OkStatus();
    case op::kMulti: {
      // A multi with an error sub-txn was rolled back: nothing to apply.
      for (const TxnBody& sub : b.sub) {
        if (sub.type == op::kError) return absl::OkStatus();
      }
      for (const TxnBody& sub : b.sub) {
        TxnHeader sub_header = h;
        sub_header.type = sub.type;
        if (absl::Status s = ApplyBody(sub_header, sub); !s.ok()) return s;
      }
      return absl::OkStatus();
    }
    case op::kCreateSession:
    case op::kCheck:
    case op::kError:
      return absl::OkStatus();
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unsupported txn type ", b.type));
  }
}

bool ZkTree::CreateNode(const TxnHeader& h, const TxnBody& b, int64_t owner) {
  const std::string parent_path = ZkParent(b.path);
  auto parent_it = nodes_.find(parent_path);
  if (parent_it == nodes_.end()) {
    ++ignored_ops_;  // NONODE, ignored on replay
    return false;
  }
  TreeNode& parent = parent_it->second;
  const int32_t acl = InternAcl(b.acl);
  const std::string name = BaseOf(b.path);
  // 3.8.0 tests the parent's child set and leaves an existing node as it is
  // (later versions also replace its ACL).
  if (parent.children.count(name) > 0) return true;
  int32_t parent_cversion = b.parent_cversion;
  if (parent_cversion == -1) {
    parent_cversion = WrapAdd(parent.stat.cversion, int32_t{1});
  }
  // Only forward: replaying the create of a node created and deleted within
  // the fuzzy range must not undo a later cversion/pzxid.
  if (parent_cversion > parent.stat.cversion) {
    parent.stat.cversion = parent_cversion;
    parent.stat.pzxid = h.zxid;
  }
  parent.children.insert(name);
  TreeNode child;
  child.stat.czxid = child.stat.mzxid = child.stat.pzxid = h.zxid;
  child.stat.ctime_ms = child.stat.mtime_ms = h.time_ms;
  child.stat.ephemeral_owner = owner;
  child.data = b.data;
  child.data_null = b.data_null;
  child.acl = acl;
  nodes_.insert_or_assign(b.path, std::move(child));
  if (engine::IsSessionOwner(owner)) ephemerals_[owner].insert(b.path);

  if (absl::StartsWith(parent_path, kQuotaRoot)) {
    const std::string prefix = parent_path.substr(kQuotaRoot.size());
    if (!prefix.empty() && name == kLimitNode) {
      quota_prefixes_.insert(prefix);
    } else if (!prefix.empty() && name == kStatNode) {
      RecomputeQuota(prefix);
    }
  }
  if (const std::string prefix = MaxQuotaPrefix(b.path); !prefix.empty()) {
    UpdateQuotaStat(prefix, static_cast<int64_t>(b.data.size()), 1);
  }
  return false;
}

void ZkTree::DeleteNode(const std::string& path, int64_t zxid) {
  const std::string parent_path = ZkParent(path);
  auto parent_it = nodes_.find(parent_path);
  if (parent_it == nodes_.end()) {
    ++ignored_ops_;
    return;
  }
  TreeNode& parent = parent_it->second;
  parent.children.erase(BaseOf(path));
  if (zxid > parent.stat.pzxid) parent.stat.pzxid = zxid;
  auto it = nodes_.find(path);
  if (it == nodes_.end()) {
    ++ignored_ops_;  // already gone (fuzzy snapshot)
    return;
  }
  const int64_t owner = it->second.stat.ephemeral_owner;
  const int64_t bytes = static_cast<int64_t>(it->second.data.size());
  nodes_.erase(it);
  if (engine::IsSessionOwner(owner)) {
    if (auto e = ephemerals_.find(owner); e != ephemerals_.end()) {
      e->second.erase(path);
    }
  }
  if (absl::StartsWith(parent_path, kQuotaRoot) && BaseOf(path) == kLimitNode) {
    const std::string prefix = parent_path.substr(kQuotaRoot.size());
    if (!prefix.empty()) quota_prefixes_.erase(prefix);
  }
  if (const std::string prefix = MaxQuotaPrefix(path); !prefix.empty()) {
    UpdateQuotaStat(prefix, -bytes, -1);
  }
}

void ZkTree::KillSession(int64_t session, int64_t zxid, const TxnBody& b) {
  std::set<std::string> local;
  if (auto it = ephemerals_.find(session); it != ephemerals_.end()) {
    local = std::move(it->second);
    ephemerals_.erase(it);
  }
  if (b.has_paths_to_delete) {
    for (const std::string& p : b.paths_to_delete) {
      if (p == "/" || !engine::IsValidPath(p)) continue;
      DeleteNode(p, zxid);
      local.erase(p);
    }
  }
  for (const std::string& p : local) DeleteNode(p, zxid);
}

void ZkTree::SetCversionPzxid(const std::string& parent, int32_t cversion,
                              int64_t zxid) {
  auto it = nodes_.find(parent);
  if (it == nodes_.end()) return;
  StatPersisted& st = it->second.stat;
  if (cversion == -1) cversion = WrapAdd(st.cversion, int32_t{1});
  if (cversion > st.cversion) {
    st.cversion = cversion;
    st.pzxid = zxid;
  }
}

uint64_t ZkTree::Digest() const {
  uint64_t sum = 0;
  for (const auto& [path, node] : nodes_) {
    sum += NodeDigest(path, node.data, node.stat);
  }
  return sum;
}

}  // namespace rockeeper::rkutl::zk
