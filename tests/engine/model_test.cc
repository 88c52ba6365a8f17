// Model-based test: seeded random sequences of write requests run through the
// engine (Prep + Apply, sometimes pipelined several deep, with close+reopen
// at random points) and through a tiny in-memory reference model written
// independently from ZooKeeper's rules. Every result code and, periodically,
// the whole observable state (tree, every stat field, data, ACL, sessions,
// ephemerals) must agree.
//
// Reproduce a failure with RK_MODEL_SEED=<seed> RK_MODEL_OPS=<n>.
#include <cstdlib>
#include <map>
#include <random>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/path_utils.h"
#include "gtest/gtest.h"
#include "tests/engine/test_util.h"

namespace rockeeper::engine {
namespace {

using testing::EngineHarness;
using testing::TempDir;

// ---- The reference model -------------------------------------------------

struct ModelNode {
  std::string data;
  int32_t version = 0, cversion = 0, aversion = 0, num_children = 0;
  int64_t czxid = 0, mzxid = 0, pzxid = 0, ctime = 0, mtime = 0, owner = 0;
  bool read_only = false;  // ACL [READ|ADMIN world:anyone] instead of open
};

class Model {
 public:
  Model() {
    nodes_["/"].num_children = 1;
    nodes_["/zookeeper"].num_children = 2;
    nodes_["/zookeeper/quota"];
    nodes_["/zookeeper/config"].aversion = -1;
    nodes_["/zookeeper/config"].read_only = true;  // READ only, really
  }

  ZkError Apply(const WriteRequest& req, const RequestContext& ctx,
                int64_t zxid, int64_t time) {
    std::map<std::string, std::optional<ModelNode>> saved;
    auto result = Run(req, ctx, zxid, time, &saved);
    if (result != ZkError::kOk) {  // roll back a failed multi
      for (auto& [path, node] : saved) {
        if (node) nodes_[path] = *node; else nodes_.erase(path);
      }
    }
    return result;
  }

  const std::map<std::string, ModelNode>& nodes() const { return nodes_; }
  const std::set<int64_t>& sessions() const { return sessions_; }

 private:
  using Saved = std::map<std::string, std::optional<ModelNode>>;

  void Save(const std::string& path, Saved* saved) {
    if (saved->count(path)) return;
    auto it = nodes_.find(path);
    (*saved)[path] = it == nodes_.end() ? std::nullopt
                                        : std::optional<ModelNode>(it->second);
  }
  bool Has(const std::string& p) const { return nodes_.count(p) > 0; }
  static bool Can(const ModelNode& n, int32_t perm) {
    return !n.read_only || (perm & (perms::kRead | perms::kAdmin)) != 0 ||
           false;
  }
  static bool CanConfig(const std::string& path, int32_t perm) {
    return path != "/zookeeper/config" || perm == perms::kRead;
  }
  bool Allowed(const std::string& path, int32_t perm) const {
    const ModelNode& n = nodes_.at(path);
    if (path == "/zookeeper/config") return perm == perms::kRead;
    return Can(n, perm);
  }

  ZkError Create(const CreateRequest& c, const RequestContext& ctx,
                 int64_t zxid, int64_t time, Saved* saved) {
    const bool eph = c.flags == kEphemeral || c.flags == kEphemeralSequential;
    if (c.flags < 0 || c.flags > 6) return ZkError::kBadArguments;
    if (c.flags >= 5) return ZkError::kUnimplemented;
    if (eph && ctx.session_id == 0) return ZkError::kBadArguments;
    const size_t slash = c.path.rfind('/');
    const std::string parent = slash == 0 ? "/" : c.path.substr(0, slash);
    if (!Has(parent)) return ZkError::kNoNode;
    if (!Allowed(parent, perms::kCreate)) return ZkError::kNoAuth;
    std::string path = c.path;
    const bool seq = c.flags == kPersistentSequential || c.flags == kEphemeralSequential;
    if (seq) path += absl::StrFormat("%010d", nodes_[parent].cversion);
    if (!IsValidPath(path)) return ZkError::kBadArguments;
    if (Has(path)) return ZkError::kNodeExists;
    const int64_t pown = nodes_[parent].owner;
    if (pown != 0 && pown != kContainerOwner) return ZkError::kNoChildrenForEphemerals;
    Save(parent, saved);
    Save(path, saved);
    ModelNode& p = nodes_[parent];
    p.cversion++;
    p.num_children++;
    p.pzxid = zxid;
    ModelNode n;
    n.data = c.data;
    n.czxid = n.mzxid = n.pzxid = zxid;
    n.ctime = n.mtime = time;
    n.owner = eph ? ctx.session_id : (c.flags == kContainer ? kContainerOwner : 0);
    n.read_only = c.acl.size() == 1 && c.acl[0].perms() != perms::kAll;
    nodes_[path] = n;
    return ZkError::kOk;
  }

  ZkError Remove(const std::string& path, int64_t zxid, Saved* saved) {
    const std::string parent(ParentPath(path));
    Save(parent, saved);
    Save(path, saved);
    nodes_[parent].num_children--;
    nodes_[parent].pzxid = zxid;
    nodes_.erase(path);
    return ZkError::kOk;
  }

  ZkError Delete(const DeleteRequest& d, int64_t zxid, Saved* saved) {
    const std::string& p = d.path;
    if (p == "/" || p == "/zookeeper" || p == "/zookeeper/quota" ||
        p == "/zookeeper/config" || !IsValidPath(p)) {
      return ZkError::kBadArguments;
    }
    const std::string parent(ParentPath(p));
    if (!Has(parent)) return ZkError::kNoNode;
    if (!Allowed(parent, perms::kDelete)) return ZkError::kNoAuth;
    if (!Has(p)) return ZkError::kNoNode;
    if (d.version != -1 && d.version != nodes_[p].version) return ZkError::kBadVersion;
    if (nodes_[p].num_children > 0) return ZkError::kNotEmpty;
    return Remove(p, zxid, saved);
  }

  ZkError SetData(const SetDataRequest& s, int64_t zxid, int64_t time,
                  Saved* saved) {
    if (!IsValidPath(s.path)) return ZkError::kBadArguments;
    if (!Has(s.path)) return ZkError::kNoNode;
    if (!Allowed(s.path, perms::kWrite)) return ZkError::kNoAuth;
    ModelNode& n = nodes_[s.path];
    if (s.version != -1 && s.version != n.version) return ZkError::kBadVersion;
    Save(s.path, saved);
    n.data = s.data;
    n.version++;
    n.mzxid = zxid;
    n.mtime = time;
    return ZkError::kOk;
  }

  ZkError SetAcl(const SetAclRequest& s, Saved* saved) {
    if (!IsValidPath(s.path)) return ZkError::kBadArguments;
    if (!Has(s.path)) return ZkError::kNoNode;
    if (!Allowed(s.path, perms::kAdmin)) return ZkError::kNoAuth;
    ModelNode& n = nodes_[s.path];
    if (s.version != -1 && s.version != n.aversion) return ZkError::kBadVersion;
    Save(s.path, saved);
    n.aversion++;
    n.read_only = s.acl[0].perms() != perms::kAll;
    return ZkError::kOk;
  }

  ZkError Check(const CheckRequest& c) {
    if (!IsValidPath(c.path)) return ZkError::kBadArguments;
    if (!Has(c.path)) return ZkError::kNoNode;
    if (c.version != -1 && c.version != nodes_[c.path].version) {
      return ZkError::kBadVersion;
    }
    return ZkError::kOk;
  }

  ZkError Run(const WriteRequest& req, const RequestContext& ctx, int64_t zxid,
              int64_t time, Saved* saved) {
    if (auto* c = std::get_if<CreateRequest>(&req)) {
      const bool eph = c->flags == kEphemeral || c->flags == kEphemeralSequential;
      if (eph && ctx.session_id != 0 && !sessions_.count(ctx.session_id)) {
        return ZkError::kSessionExpired;
      }
      return Create(*c, ctx, zxid, time, saved);
    }
    if (auto* d = std::get_if<DeleteRequest>(&req)) return Delete(*d, zxid, saved);
    if (auto* s = std::get_if<SetDataRequest>(&req)) return SetData(*s, zxid, time, saved);
    if (auto* a = std::get_if<SetAclRequest>(&req)) return SetAcl(*a, saved);
    if (auto* k = std::get_if<CheckRequest>(&req)) return Check(*k);
    if (auto* m = std::get_if<MultiRequest>(&req)) {
      for (const auto& op : m->ops) {
        auto* c = std::get_if<CreateRequest>(&op);
        if (c && ctx.session_id != 0 && !sessions_.count(ctx.session_id) &&
            (c->flags == kEphemeral || c->flags == kEphemeralSequential)) {
          return ZkError::kSessionExpired;
        }
      }
      for (const auto& op : m->ops) {
        ZkError e = std::visit(
            [&](const auto& o) -> ZkError {
              using T = std::decay_t<decltype(o)>;
              if constexpr (std::is_same_v<T, CreateRequest>) return Create(o, ctx, zxid, time, saved);
              if constexpr (std::is_same_v<T, DeleteRequest>) return Delete(o, zxid, saved);
              if constexpr (std::is_same_v<T, SetDataRequest>) return SetData(o, zxid, time, saved);
              if constexpr (std::is_same_v<T, CheckRequest>) return Check(o);
            },
            op);
        if (e != ZkError::kOk) return e;
      }
      return ZkError::kOk;
    }
    if (std::holds_alternative<CreateSessionRequest>(req)) {
      if (ctx.session_id == 0 || sessions_.count(ctx.session_id)) return ZkError::kBadArguments;
      sessions_.insert(ctx.session_id);
      return ZkError::kOk;
    }
    if (std::holds_alternative<CloseSessionRequest>(req)) {
      if (!sessions_.count(ctx.session_id)) return ZkError::kSessionExpired;
      std::vector<std::string> eph;
      for (const auto& [path, n] : nodes_) {
        if (n.owner == ctx.session_id) eph.push_back(path);
      }
      for (const auto& p : eph) Remove(p, zxid, saved);
      sessions_.erase(ctx.session_id);
      return ZkError::kOk;
    }
    return ZkError::kUnimplemented;
  }

  std::map<std::string, ModelNode> nodes_;
  std::set<int64_t> sessions_;
};

// ---- Random requests ----------------------------------------------------

class RequestGen {
 public:
  explicit RequestGen(uint64_t seed) : rng_(seed) {}

  std::string Path() {
    static const char* kNames[] = {"a", "b", "c", "s-"};
    std::string p;
    const int r = Pick(20);
    const int depth = r < 9 ? 1 : (r < 16 ? 2 : 3);
    for (int i = 0; i < depth; ++i) p += absl::StrCat("/", kNames[Pick(4)]);
    if (Pick(20) == 0) p += "/";  // invalid unless sequential
    return p;
  }
  int Pick(int n) { return static_cast<int>(rng_() % static_cast<uint64_t>(n)); }
  int32_t Version() { return Pick(3) == 0 ? -1 : Pick(3); }

  CreateRequest Create(int64_t session) {
    CreateRequest c;
    c.path = Path();
    c.data = std::string(Pick(4) * 7, static_cast<char>('a' + Pick(26)));
    static const int32_t kFlags[] = {kPersistent, kPersistent, kPersistentSequential,
                                     kEphemeral, kEphemeralSequential, kContainer};
    c.flags = kFlags[Pick(6)];
    if (session == 0 && Pick(2) == 0) c.flags = kPersistent;
    c.acl = Pick(8) == 0 ? AclVector{MakeAcl(perms::kRead | perms::kAdmin, "world", "anyone")}
                         : OpenAclUnsafe();
    return c;
  }

  MultiOpRequest MultiOp(int64_t session) {
    switch (Pick(4)) {
      case 0: return Create(session);
      case 1: return DeleteRequest{Path(), Version()};
      case 2: return SetDataRequest{Path(), "m", Version()};
      default: return CheckRequest{Path(), Version()};
    }
  }

  WriteRequest Next(int64_t session) {
    const int k = Pick(100);
    if (k < 35) return Create(session);
    if (k < 55) return DeleteRequest{Path(), Version()};
    if (k < 70) return SetDataRequest{Path(), std::string(Pick(5), 'z'), Version()};
    if (k < 75) {
      AclVector acl = Pick(3) == 0
          ? AclVector{MakeAcl(perms::kRead | perms::kAdmin, "world", "anyone")}
          : OpenAclUnsafe();
      return SetAclRequest{Path(), acl, Pick(2) ? -1 : Pick(2)};
    }
    if (k < 80) return CheckRequest{Path(), Version()};
    if (k < 92) {
      MultiRequest m;
      const int n = 1 + Pick(4);
      for (int i = 0; i < n; ++i) m.ops.push_back(MultiOp(session));
      return m;
    }
    if (k < 96) return CreateSessionRequest{10000, "pw"};
    return CloseSessionRequest{};
  }

 private:
  std::mt19937_64 rng_;
};

// ---- Comparison ---------------------------------------------------------

void ExpectSameState(const Model& model, StateDb& db, const std::string& where) {
  // Walk the engine's tree from the root through ListChildren.
  std::vector<std::string> stack = {"/"};
  size_t seen = 0;
  while (!stack.empty()) {
    const std::string path = stack.back();
    stack.pop_back();
    ++seen;
    auto it = model.nodes().find(path);
    ASSERT_NE(it, model.nodes().end()) << where << ": engine has extra " << path;
    const ModelNode& m = it->second;
    auto n = db.GetZnode(path);
    ASSERT_TRUE(n.ok()) << where << " " << path << ": " << n.status();
    EXPECT_EQ(n->data, m.data) << where << " " << path;
    EXPECT_EQ(n->version, m.version) << where << " " << path;
    EXPECT_EQ(n->cversion, m.cversion) << where << " " << path;
    EXPECT_EQ(n->aversion, m.aversion) << where << " " << path;
    EXPECT_EQ(n->num_children, m.num_children) << where << " " << path;
    EXPECT_EQ(n->czxid, m.czxid) << where << " " << path;
    EXPECT_EQ(n->mzxid, m.mzxid) << where << " " << path;
    EXPECT_EQ(n->pzxid, m.pzxid) << where << " " << path;
    EXPECT_EQ(n->ctime_ms, m.ctime) << where << " " << path;
    EXPECT_EQ(n->mtime_ms, m.mtime) << where << " " << path;
    EXPECT_EQ(n->ephemeral_owner, m.owner) << where << " " << path;
    if (path != "/zookeeper/config") {
      auto acl = db.GetAcl(n->acl_id);
      ASSERT_TRUE(acl.ok());
      EXPECT_EQ((*acl)[0].perms() != perms::kAll, m.read_only) << where << " " << path;
    }
    std::vector<std::string> kids;
    ASSERT_TRUE(db.ListChildren(path, &kids).ok());
    EXPECT_EQ(static_cast<int32_t>(kids.size()), m.num_children) << where << " " << path;
    for (const auto& k : kids) stack.push_back(path == "/" ? "/" + k : path + "/" + k);
  }
  EXPECT_EQ(seen, model.nodes().size()) << where;
  EXPECT_EQ(db.znode_count(), static_cast<int64_t>(model.nodes().size()))
      << where;
  std::vector<SessionRecord> sessions;
  ASSERT_TRUE(db.ListSessions(&sessions).ok());
  std::set<int64_t> ids;
  for (const auto& s : sessions) ids.insert(s.session_id());
  EXPECT_EQ(ids, model.sessions()) << where;
  for (int64_t id : model.sessions()) {
    std::vector<std::string> eph;
    ASSERT_TRUE(db.ListEphemerals(id, &eph).ok());
    std::vector<std::string> want;
    for (const auto& [path, n] : model.nodes()) {
      if (n.owner == id) want.push_back(path);
    }
    EXPECT_EQ(eph, want) << where << " session " << id;
  }
}

uint64_t EnvOr(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : fallback;
}

void RunSeed(uint64_t seed, int ops) {
  SCOPED_TRACE(absl::StrCat("RK_MODEL_SEED=", seed, " RK_MODEL_OPS=", ops));
  TempDir dir;
  EngineHarness h(dir.Sub("state"));
  Model model;
  RequestGen gen(seed);
  std::mt19937_64 rng(seed ^ 0x9e3779b97f4a7c15ULL);
  int64_t zxid = 1;
  int reopens = 0;
  const int64_t sessions[] = {0, 0x101, 0x202, 0x303};
  for (int i = 0; i < ops;) {
    // Prepare a pipeline of 1..8 requests before applying any of them.
    const int depth = 1 + static_cast<int>(rng() % 8);
    std::vector<Txn> batch;
    for (int d = 0; d < depth && i < ops; ++d, ++i) {
      RequestContext ctx;
      ctx.session_id = sessions[rng() % 4];
      const WriteRequest req = gen.Next(ctx.session_id);
      const int64_t time = 5000 + zxid;
      auto out = h.prep().Prepare(ctx, req, zxid, time);
      ASSERT_TRUE(out.ok()) << out.status();
      const ZkError want = model.Apply(req, ctx, zxid, time);
      ASSERT_EQ(out->err, want) << "op " << i << " index " << req.index();
      if (out->txn) {
        batch.push_back(*out->txn);
        ++zxid;
      }
    }
    ASSERT_TRUE(h.db().Apply(batch, nullptr).ok());
    h.prep().OnApplied(zxid - 1);
    if (rng() % 50 == 0) ExpectSameState(model, h.db(), absl::StrCat("op ", i));
    if (rng() % 100 == 0) {
      h.Reopen();
      ++reopens;
      ASSERT_EQ(h.db().last_applied_zxid(), zxid - 1);
      ExpectSameState(model, h.db(), absl::StrCat("reopen at op ", i));
    }
    if (::testing::Test::HasFailure()) return;
  }
  ExpectSameState(model, h.db(), "end");
  // The run must have exercised the engine, not just its error paths.
  EXPECT_GT(zxid, ops / 6) << "too few successful writes";
  EXPECT_GT(model.nodes().size(), 10u);
  if (ops >= 2000) {
    EXPECT_GT(reopens, 0);
  }
}

TEST(ModelTest, RandomSequencesAgreeWithModel) {
  const uint64_t seed = EnvOr("RK_MODEL_SEED", 0);
  const int ops = static_cast<int>(EnvOr("RK_MODEL_OPS", 3000));
  if (seed != 0) {
    RunSeed(seed, ops);
    return;
  }
  const int seeds = static_cast<int>(EnvOr("RK_MODEL_SEEDS", 8));
  for (int s = 1; s <= seeds && !HasFailure(); ++s) RunSeed(s, ops);
}

}  // namespace
}  // namespace rockeeper::engine
