#include "engine/prep.h"

#include <algorithm>
#include <functional>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "absl/strings/str_format.h"
#include "engine/path_utils.h"
#include "engine/quota.h"

namespace rockeeper::engine {
namespace {

using record::v1::TxnType;

constexpr int64_t kMaxTtlMs = (int64_t{1} << 40) - 1;

int32_t JavaIntIncrement(int32_t v) {
  return static_cast<int32_t>(static_cast<uint32_t>(v) + 1u);
}

bool IsProtectedFromDelete(absl::string_view path) {
  return path == "/" || path == "/zookeeper" || path == "/zookeeper/quota" ||
         path == "/zookeeper/config";
}

TxnType CreateTxnType(int32_t flags) {
  if (flags == kContainer) return record::v1::TXN_CREATE_CONTAINER;
  if (flags == kPersistentWithTtl || flags == kPersistentSequentialWithTtl) {
    return record::v1::TXN_CREATE_TTL;
  }
  return record::v1::TXN_CREATE;
}

bool IsEphemeralCreate(const CreateRequest& c) {
  return c.flags == kEphemeral || c.flags == kEphemeralSequential;
}

bool CreatesEphemeral(const WriteRequest& request) {
  if (const auto* c = std::get_if<CreateRequest>(&request)) {
    return IsEphemeralCreate(*c);
  }
  if (const auto* m = std::get_if<MultiRequest>(&request)) {
    for (const auto& op : m->ops) {
      const auto* c = std::get_if<CreateRequest>(&op);
      if (c != nullptr && IsEphemeralCreate(*c)) return true;
    }
  }
  return false;
}

// Result of one op's preparation: a ZooKeeper code, or an I/O failure.
using OpResult = absl::StatusOr<ZkError>;

}  // namespace

// Changes made by the request being prepared, layered over the overlay.
class Prep::Scratch {
 public:
  explicit Scratch(const Prep* prep) : prep_(prep) {}

  absl::StatusOr<NodeView> Get(absl::string_view path) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(prep_->mu_) {
    if (auto it = nodes_.find(path); it != nodes_.end()) return it->second;
    return prep_->Lookup(path);
  }
  void Put(absl::string_view path, NodeView view) {
    nodes_[path] = std::move(view);
  }
  void PutSession(int64_t id, bool exists) { sessions_[id] = exists; }
  const absl::flat_hash_map<std::string, NodeView>& nodes() const {
    return nodes_;
  }
  // For the end of the request: its views move into the overlay.
  absl::flat_hash_map<std::string, NodeView>& mutable_nodes() { return nodes_; }
  const absl::flat_hash_map<int64_t, bool>& sessions() const {
    return sessions_;
  }

 private:
  const Prep* prep_;
  absl::flat_hash_map<std::string, NodeView> nodes_;
  absl::flat_hash_map<int64_t, bool> sessions_;
};

namespace {

// Everything one request's preparation needs; keeps the op functions short.
struct OpEnv {
  const RequestContext& ctx;
  const PrepOptions& options;
  int64_t zxid;
  int64_t time_ms;
  // Charges a change of node count / data bytes at `path` to its quota
  // root; QUOTAEXCEEDED if that breaks an enforced hard limit.
  // FunctionRefs: the lambdas live in Prepare's frame, and a std::function
  // holding one that captures three pointers would allocate per request.
  absl::FunctionRef<OpResult(const std::string& path, int64_t count_delta,
                             int64_t bytes_delta)>
      charge;
  // StatsTrack text of the current usage of the subtree at a quota root.
  absl::FunctionRef<absl::StatusOr<std::string>(const std::string& root)>
      initial_stats;

  bool Allowed(const AclVector& acl, int32_t perm) const {
    return options.skip_acl || HasPermission(acl, perm, ctx.auth_ids);
  }
};

}  // namespace

Prep::Prep(const StateDb* db, PrepOptions options)
    : db_(db), options_(options) {}

absl::StatusOr<Prep::NodeView> Prep::Lookup(absl::string_view path) const {
  if (auto it = pending_.find(path); it != pending_.end()) {
    return it->second.second;
  }
  NodeView view;
  absl::StatusOr<Znode> node = db_->GetZnode(path);
  if (absl::IsNotFound(node.status())) return view;
  if (!node.ok()) return node.status();
  absl::StatusOr<AclVector> acl = db_->GetAcl(node->acl_id);
  if (!acl.ok()) return acl.status();
  view.exists = true;
  view.node = *std::move(node);
  view.acl = *std::move(acl);
  view.acl_id_known = true;
  return view;
}

absl::StatusOr<bool> Prep::SessionExists(int64_t session_id) const {
  if (auto it = pending_sessions_.find(session_id);
      it != pending_sessions_.end()) {
    return it->second.second;
  }
  absl::StatusOr<SessionRecord> rec = db_->GetSession(session_id);
  if (absl::IsNotFound(rec.status())) return false;
  if (!rec.ok()) return rec.status();
  return true;
}

absl::StatusOr<std::vector<std::string>> Prep::EphemeralsOf(
    int64_t session_id) const {
  std::vector<std::string> committed;
  if (absl::Status s = db_->ListEphemerals(session_id, &committed); !s.ok()) {
    return s;
  }
  // Committed ephemerals not deleted by a pending txn, plus pending creates.
  absl::flat_hash_set<std::string> paths;
  for (std::string& path : committed) {
    auto it = pending_.find(path);
    if (it == pending_.end() || it->second.second.exists) {
      paths.insert(std::move(path));
    }
  }
  for (const auto& [path, entry] : pending_) {
    if (entry.second.exists &&
        entry.second.node.ephemeral_owner == session_id) {
      paths.insert(path);
    }
  }
  std::vector<std::string> out(paths.begin(), paths.end());
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

// --- The per-op preparation functions -------------------------------------
// Each returns kOk after recording its changes in `scratch` and filling its
// txn body, or the first ZooKeeper error in ZooKeeper's validation order.

template <typename ScratchT>
OpResult PrepCreate(const OpEnv& env, const CreateRequest& req,
                    ScratchT& scratch, record::v1::CreateTxn* out) {
  const int32_t flags = req.flags;
  if (flags < kPersistent || flags > kPersistentSequentialWithTtl) {
    return ZkError::kBadArguments;
  }
  const bool is_ttl =
      flags == kPersistentWithTtl || flags == kPersistentSequentialWithTtl;
  if (is_ttl && !env.options.extended_types_enabled) {
    return ZkError::kUnimplemented;
  }
  if (is_ttl ? (req.ttl_ms < 1 || req.ttl_ms > kMaxTtlMs) : req.ttl_ms >= 0) {
    return ZkError::kBadArguments;
  }
  const bool ephemeral = flags == kEphemeral || flags == kEphemeralSequential;
  if (ephemeral && env.ctx.session_id == 0) return ZkError::kBadArguments;
  const size_t last_slash = req.path.rfind('/');
  if (last_slash == std::string::npos ||
      req.path.find('\0') != std::string::npos) {
    return ZkError::kBadArguments;
  }
  AclVector acl;
  if (ZkError e = FixupAcl(req.acl, env.ctx.auth_ids, &acl);
      e != ZkError::kOk) {
    return e;
  }
  const std::string parent_path =
      last_slash == 0 ? "/" : req.path.substr(0, last_slash);
  auto parent = scratch.Get(parent_path);
  if (!parent.ok()) return parent.status();
  if (!parent->exists) return ZkError::kNoNode;
  if (!env.Allowed(parent->acl, perms::kCreate)) return ZkError::kNoAuth;
  std::string path = req.path;
  const bool sequential = flags == kPersistentSequential ||
                          flags == kEphemeralSequential ||
                          flags == kPersistentSequentialWithTtl;
  if (sequential) path += absl::StrFormat("%010d", parent->node.cversion);
  if (!IsValidPath(path)) return ZkError::kBadArguments;
  auto existing = scratch.Get(path);
  if (!existing.ok()) return existing.status();
  if (existing->exists) return ZkError::kNodeExists;
  if (IsSessionOwner(parent->node.ephemeral_owner)) {
    return ZkError::kNoChildrenForEphemerals;
  }
  OpResult charged = env.charge(path, 1, static_cast<int64_t>(req.data.size()));
  if (!charged.ok() || *charged != ZkError::kOk) return charged;
  std::string data = req.data;
  bool data_null = req.data_null && req.data.empty();
  if (auto root = QuotaRootOf(path, kQuotaStatsNode)) {
    absl::StatusOr<std::string> usage = env.initial_stats(*root);
    if (!usage.ok()) return usage.status();
    data = *std::move(usage);
    data_null = false;
  }

  int64_t owner = 0;
  if (ephemeral) owner = env.ctx.session_id;
  if (flags == kContainer) owner = kContainerOwner;
  if (is_ttl) owner = kTtlOwnerMask | req.ttl_ms;

  auto parent_after = *std::move(parent);
  parent_after.node.cversion = JavaIntIncrement(parent_after.node.cversion);
  parent_after.node.num_children =
      JavaIntIncrement(parent_after.node.num_children);
  parent_after.node.pzxid = env.zxid;

  auto child = *std::move(existing);
  child.exists = true;
  child.node = Znode();
  child.node.czxid = child.node.mzxid = child.node.pzxid = env.zxid;
  child.node.ctime_ms = child.node.mtime_ms = env.time_ms;
  child.node.ephemeral_owner = owner;
  child.node.data = data;
  child.node.data_null = data_null;
  child.acl = acl;
  child.acl_id_known = false;  // Apply interns the ACL

  out->set_path(path);
  out->set_data(data);
  if (data_null) out->set_data_null(true);
  for (Acl& a : acl) *out->add_acl() = std::move(a);
  out->set_ephemeral_owner(owner);
  out->set_parent_cversion(parent_after.node.cversion);
  out->set_parent_num_children(parent_after.node.num_children);
  out->set_flags(flags);
  scratch.Put(parent_path, std::move(parent_after));
  scratch.Put(path, std::move(child));
  return ZkError::kOk;
}

// Removes `path` (known to exist as `node`) and updates its parent.
template <typename ScratchT>
OpResult RemoveNode(const OpEnv& env, const std::string& path,
                    const Znode& node, ScratchT& scratch,
                    record::v1::DeleteTxn* out) {
  const std::string parent_path(ParentPath(path));
  auto parent = scratch.Get(parent_path);
  if (!parent.ok()) return parent.status();
  if (!parent->exists) return ZkError::kNoNode;
  OpResult charged =
      env.charge(path, -1, -static_cast<int64_t>(node.data.size()));
  if (!charged.ok()) return charged;
  auto parent_after = *std::move(parent);
  parent_after.node.num_children -= 1;
  parent_after.node.pzxid = env.zxid;
  out->set_path(path);
  out->set_parent_num_children(parent_after.node.num_children);
  out->set_ephemeral_owner(node.ephemeral_owner);
  scratch.Put(parent_path, std::move(parent_after));
  scratch.Put(path, {});
  return ZkError::kOk;
}

template <typename ScratchT>
OpResult PrepDelete(const OpEnv& env, const DeleteRequest& req,
                    ScratchT& scratch, record::v1::DeleteTxn* out) {
  if (IsProtectedFromDelete(req.path) || !IsValidPath(req.path)) {
    return ZkError::kBadArguments;
  }
  auto parent = scratch.Get(ParentPath(req.path));
  if (!parent.ok()) return parent.status();
  if (!parent->exists) return ZkError::kNoNode;
  if (!env.Allowed(parent->acl, perms::kDelete)) return ZkError::kNoAuth;
  auto node = scratch.Get(req.path);
  if (!node.ok()) return node.status();
  if (!node->exists) return ZkError::kNoNode;
  if (req.version != -1 && req.version != node->node.version) {
    return ZkError::kBadVersion;
  }
  if (node->node.num_children > 0) return ZkError::kNotEmpty;
  return RemoveNode(env, req.path, node->node, scratch, out);
}

template <typename ScratchT>
OpResult PrepDeleteContainer(const OpEnv& env,
                             const DeleteContainerRequest& req,
                             ScratchT& scratch, record::v1::DeleteTxn* out) {
  if (IsProtectedFromDelete(req.path) || !IsValidPath(req.path)) {
    return ZkError::kBadArguments;
  }
  auto node = scratch.Get(req.path);
  if (!node.ok()) return node.status();
  if (!node->exists) return ZkError::kNoNode;
  const int64_t owner = node->node.ephemeral_owner;
  if (!IsContainerOwner(owner) && !IsTtlOwner(owner)) {
    return ZkError::kBadArguments;
  }
  if (node->node.num_children > 0) return ZkError::kNotEmpty;
  return RemoveNode(env, req.path, node->node, scratch, out);
}

// The fields of SetDataTxn.rest: all of `n` but what the txn itself sets.
void SetRest(const Znode& n, record::v1::ZnodeRecord* rest) {
  rest->set_czxid(n.czxid);
  rest->set_pzxid(n.pzxid);
  rest->set_ctime_ms(n.ctime_ms);
  rest->set_cversion(n.cversion);
  rest->set_aversion(n.aversion);
  rest->set_ephemeral_owner(n.ephemeral_owner);
  rest->set_num_children(n.num_children);
  rest->set_acl_id(n.acl_id);
}

template <typename ScratchT>
OpResult PrepSetData(const OpEnv& env, const SetDataRequest& req,
                     ScratchT& scratch, record::v1::SetDataTxn* out) {
  if (!IsValidPath(req.path)) return ZkError::kBadArguments;
  auto node = scratch.Get(req.path);
  if (!node.ok()) return node.status();
  if (!node->exists) return ZkError::kNoNode;
  if (!env.Allowed(node->acl, perms::kWrite)) return ZkError::kNoAuth;
  OpResult charged =
      env.charge(req.path, 0,
                 static_cast<int64_t>(req.data.size()) -
                     static_cast<int64_t>(node->node.data.size()));
  if (!charged.ok() || *charged != ZkError::kOk) return charged;
  if (req.version != -1 && req.version != node->node.version) {
    return ZkError::kBadVersion;
  }
  auto after = *std::move(node);
  after.node.version = JavaIntIncrement(after.node.version);
  after.node.data = req.data;
  after.node.data_null = req.data_null && req.data.empty();
  after.node.mzxid = env.zxid;
  after.node.mtime_ms = env.time_ms;
  out->set_path(req.path);
  out->set_data(req.data);
  if (after.node.data_null) out->set_data_null(true);
  out->set_version(after.node.version);
  *out->mutable_stat() = ClientStat(after.node);
  if (after.acl_id_known) SetRest(after.node, out->mutable_rest());
  scratch.Put(req.path, std::move(after));
  return ZkError::kOk;
}

template <typename ScratchT>
OpResult PrepSetAcl(const OpEnv& env, const SetAclRequest& req,
                    ScratchT& scratch, record::v1::SetAclTxn* out) {
  if (!IsValidPath(req.path)) return ZkError::kBadArguments;
  AclVector acl;
  if (ZkError e = FixupAcl(req.acl, env.ctx.auth_ids, &acl);
      e != ZkError::kOk) {
    return e;
  }
  auto node = scratch.Get(req.path);
  if (!node.ok()) return node.status();
  if (!node->exists) return ZkError::kNoNode;
  if (!env.Allowed(node->acl, perms::kAdmin)) return ZkError::kNoAuth;
  if (req.version != -1 && req.version != node->node.aversion) {
    return ZkError::kBadVersion;
  }
  auto after = *std::move(node);
  after.node.aversion = JavaIntIncrement(after.node.aversion);
  after.acl = acl;
  after.acl_id_known = false;  // Apply interns the ACL
  out->set_path(req.path);
  for (Acl& a : acl) *out->add_acl() = std::move(a);
  out->set_aversion(after.node.aversion);
  *out->mutable_stat() = ClientStat(after.node);
  scratch.Put(req.path, std::move(after));
  return ZkError::kOk;
}

template <typename ScratchT>
OpResult PrepCheck(const OpEnv& env, const CheckRequest& req, ScratchT& scratch,
                   record::v1::CheckTxn* out) {
  if (!IsValidPath(req.path)) return ZkError::kBadArguments;
  auto node = scratch.Get(req.path);
  if (!node.ok()) return node.status();
  if (!node->exists) return ZkError::kNoNode;
  if (!env.Allowed(node->acl, perms::kRead)) return ZkError::kNoAuth;
  if (req.version != -1 && req.version != node->node.version) {
    return ZkError::kBadVersion;
  }
  out->set_path(req.path);
  out->set_version(req.version);
  return ZkError::kOk;
}

template <typename ScratchT>
OpResult PrepMultiOp(const OpEnv& env, const MultiOpRequest& op,
                     ScratchT& scratch, record::v1::MultiOp* out) {
  if (const auto* c = std::get_if<CreateRequest>(&op)) {
    out->set_type(CreateTxnType(c->flags));
    return PrepCreate(env, *c, scratch, out->mutable_create());
  }
  if (const auto* d = std::get_if<DeleteRequest>(&op)) {
    out->set_type(record::v1::TXN_DELETE);
    return PrepDelete(env, *d, scratch, out->mutable_delete_());
  }
  if (const auto* s = std::get_if<SetDataRequest>(&op)) {
    out->set_type(record::v1::TXN_SET_DATA);
    return PrepSetData(env, *s, scratch, out->mutable_set_data());
  }
  out->set_type(record::v1::TXN_CHECK);
  return PrepCheck(env, std::get<CheckRequest>(op), scratch,
                   out->mutable_check());
}

}  // namespace

absl::StatusOr<PrepOutcome> Prep::Prepare(const RequestContext& ctx,
                                          const WriteRequest& request,
                                          int64_t zxid, int64_t time_ms) {
  absl::MutexLock lock(&mu_);
  DropApplied();
  if (!quota_roots_loaded_) {
    if (absl::Status s = LoadQuotaRoots(); !s.ok()) return s;
  }
  Scratch scratch(this);
  absl::flat_hash_set<std::string> touched_stats;
  auto charge =
      [&](const std::string& path, int64_t count_delta, int64_t bytes_delta)
          ABSL_NO_THREAD_SAFETY_ANALYSIS -> OpResult {
    return ChargeQuota(path, count_delta, bytes_delta, scratch, touched_stats);
  };
  auto initial_stats =
      [&](const std::string& root)
          ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::StatusOr<std::string> {
    absl::StatusOr<StateDb::Usage> usage = PendingAwareUsage(root);
    if (absl::IsNotFound(usage.status())) return FormatStatsTrack({0, 0});
    if (!usage.ok()) return usage.status();
    return FormatStatsTrack({usage->count, usage->bytes});
  };
  const OpEnv env{ctx, options_, zxid, time_ms, charge, initial_stats};
  PrepOutcome outcome;
  Txn txn;
  auto* header = txn.mutable_header();
  header->set_session_id(ctx.session_id);
  header->set_cxid(ctx.cxid);
  header->set_zxid(zxid);
  header->set_time_ms(time_ms);

  // An ephemeral must never outlive its owner: a request that would create
  // one for a session that is gone fails as a whole (ZooKeeper checks the
  // session before anything else).
  if (ctx.session_id != 0 && CreatesEphemeral(request)) {
    absl::StatusOr<bool> live = SessionExists(ctx.session_id);
    if (!live.ok()) return live.status();
    if (!*live) {
      outcome.err = ZkError::kSessionExpired;
      return outcome;
    }
  }
  OpResult result = ZkError::kOk;
  if (const auto* c = std::get_if<CreateRequest>(&request)) {
    header->set_type(CreateTxnType(c->flags));
    result = PrepCreate(env, *c, scratch, txn.mutable_create());
  } else if (const auto* d = std::get_if<DeleteRequest>(&request)) {
    header->set_type(record::v1::TXN_DELETE);
    result = PrepDelete(env, *d, scratch, txn.mutable_delete_());
  } else if (const auto* dc = std::get_if<DeleteContainerRequest>(&request)) {
    header->set_type(record::v1::TXN_DELETE_CONTAINER);
    result = PrepDeleteContainer(env, *dc, scratch, txn.mutable_delete_());
  } else if (const auto* s = std::get_if<SetDataRequest>(&request)) {
    header->set_type(record::v1::TXN_SET_DATA);
    result = PrepSetData(env, *s, scratch, txn.mutable_set_data());
  } else if (const auto* a = std::get_if<SetAclRequest>(&request)) {
    header->set_type(record::v1::TXN_SET_ACL);
    result = PrepSetAcl(env, *a, scratch, txn.mutable_set_acl());
  } else if (const auto* ck = std::get_if<CheckRequest>(&request)) {
    header->set_type(record::v1::TXN_CHECK);
    result = PrepCheck(env, *ck, scratch, txn.mutable_check());
  } else if (const auto* m = std::get_if<MultiRequest>(&request)) {
    header->set_type(record::v1::TXN_MULTI);
    auto* multi = txn.mutable_multi();
    for (size_t i = 0; i < m->ops.size(); ++i) {
      OpResult r = PrepMultiOp(env, m->ops[i], scratch, multi->add_ops());
      if (!r.ok()) return r.status();
      if (*r != ZkError::kOk) {
        outcome.err = *r;
        outcome.multi_errors.assign(m->ops.size(),
                                    ZkError::kRuntimeInconsistency);
        std::fill_n(outcome.multi_errors.begin(), i, ZkError::kOk);
        outcome.multi_errors[i] = *r;
        return outcome;
      }
    }
  } else if (const auto* cs = std::get_if<CreateSessionRequest>(&request)) {
    header->set_type(record::v1::TXN_CREATE_SESSION);
    absl::StatusOr<bool> live = SessionExists(ctx.session_id);
    if (!live.ok()) return live.status();
    if (ctx.session_id == 0 || *live || cs->timeout_ms <= 0) {
      result = ZkError::kBadArguments;
    } else {
      txn.mutable_create_session()->set_timeout_ms(cs->timeout_ms);
      txn.mutable_create_session()->set_password(cs->password);
      scratch.PutSession(ctx.session_id, true);
    }
  } else {  // CloseSessionRequest
    header->set_type(record::v1::TXN_CLOSE_SESSION);
    absl::StatusOr<bool> live = SessionExists(ctx.session_id);
    if (!live.ok()) return live.status();
    if (!*live) {
      result = ZkError::kSessionExpired;
    } else {
      auto paths = EphemeralsOf(ctx.session_id);
      if (!paths.ok()) return paths.status();
      auto* close = txn.mutable_close_session();
      for (const std::string& path : *paths) {
        auto node = scratch.Get(path);
        if (!node.ok()) return node.status();
        if (!node->exists) continue;
        OpResult r =
            RemoveNode(env, path, node->node, scratch, close->add_deletes());
        if (!r.ok()) return r.status();
      }
      scratch.PutSession(ctx.session_id, false);
    }
  }
  if (!result.ok()) return result.status();
  if (*result != ZkError::kOk) {
    outcome.err = *result;
    return outcome;
  }
  for (const std::string& stats_path : touched_stats) {
    auto* update = txn.add_quota_updates();
    update->set_path(stats_path);
    update->set_data(scratch.nodes().at(stats_path).node.data);
  }
  for (auto& [path, view] : scratch.mutable_nodes()) {
    if (auto root = QuotaRootOf(path, kQuotaLimitsNode)) {
      if (view.exists) {
        quota_roots_.insert(*root);
      } else {
        quota_roots_.erase(*root);
      }
    }
    pending_[path] = {zxid, std::move(view)};
    pending_order_.emplace_back(zxid, path);
  }
  for (const auto& [id, exists] : scratch.sessions()) {
    pending_sessions_[id] = {zxid, exists};
    pending_session_order_.emplace_back(zxid, id);
  }
  outcome.txn = std::move(txn);
  return outcome;
}

absl::Status Prep::LoadQuotaRoots() {
  quota_roots_.clear();
  // Walk /zookeeper/quota (small: one node per quota'd path component).
  std::vector<std::string> stack = {kQuotaRootPath};
  while (!stack.empty()) {
    const std::string path = std::move(stack.back());
    stack.pop_back();
    std::vector<std::string> kids;
    if (absl::Status s = db_->ListChildren(path, &kids); !s.ok()) return s;
    for (const std::string& kid : kids) {
      std::string child = absl::StrCat(path, "/", kid);
      if (auto root = QuotaRootOf(child, kQuotaLimitsNode)) {
        quota_roots_.insert(*root);
      }
      stack.push_back(std::move(child));
    }
  }
  // Pending creates/deletes of limits nodes override the committed view.
  for (const auto& [path, entry] : pending_) {
    if (auto root = QuotaRootOf(path, kQuotaLimitsNode)) {
      if (entry.second.exists) {
        quota_roots_.insert(*root);
      } else {
        quota_roots_.erase(*root);
      }
    }
  }
  quota_roots_loaded_ = true;
  return absl::OkStatus();
}

std::string Prep::MaxQuotaRoot(absl::string_view path) const {
  if (quota_roots_.empty() || IsSameOrDescendant(path, kQuotaRootPath)) {
    return "";
  }
  for (absl::string_view p = path; p.size() > 1; p = ParentPath(p)) {
    if (quota_roots_.contains(p)) return std::string(p);
  }
  return "";
}

absl::StatusOr<StateDb::Usage> Prep::PendingAwareUsage(
    absl::string_view root) const {
  absl::StatusOr<StateDb::Usage> usage = db_->SubtreeUsage(root);
  StateDb::Usage u;
  if (usage.ok()) {
    u = *usage;
  } else if (!absl::IsNotFound(usage.status())) {
    return usage.status();
  }
  for (const auto& [path, entry] : pending_) {
    if (!IsSameOrDescendant(path, root)) continue;
    absl::StatusOr<Znode> committed = db_->GetZnode(path);
    if (committed.ok()) {
      u.count -= 1;
      u.bytes -= static_cast<int64_t>(committed->data.size());
    } else if (!absl::IsNotFound(committed.status())) {
      return committed.status();
    }
    if (entry.second.exists) {
      u.count += 1;
      u.bytes += static_cast<int64_t>(entry.second.node.data.size());
    }
  }
  if (u.count == 0) return absl::NotFoundError(root);
  return u;
}

absl::StatusOr<ZkError> Prep::ChargeQuota(
    const std::string& path, int64_t count_delta, int64_t bytes_delta,
    Scratch& scratch, absl::flat_hash_set<std::string>& touched_stats) {
  const std::string root = MaxQuotaRoot(path);
  if (root.empty()) return ZkError::kOk;
  const std::string stats_path = QuotaStatsPath(root);
  absl::StatusOr<NodeView> stats = scratch.Get(stats_path);
  if (!stats.ok()) return stats.status();
  if (!stats->exists) return ZkError::kOk;
  StatsTrack usage =
      ParseStatsTrack(stats->node.data).value_or(StatsTrack{0, 0});
  if (options_.enforce_quota && (count_delta > 0 || bytes_delta > 0)) {
    absl::StatusOr<NodeView> limits = scratch.Get(QuotaLimitsPath(root));
    if (!limits.ok()) return limits.status();
    const StatsTrack limit =
        limits->exists
            ? ParseStatsTrack(limits->node.data).value_or(StatsTrack{})
            : StatsTrack{};
    if (count_delta > 0 && limit.count_hard_limit >= 0 &&
        usage.count + count_delta > limit.count_hard_limit) {
      return ZkError::kQuotaExceeded;
    }
    if (bytes_delta > 0 && limit.byte_hard_limit >= 0 &&
        usage.bytes + bytes_delta > limit.byte_hard_limit) {
      return ZkError::kQuotaExceeded;
    }
  }
  usage.count += count_delta;
  usage.bytes += bytes_delta;
  NodeView after = *std::move(stats);
  after.node.data = FormatStatsTrack({usage.count, usage.bytes});
  scratch.Put(stats_path, std::move(after));
  touched_stats.insert(stats_path);
  return ZkError::kOk;
}

void Prep::OnApplied(int64_t zxid) {
  int64_t seen = applied_zxid_.load(std::memory_order_relaxed);
  // Release: a Prepare that sees the zxid sees the DB's applied state.
  while (seen < zxid && !applied_zxid_.compare_exchange_weak(
                            seen, zxid, std::memory_order_release,
                            std::memory_order_relaxed)) {
  }
  // The apply thread does not queue behind a Prepare (its DB reads): the
  // next Prepare drops the entries then.
  if (!mu_.TryLock()) return;
  DropApplied();
  mu_.Unlock();
}

void Prep::DropApplied() {
  const int64_t zxid = applied_zxid_.load(std::memory_order_acquire);
  while (!pending_order_.empty() && pending_order_.front().first <= zxid) {
    auto it = pending_.find(pending_order_.front().second);
    if (it != pending_.end() && it->second.first <= zxid) pending_.erase(it);
    pending_order_.pop_front();
  }
  while (!pending_session_order_.empty() &&
         pending_session_order_.front().first <= zxid) {
    auto it = pending_sessions_.find(pending_session_order_.front().second);
    if (it != pending_sessions_.end() && it->second.first <= zxid) {
      pending_sessions_.erase(it);
    }
    pending_session_order_.pop_front();
  }
}

void Prep::Reset() {
  absl::MutexLock lock(&mu_);
  quota_roots_.clear();
  quota_roots_loaded_ = false;
  pending_.clear();
  pending_sessions_.clear();
  pending_order_.clear();
  pending_session_order_.clear();
}

size_t Prep::pending_count() const {
  absl::MutexLock lock(&mu_);
  const int64_t applied = applied_zxid_.load(std::memory_order_relaxed);
  size_t n = 0;
  for (const auto& [path, entry] : pending_) n += entry.first > applied;
  for (const auto& [id, entry] : pending_sessions_) n += entry.first > applied;
  return n;
}

Stat StatOfCreated(const record::v1::CreateTxn& create,
                   const record::v1::TxnHeader& header) {
  Znode node;
  node.czxid = node.mzxid = node.pzxid = header.zxid();
  node.ctime_ms = node.mtime_ms = header.time_ms();
  node.ephemeral_owner = create.ephemeral_owner();
  node.data = create.data();
  node.data_null = create.data_null();
  return ClientStat(node);
}

}  // namespace rockeeper::engine
