#include "tools/rkutl/restore_plan.h"

#include <algorithm>
#include <map>
#include <optional>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "engine/path_utils.h"
#include "tools/rkutl/tree_walk.h"

namespace rockeeper::rkutl {
namespace {

using engine::AclVector;
using engine::Znode;
using record::v1::MultiOp;
using record::v1::Txn;
using record::v1::TxnType;

bool SameAcl(const AclVector& a, const AclVector& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].perms() != b[i].perms() || a[i].scheme() != b[i].scheme() ||
        a[i].id() != b[i].id()) {
      return false;
    }
  }
  return true;
}

// ZooKeeper CreateMode flags matching a raw owner (informational only).
int32_t FlagsForOwner(int64_t raw_owner) {
  if (engine::IsContainerOwner(raw_owner)) return 4;
  if (engine::IsTtlOwner(raw_owner)) return 5;
  return raw_owner != 0 ? 1 : 0;
}

class Planner {
 public:
  Planner(const DumpContents& dump, const engine::StateDb& target)
      : dump_(dump), target_(target) {}

  absl::StatusOr<RestorePlan> Run() {
    if (!dump_.header.complete()) {
      return absl::InvalidArgumentError(
          "the dump is partial (made with --path or --max-depth); restore "
          "needs a dump of the whole tree");
    }
    if (absl::Status s = Index(); !s.ok()) return s;
    for (const NodeEntry& n : dump_.nodes) {
      absl::StatusOr<NodeEntry> init = InitialState(n);
      if (!init.ok()) return init.status();
      PlanNode(n, *init);
    }
    PlanSessions();
    AssignFreeZxids();
    Emit();
    return std::move(plan_);
  }

 private:
  struct Group {
    std::optional<int64_t> time_ms;
    std::vector<const NodeEntry*> creates;
    std::vector<const NodeEntry*> set_data;
    std::vector<const NodeEntry*> fixes;
  };
  // A change that needs a zxid of its own anywhere after `min_zxid`.
  struct FreeRequest {
    const NodeEntry* acl_node = nullptr;             // a setACL, or
    const engine::SessionRecord* session = nullptr;  // a createSession
    int64_t min_zxid = 0;
  };

  void Warn(std::string message) {
    plan_.warnings.push_back(std::move(message));
  }

  absl::Status Index() {
    for (const NodeEntry& n : dump_.nodes) {
      if (!engine::IsValidPath(n.path)) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid path \"", n.path, "\" in the dump"));
      }
      if (!by_path_.emplace(n.path, &n).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("node ", n.path, " appears twice in the dump"));
      }
    }
    if (by_path_.find("/") == by_path_.end()) {
      return absl::InvalidArgumentError("the dump has no root node \"/\"");
    }
    for (const NodeEntry& n : dump_.nodes) {
      if (n.path == "/") continue;
      const absl::string_view parent = engine::ParentPath(n.path);
      if (by_path_.find(parent) == by_path_.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "node ", n.path, ": its parent ", parent, " is not in the dump"));
      }
      kids_[parent].push_back(&n);
    }
    return absl::OkStatus();
  }

  // The node as its create leaves it, or the built-in node of a fresh DB.
  absl::StatusOr<NodeEntry> InitialState(const NodeEntry& n) const {
    NodeEntry init;
    init.path = n.path;
    if (n.node.czxid > 0) {
      Znode& z = init.node;
      z.czxid = z.mzxid = z.pzxid = n.node.czxid;
      z.ctime_ms = z.mtime_ms = n.node.ctime_ms;
      z.ephemeral_owner = n.node.ephemeral_owner;
      z.data = n.node.data;
      z.data_null = n.node.data_null;
      init.acl = n.acl;
      return init;
    }
    absl::StatusOr<Znode> builtin = target_.GetZnode(n.path);
    if (absl::IsNotFound(builtin.status())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "node ", n.path,
          " has cZxid 0 but is not a built-in node (only built-in nodes "
          "exist without a creating txn)"));
    }
    if (!builtin.ok()) return builtin.status();
    absl::StatusOr<AclVector> acl = target_.GetAcl(builtin->acl_id);
    if (!acl.ok()) return acl.status();
    init.node = *std::move(builtin);
    init.acl = *std::move(acl);
    return init;
  }

  void UseTime(int64_t zxid, int64_t time_ms, const std::string& path) {
    Group& g = groups_[zxid];
    if (!g.time_ms.has_value()) {
      g.time_ms = time_ms;
    } else if (*g.time_ms != time_ms) {
      Warn(absl::StrCat(path, ": time ", time_ms, " at zxid ", Hex(zxid),
                        " differs from ", *g.time_ms,
                        " of another change at that zxid; one txn has one "
                        "time"));
    }
  }

  void PlanNode(const NodeEntry& n, const NodeEntry& init) {
    const Znode& want = n.node;
    const bool created = want.czxid > 0;
    if (created) {
      groups_[want.czxid].creates.push_back(&n);
      UseTime(want.czxid, want.ctime_ms, n.path);
    } else if (want.ephemeral_owner != init.node.ephemeral_owner) {
      Warn(
          absl::StrCat(n.path, ": the owner of a built-in node cannot change"));
    }
    PlanData(n, init);
    PlanChildStats(n, init);
    if (want.aversion != init.node.aversion || !SameAcl(n.acl, init.acl)) {
      free_requests_.push_back({&n, nullptr, created ? want.czxid : 0});
    }
  }

  void PlanData(const NodeEntry& n, const NodeEntry& init) {
    const Znode& want = n.node;
    if (want.mzxid != init.node.mzxid || want.version != init.node.version ||
        want.mtime_ms != init.node.mtime_ms) {
      if (want.mzxid <= 0) {
        Warn(absl::StrCat(n.path,
                          ": mZxid/dataVersion/mtime cannot be set "
                          "without a txn (mZxid is 0)"));
        return;
      }
      if (want.mzxid < want.czxid) {
        Warn(absl::StrCat(n.path, ": mZxid is before cZxid"));
      }
      groups_[want.mzxid].set_data.push_back(&n);
      UseTime(want.mzxid, want.mtime_ms, n.path);
      return;
    }
    if (want.czxid <= 0 && want.data != init.node.data) {
      if (n.path == "/") {
        Warn("/: the data of the root cannot be set without a txn");
        return;
      }
      data_patches_.emplace_back(n.path, want.data);
    }
  }

  // pZxid, cversion and numChildren: the node's own create, then each
  // child's create (which carries the final cversion and numChildren).
  void PlanChildStats(const NodeEntry& n, const NodeEntry& init) {
    const Znode& want = n.node;
    int64_t last_child = 0;
    if (auto it = kids_.find(n.path); it != kids_.end()) {
      for (const NodeEntry* kid : it->second) {
        last_child = std::max(last_child, kid->node.czxid);
      }
    }
    auto have = std::make_tuple(init.node.pzxid, init.node.cversion,
                                init.node.num_children);
    if (last_child > 0 && last_child >= want.czxid) {
      have = std::make_tuple(last_child, want.cversion, want.num_children);
    }
    if (have == std::make_tuple(want.pzxid, want.cversion, want.num_children)) {
      return;
    }
    if (want.pzxid <= 0) {
      Warn(absl::StrCat(n.path,
                        ": pZxid/cversion/numChildren cannot be set "
                        "without a txn (pZxid is 0)"));
      return;
    }
    if (want.pzxid < last_child || want.pzxid < want.czxid) {
      Warn(absl::StrCat(n.path,
                        ": pZxid is before the cZxid of the node or "
                        "of a child"));
    }
    groups_[want.pzxid].fixes.push_back(&n);
  }

  void PlanSessions() {
    for (const engine::SessionRecord& s : dump_.sessions) {
      const int64_t z = s.created_zxid();
      if (z > 0 && groups_.count(z) == 0 && sessions_at_.count(z) == 0) {
        sessions_at_[z] = &s;
      } else {
        free_requests_.push_back({nullptr, &s, 0});
      }
    }
  }

  bool Used(int64_t zxid) const {
    return groups_.count(zxid) > 0 || sessions_at_.count(zxid) > 0 ||
           acls_at_.count(zxid) > 0;
  }

  int64_t MaxUsed() const {
    int64_t m = 0;
    if (!groups_.empty()) m = std::max(m, groups_.rbegin()->first);
    if (!sessions_at_.empty()) m = std::max(m, sessions_at_.rbegin()->first);
    if (!acls_at_.empty()) m = std::max(m, acls_at_.rbegin()->first);
    return m;
  }

  void Assign(const FreeRequest& r, int64_t zxid) {
    if (r.acl_node != nullptr) {
      acls_at_[zxid] = r.acl_node;
    } else {
      sessions_at_[zxid] = r.session;
      if (r.session->created_zxid() == 0) return;  // unknown: any zxid will do
      Warn(absl::StrCat("session ", Hex(r.session->session_id()),
                        ": createdZxid ", Hex(r.session->created_zxid()),
                        " is taken by another change; restored with ",
                        Hex(zxid)));
    }
  }

  // setACLs and displaced sessions go to unused zxids (largest first, from
  // lastAppliedZxid down), above lastAppliedZxid only if none is left.
  void AssignFreeZxids() {
    std::sort(free_requests_.begin(), free_requests_.end(),
              [](const FreeRequest& a, const FreeRequest& b) {
                return a.min_zxid > b.min_zxid;
              });
    int64_t candidate = dump_.header.last_applied_zxid;
    std::vector<const FreeRequest*> overflow;
    for (const FreeRequest& r : free_requests_) {
      while (candidate > r.min_zxid && Used(candidate)) --candidate;
      if (candidate > r.min_zxid) {
        Assign(r, candidate--);
      } else {
        overflow.push_back(&r);
      }
    }
    for (const FreeRequest* r : overflow) {
      const int64_t z = std::max(MaxUsed(), dump_.header.last_applied_zxid) + 1;
      Warn(absl::StrCat(
          r->acl_node != nullptr ? r->acl_node->path : "a session",
          ": no unused zxid left at or below lastAppliedZxid; using ", Hex(z),
          " (the restored DB ends at a later zxid)"));
      Assign(*r, z);
    }
  }

  std::string TempChildPath(const NodeEntry& n) const {
    std::string name = "rkutl-restore-tmp";
    while (by_path_.count(ChildPath(n.path, name)) > 0) name += "-";
    return ChildPath(n.path, name);
  }

  Txn MultiTxn(int64_t zxid, Group& g) const {
    Txn txn;
    txn.mutable_header()->set_zxid(zxid);
    txn.mutable_header()->set_time_ms(g.time_ms.value_or(0));
    txn.mutable_header()->set_type(record::v1::TXN_MULTI);
    std::sort(g.creates.begin(), g.creates.end(),
              [](const NodeEntry* a, const NodeEntry* b) {
                return std::make_pair(engine::PathDepth(a->path), a->path) <
                       std::make_pair(engine::PathDepth(b->path), b->path);
              });
    auto* ops = txn.mutable_multi()->mutable_ops();
    for (const NodeEntry* n : g.creates) {
      const Znode& parent = by_path_.at(engine::ParentPath(n->path))->node;
      MultiOp* op = ops->Add();
      op->set_type(record::v1::TXN_CREATE);
      auto* c = op->mutable_create();
      c->set_path(n->path);
      c->set_data(n->node.data);
      if (n->node.data_null) c->set_data_null(true);
      for (const auto& a : n->acl) *c->add_acl() = a;
      c->set_ephemeral_owner(n->node.ephemeral_owner);
      c->set_parent_cversion(parent.cversion);
      c->set_parent_num_children(std::max(parent.num_children, 1));
      c->set_flags(FlagsForOwner(n->node.ephemeral_owner));
    }
    for (const NodeEntry* n : g.set_data) {
      MultiOp* op = ops->Add();
      op->set_type(record::v1::TXN_SET_DATA);
      op->mutable_set_data()->set_path(n->path);
      op->mutable_set_data()->set_data(n->node.data);
      op->mutable_set_data()->set_data_null(n->node.data_null);
      op->mutable_set_data()->set_version(n->node.version);
    }
    for (const NodeEntry* n : g.fixes) AddChildStatsFix(*n, ops);
    return txn;
  }

  // Creating and deleting a temporary child sets the parent's cversion,
  // numChildren and pZxid to exactly the values the ops carry.
  void AddChildStatsFix(
      const NodeEntry& n,
      google::protobuf::RepeatedPtrField<MultiOp>* ops) const {
    const std::string tmp = TempChildPath(n);
    MultiOp* create = ops->Add();
    create->set_type(record::v1::TXN_CREATE);
    auto* c = create->mutable_create();
    c->set_path(tmp);
    for (const auto& a : engine::OpenAclUnsafe()) *c->add_acl() = a;
    c->set_parent_cversion(n.node.cversion);
    c->set_parent_num_children(n.node.num_children + 1);
    MultiOp* del = ops->Add();
    del->set_type(record::v1::TXN_DELETE);
    del->mutable_delete_()->set_path(tmp);
    del->mutable_delete_()->set_parent_num_children(n.node.num_children);
  }

  static Txn HeaderOnly(int64_t zxid, TxnType type) {
    Txn txn;
    txn.mutable_header()->set_zxid(zxid);
    txn.mutable_header()->set_type(type);
    return txn;
  }

  void Emit() {
    std::map<int64_t, Txn> txns;
    for (auto& [zxid, group] : groups_) txns[zxid] = MultiTxn(zxid, group);
    for (const auto& [zxid, s] : sessions_at_) {
      Txn txn = HeaderOnly(zxid, record::v1::TXN_CREATE_SESSION);
      txn.mutable_header()->set_session_id(s->session_id());
      txn.mutable_create_session()->set_timeout_ms(s->timeout_ms());
      txn.mutable_create_session()->set_password(s->password());
      txns[zxid] = std::move(txn);
    }
    for (const auto& [zxid, n] : acls_at_) {
      Txn txn = HeaderOnly(zxid, record::v1::TXN_SET_ACL);
      txn.mutable_set_acl()->set_path(n->path);
      for (const auto& a : n->acl) *txn.mutable_set_acl()->add_acl() = a;
      txn.mutable_set_acl()->set_aversion(n->node.aversion);
      txns[zxid] = std::move(txn);
    }
    const int64_t last = dump_.header.last_applied_zxid;
    const int64_t max_used = MaxUsed();
    if (max_used > last) {
      Warn(absl::StrCat("the dump has changes up to zxid ", Hex(max_used),
                        ", after its lastAppliedZxid ", Hex(last)));
    } else if (last > max_used || (txns.empty() && !data_patches_.empty())) {
      // An empty txn so that the DB ends exactly at lastAppliedZxid.
      const int64_t z = std::max<int64_t>(last, 1);
      Txn txn = HeaderOnly(z, record::v1::TXN_ERROR);
      txn.mutable_error()->set_err(0);
      txns[z] = std::move(txn);
    }
    if (!data_patches_.empty()) {
      Txn& first = txns.begin()->second;
      for (const auto& [path, data] : data_patches_) {
        auto* q = first.add_quota_updates();
        q->set_path(path);
        q->set_data(data);
      }
    }
    for (auto& [zxid, txn] : txns) plan_.txns.push_back(std::move(txn));
  }

  const DumpContents& dump_;
  const engine::StateDb& target_;
  RestorePlan plan_;
  absl::flat_hash_map<std::string, const NodeEntry*> by_path_;
  absl::flat_hash_map<std::string, std::vector<const NodeEntry*>> kids_;
  std::map<int64_t, Group> groups_;
  std::map<int64_t, const engine::SessionRecord*> sessions_at_;
  std::map<int64_t, const NodeEntry*> acls_at_;
  std::vector<FreeRequest> free_requests_;
  std::vector<std::pair<std::string, std::string>> data_patches_;
};

void CompareNode(const NodeEntry& want, const Znode& got,
                 const AclVector& got_acl, std::vector<std::string>* diffs) {
  auto field = [&](absl::string_view name, int64_t have, int64_t expected) {
    if (have != expected) {
      diffs->push_back(absl::StrCat(want.path, ": ", name, " is ", have,
                                    ", the dump has ", expected));
    }
  };
  const Znode& w = want.node;
  field("cZxid", got.czxid, w.czxid);
  field("mZxid", got.mzxid, w.mzxid);
  field("pZxid", got.pzxid, w.pzxid);
  field("ctime", got.ctime_ms, w.ctime_ms);
  field("mtime", got.mtime_ms, w.mtime_ms);
  field("dataVersion", got.version, w.version);
  field("cversion (persisted)", got.cversion, w.cversion);
  field("aclVersion", got.aversion, w.aversion);
  field("ephemeralOwner (raw)", got.ephemeral_owner, w.ephemeral_owner);
  field("numChildren", got.num_children, w.num_children);
  if (got.data != w.data) {
    diffs->push_back(absl::StrCat(want.path, ": data differs (",
                                  got.data.size(), " bytes, the dump has ",
                                  w.data.size(), ")"));
  }
  if (!SameAcl(got_acl, want.acl)) {
    diffs->push_back(absl::StrCat(want.path, ": ACL differs"));
  }
}

void CompareSessions(const std::vector<engine::SessionRecord>& got,
                     const std::vector<engine::SessionRecord>& want,
                     std::vector<std::string>* diffs) {
  absl::flat_hash_map<int64_t, const engine::SessionRecord*> have;
  for (const auto& s : got) have[s.session_id()] = &s;
  for (const auto& s : want) {
    auto it = have.find(s.session_id());
    const std::string name = absl::StrCat("session ", Hex(s.session_id()));
    if (it == have.end()) {
      diffs->push_back(absl::StrCat(name, ": missing"));
      continue;
    }
    const engine::SessionRecord& g = *it->second;
    if (g.timeout_ms() != s.timeout_ms() || g.password() != s.password() ||
        g.created_zxid() != s.created_zxid()) {
      diffs->push_back(absl::StrCat(name, ": differs (createdZxid ",
                                    Hex(g.created_zxid()), ", the dump has ",
                                    Hex(s.created_zxid()), ")"));
    }
    have.erase(it);
  }
  for (const auto& [id, s] : have) {
    diffs->push_back(absl::StrCat("session ", Hex(id), ": not in the dump"));
  }
}

}  // namespace

absl::StatusOr<RestorePlan> PlanRestore(const DumpContents& dump,
                                        const engine::StateDb& target) {
  return Planner(dump, target).Run();
}

absl::StatusOr<std::vector<std::string>> CompareWithDump(
    const engine::StateDb& db, const DumpContents& dump) {
  std::vector<std::string> diffs;
  absl::flat_hash_set<std::string> dumped;
  for (const NodeEntry& want : dump.nodes) {
    dumped.insert(want.path);
    absl::StatusOr<Znode> got = db.GetZnode(want.path);
    if (absl::IsNotFound(got.status())) {
      diffs.push_back(absl::StrCat(want.path, ": missing"));
      continue;
    }
    if (!got.ok()) return got.status();
    absl::StatusOr<AclVector> acl = db.GetAcl(got->acl_id);
    if (!acl.ok()) return acl.status();
    CompareNode(want, *got, *acl, &diffs);
  }
  absl::Status s = WalkTree(db, "/", -1, [&](const NodeEntry& e) {
    if (!dumped.contains(e.path)) {
      diffs.push_back(absl::StrCat(e.path, ": not in the dump"));
    }
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  std::vector<engine::SessionRecord> sessions;
  if (absl::Status st = db.ListSessions(&sessions); !st.ok()) return st;
  CompareSessions(sessions, dump.sessions, &diffs);
  if (db.last_applied_zxid() != dump.header.last_applied_zxid) {
    diffs.push_back(absl::StrCat("last applied zxid is ",
                                 Hex(db.last_applied_zxid()), ", the dump has ",
                                 Hex(dump.header.last_applied_zxid)));
  }
  return diffs;
}

}  // namespace rockeeper::rkutl
