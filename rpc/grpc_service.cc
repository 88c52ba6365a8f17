#include "rpc/grpc_service.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <thread>
#include <cstdio>
#include <memory>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "engine/path_utils.h"
#include "engine/prep.h"

namespace rockeeper::rpc {
namespace {

using engine::ZkError;

constexpr char kSessionMetadata[] = "rk-session-id";

void ToApiStat(const engine::Stat& in, v1::Stat* out) {
  out->set_czxid(in.czxid());
  out->set_mzxid(in.mzxid());
  out->set_ctime_ms(in.ctime_ms());
  out->set_mtime_ms(in.mtime_ms());
  out->set_version(in.version());
  out->set_cversion(in.cversion());
  out->set_aversion(in.aversion());
  out->set_ephemeral_owner(in.ephemeral_owner());
  out->set_data_length(in.data_length());
  out->set_num_children(in.num_children());
  out->set_pzxid(in.pzxid());
}

engine::AclVector FromApiAcl(
    const google::protobuf::RepeatedPtrField<v1::Acl>& acl) {
  if (acl.empty()) return engine::OpenAclUnsafe();
  engine::AclVector out;
  for (const v1::Acl& a : acl) {
    out.push_back(engine::MakeAcl(a.perms(), a.scheme(), a.id()));
  }
  return out;
}

int32_t VersionOrAny(bool has, int32_t v) { return has ? v : -1; }

// "ipv4:127.0.0.1:5555" / "ipv6:[::1]:5555" -> the address.
std::string PeerAddress(const std::string& peer) {
  absl::string_view p = peer;
  if (p.rfind("ipv4:", 0) == 0) {
    p.remove_prefix(5);
    return std::string(p.substr(0, p.rfind(':')));
  }
  if (p.rfind("ipv6:", 0) == 0) {
    p.remove_prefix(5);
    p = p.substr(0, p.rfind(':'));
    if (!p.empty() && p.front() == '[') p = p.substr(1, p.size() - 2);
    return std::string(p);
  }
  return "";
}

engine::CreateRequest ToCreate(const v1::CreateRequest& r) {
  engine::CreateRequest c;
  c.path = r.path();
  c.data = r.data();
  c.acl = FromApiAcl(r.acl());
  c.flags = static_cast<int32_t>(r.mode());
  c.ttl_ms = r.has_ttl_ms() ? r.ttl_ms() : -1;
  return c;
}

}  // namespace

struct RockeeperService::Caller {
  engine::RequestContext ctx;
  ZkError err = ZkError::kOk;  // SESSIONEXPIRED for an unknown session
};

RockeeperService::RockeeperService(replication::StandaloneReplica* replica,
                                   ServiceOptions options)
    : replica_(replica), options_(options), sessions_(options.server_id) {
  // Sessions survive restarts: give each a fresh deadline, as ZooKeeper.
  std::vector<engine::SessionRecord> stored;
  if (replica_->db().ListSessions(&stored).ok()) {
    for (const auto& s : stored) {
      sessions_.Add(s.session_id(), s.timeout_ms(), s.password());
    }
  }
  expiry_thread_ = std::thread([this] { ExpiryLoop(); });
}

RockeeperService::~RockeeperService() {
  stop_.Notify();
  if (expiry_thread_.joinable()) expiry_thread_.join();
}

int RockeeperService::ReapContainers() {
  const engine::StateDb& db = replica_->db();
  std::vector<std::string> candidates;
  std::vector<std::string> containers;
  if (db.ListContainers(&containers).ok()) {
    for (const std::string& path : containers) {
      absl::StatusOr<engine::Znode> n = db.GetZnode(path);
      // A container never used (cversion 0) stays, as in ZooKeeper 3.8.
      if (n.ok() && n->num_children == 0 && n->cversion > 0) {
        candidates.push_back(path);
      }
    }
  }
  std::vector<std::pair<std::string, int64_t>> ttl_nodes;
  const int64_t now_ms = absl::ToUnixMillis(absl::Now());
  if (db.ListTtlNodes(&ttl_nodes).ok()) {
    for (const auto& [path, ttl_ms] : ttl_nodes) {
      absl::StatusOr<engine::Znode> n = db.GetZnode(path);
      if (n.ok() && n->num_children == 0 && now_ms - n->mtime_ms > ttl_ms) {
        candidates.push_back(path);
      }
    }
  }
  int deleted = 0;
  const int64_t budget = std::max<int64_t>(
      1, options_.container_max_per_minute *
             absl::ToInt64Milliseconds(options_.container_check_interval) /
             60000);
  for (const std::string& path : candidates) {
    if (deleted >= budget || stop_.HasBeenNotified()) break;
    replication::SubmitResult r =
        SubmitAndWait({}, engine::DeleteContainerRequest{path});
    if (r.status.ok() && r.outcome.err == ZkError::kOk) ++deleted;
  }
  return deleted;
}

void RockeeperService::ExpiryLoop() {
  absl::Time next_reap = absl::Now() + options_.container_check_interval;
  while (!stop_.WaitForNotificationWithTimeout(options_.expiry_interval)) {
    if (absl::Now() >= next_reap) {
      ReapContainers();
      next_reap = absl::Now() + options_.container_check_interval;
    }
    for (int64_t id : sessions_.Expired(absl::Now())) {
      engine::RequestContext ctx;
      ctx.session_id = id;
      sessions_.Remove(id);
      replication::SubmitResult r =
          SubmitAndWait(ctx, engine::CloseSessionRequest{});
      EndSession(id, EventHub::End::kExpired);
      if (!r.status.ok()) {
        std::fprintf(stderr, "WARN expiring session 0x%llx: %s\n",
                     static_cast<unsigned long long>(id),
                     r.status.ToString().c_str());
      }
    }
  }
}

RockeeperService::Caller RockeeperService::ResolveCaller(
    grpc::ServerContext* context) {
  Caller caller;
  const std::string ip = PeerAddress(context->peer());
  if (!ip.empty()) caller.ctx.auth_ids.push_back({"ip", ip});
  const auto& md = context->client_metadata();
  auto it = md.find(kSessionMetadata);
  if (it == md.end()) return caller;
  int64_t id = 0;
  if (!absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()),
                        &id) ||
      !sessions_.Touch(id)) {
    caller.err = ZkError::kSessionExpired;
    return caller;
  }
  caller.ctx.session_id = id;
  if (auto info = sessions_.Get(id)) {
    for (auto& a : info->auth_ids) caller.ctx.auth_ids.push_back(a);
  }
  return caller;
}

replication::SubmitResult RockeeperService::SubmitAndWait(
    const engine::RequestContext& ctx, const engine::WriteRequest& request) {
  struct Waiter {
    absl::Notification done;
    replication::SubmitResult result;
  };
  auto waiter = std::make_shared<Waiter>();
  replica_->Submit(ctx, request, [this, waiter](replication::SubmitResult r) {
    // On the apply thread, under the replica's visibility mutex: events are
    // queued before any reader can see the change.
    for (const engine::WatchTrigger& t : r.triggers) {
      for (const Notification& n : watches_.Trigger(t)) {
        events_.Publish(n.session_id, n.type, n.path, t.zxid);
      }
    }
    waiter->result = std::move(r);
    waiter->done.Notify();
  });
  waiter->done.WaitForNotification();
  return std::move(waiter->result);
}

void RockeeperService::EndSession(int64_t session_id, EventHub::End why) {
  watches_.RemoveSession(session_id);
  events_.Close(session_id, why);
}

void RockeeperService::FillHeader(ZkError err, int64_t zxid,
                                  int64_t session_id,
                                  v1::ResponseHeader* header) const {
  header->set_zxid(zxid);
  if (session_id != 0) header->set_event_seq(events_.LastSeq(session_id));
  header->set_server_id(options_.server_id);
  header->set_err(static_cast<int32_t>(err));
  if (err != ZkError::kOk) {
    header->set_err_name(std::string(engine::ZkErrorName(err)));
  }
}

grpc::Status RockeeperService::FinishWrite(
    const replication::SubmitResult& result, int64_t session_id,
    v1::ResponseHeader* header) {
  if (!result.status.ok()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        std::string(result.status.message()));
  }
  const int64_t zxid = result.outcome.txn
                           ? result.outcome.txn->header().zxid()
                           : replica_->db().last_applied_zxid();
  FillHeader(result.outcome.err, zxid, session_id, header);
  return grpc::Status::OK;
}

ZkError RockeeperService::CheckRead(const std::string& path, int32_t perm,
                                    const engine::RequestContext& ctx,
                                    engine::Znode* node) {
  if (!engine::IsValidPath(path)) return ZkError::kBadArguments;
  absl::StatusOr<engine::Znode> n = replica_->db().GetZnode(path);
  if (!n.ok()) return ZkError::kNoNode;
  absl::StatusOr<engine::AclVector> acl = replica_->db().GetAcl(n->acl_id);
  if (!acl.ok() || !engine::HasPermission(*acl, perm, ctx.auth_ids)) {
    return ZkError::kNoAuth;
  }
  *node = *std::move(n);
  return ZkError::kOk;
}

#define RK_RESOLVE_OR_RETURN(caller, context, resp)                      \
  InFlight in_flight(this);                                              \
  if (!in_flight.ok()) {                                                 \
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,            \
                        "too many outstanding requests");                \
  }                                                                      \
  Caller caller = ResolveCaller(context);                                \
  if (caller.err != ZkError::kOk) {                                      \
    FillHeader(caller.err, replica_->db().last_applied_zxid(), 0,        \
               (resp)->mutable_header());                                \
    return grpc::Status::OK;                                             \
  }

// --- Sessions -------------------------------------------------------------

grpc::Status RockeeperService::Connect(grpc::ServerContext* context,
                                       const v1::ConnectRequest* req,
                                       v1::ConnectResponse* resp) {
  const int64_t applied = replica_->db().last_applied_zxid();
  if (req->last_zxid_seen() > applied) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        absl::StrCat("client has seen zxid ",
                                     req->last_zxid_seen(),
                                     ", newer than this server's ", applied));
  }
  const int32_t timeout =
      std::clamp(req->timeout_ms(), options_.min_session_timeout_ms,
                 options_.max_session_timeout_ms);
  Caller caller;  // Connect names its session in the request, not metadata
  caller.ctx.session_id = req->session_id();
  if (req->session_id() != 0) {  // resume
    std::optional<SessionInfo> s = sessions_.Get(req->session_id());
    if (!s || s->password != req->password() ||
        !sessions_.Touch(req->session_id())) {
      FillHeader(ZkError::kSessionExpired, applied, caller.ctx.session_id, resp->mutable_header());
      return grpc::Status::OK;
    }
    resp->set_session_id(s->id);
    resp->set_password(s->password);
    resp->set_timeout_ms(s->timeout_ms);
    FillHeader(ZkError::kOk, applied, caller.ctx.session_id, resp->mutable_header());
    return grpc::Status::OK;
  }
  InFlight in_flight(this);
  const std::string ip = PeerAddress(context->peer());
  if (!in_flight.ok() ||
      (options_.max_sessions_per_ip > 0 &&
       sessions_.CountForIp(ip) >=
           static_cast<size_t>(options_.max_sessions_per_ip))) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        in_flight.ok() ? "too many sessions from " + ip
                                       : "too many outstanding requests");
  }
  engine::RequestContext ctx;
  ctx.session_id = sessions_.NextSessionId();
  caller.ctx.session_id = ctx.session_id;
  const std::string password = SessionTracker::NewPassword();
  replication::SubmitResult r =
      SubmitAndWait(ctx, engine::CreateSessionRequest{timeout, password});
  grpc::Status st = FinishWrite(r, caller.ctx.session_id, resp->mutable_header());
  if (st.ok() && r.outcome.err == ZkError::kOk) {
    sessions_.Add(ctx.session_id, timeout, password, ip);
    resp->set_session_id(ctx.session_id);
    resp->set_password(password);
    resp->set_timeout_ms(timeout);
  }
  return st;
}

grpc::Status RockeeperService::Close(grpc::ServerContext* context,
                                     const v1::CloseRequest*,
                                     v1::CloseResponse* resp) {
  Caller caller = ResolveCaller(context);
  if (caller.ctx.session_id == 0) {
    FillHeader(caller.err == ZkError::kOk ? ZkError::kBadArguments : caller.err,
               replica_->db().last_applied_zxid(), caller.ctx.session_id, resp->mutable_header());
    return grpc::Status::OK;
  }
  sessions_.Remove(caller.ctx.session_id);
  grpc::Status st =
      FinishWrite(SubmitAndWait(caller.ctx, engine::CloseSessionRequest{}),
                  caller.ctx.session_id, resp->mutable_header());
  EndSession(caller.ctx.session_id, EventHub::End::kClosed);
  return st;
}

grpc::Status RockeeperService::Heartbeat(grpc::ServerContext* context,
                                         const v1::HeartbeatRequest*,
                                         v1::HeartbeatResponse* resp) {
  Caller caller = ResolveCaller(context);
  ZkError err = caller.err;
  if (err == ZkError::kOk && caller.ctx.session_id == 0) {
    err = ZkError::kBadArguments;
  }
  FillHeader(err, replica_->db().last_applied_zxid(), caller.ctx.session_id, resp->mutable_header());
  return grpc::Status::OK;
}

// --- Writes ---------------------------------------------------------------

grpc::Status RockeeperService::Create(grpc::ServerContext* context,
                                      const v1::CreateRequest* req,
                                      v1::CreateResponse* resp) {
  if (req->data().size() > options_.max_data_bytes) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "data larger than jute.maxbuffer");
  }
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  replication::SubmitResult r = SubmitAndWait(caller.ctx, ToCreate(*req));
  grpc::Status st = FinishWrite(r, caller.ctx.session_id, resp->mutable_header());
  if (st.ok() && r.outcome.txn) {
    resp->set_path(r.outcome.txn->create().path());
    ToApiStat(engine::StatOfCreated(r.outcome.txn->create(),
                                    r.outcome.txn->header()),
              resp->mutable_stat());
  }
  return st;
}

grpc::Status RockeeperService::Delete(grpc::ServerContext* context,
                                      const v1::DeleteRequest* req,
                                      v1::DeleteResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  return FinishWrite(
      SubmitAndWait(caller.ctx,
                    engine::DeleteRequest{req->path(),
                                          VersionOrAny(req->has_version(),
                                                       req->version())}), caller.ctx.session_id, resp->mutable_header());
}

grpc::Status RockeeperService::SetData(grpc::ServerContext* context,
                                       const v1::SetDataRequest* req,
                                       v1::SetDataResponse* resp) {
  if (req->data().size() > options_.max_data_bytes) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "data larger than jute.maxbuffer");
  }
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  replication::SubmitResult r = SubmitAndWait(
      caller.ctx,
      engine::SetDataRequest{req->path(), req->data(),
                             VersionOrAny(req->has_version(), req->version())});
  grpc::Status st = FinishWrite(r, caller.ctx.session_id, resp->mutable_header());
  if (st.ok() && r.outcome.txn) {
    ToApiStat(r.outcome.txn->set_data().stat(), resp->mutable_stat());
  }
  return st;
}

grpc::Status RockeeperService::SetAcl(grpc::ServerContext* context,
                                      const v1::SetAclRequest* req,
                                      v1::SetAclResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  engine::SetAclRequest set;
  set.path = req->path();
  for (const v1::Acl& a : req->acl()) {
    set.acl.push_back(engine::MakeAcl(a.perms(), a.scheme(), a.id()));
  }
  set.version = VersionOrAny(req->has_version(), req->version());
  replication::SubmitResult r = SubmitAndWait(caller.ctx, set);
  grpc::Status st = FinishWrite(r, caller.ctx.session_id, resp->mutable_header());
  if (st.ok() && r.outcome.txn) {
    ToApiStat(r.outcome.txn->set_acl().stat(), resp->mutable_stat());
  }
  return st;
}

grpc::Status RockeeperService::Multi(grpc::ServerContext* context,
                                     const v1::MultiRequest* req,
                                     v1::MultiResponse* resp) {
  engine::MultiRequest multi;
  for (const auto& op : req->ops()) {
    switch (op.op_case()) {
      case v1::MultiRequest::Op::kCreate:
        multi.ops.push_back(ToCreate(op.create()));
        break;
      case v1::MultiRequest::Op::kDelete:
        multi.ops.push_back(engine::DeleteRequest{
            op.delete_().path(),
            VersionOrAny(op.delete_().has_version(), op.delete_().version())});
        break;
      case v1::MultiRequest::Op::kSetData:
        multi.ops.push_back(engine::SetDataRequest{
            op.set_data().path(), op.set_data().data(),
            VersionOrAny(op.set_data().has_version(),
                         op.set_data().version())});
        break;
      case v1::MultiRequest::Op::kCheck:
        multi.ops.push_back(engine::CheckRequest{
            op.check().path(),
            VersionOrAny(op.check().has_version(), op.check().version())});
        break;
      case v1::MultiRequest::Op::OP_NOT_SET:
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "multi op without an operation");
    }
  }
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  replication::SubmitResult r = SubmitAndWait(caller.ctx, multi);
  grpc::Status st = FinishWrite(r, caller.ctx.session_id, resp->mutable_header());
  if (!st.ok()) return st;
  if (!r.outcome.txn) {
    for (ZkError e : r.outcome.multi_errors) {
      resp->add_results()->set_err(static_cast<int32_t>(e));
    }
    return st;
  }
  const auto& header = r.outcome.txn->header();
  for (const auto& op : r.outcome.txn->multi().ops()) {
    auto* result = resp->add_results();
    if (op.has_create()) {
      result->set_path(op.create().path());
      ToApiStat(engine::StatOfCreated(op.create(), header),
                result->mutable_stat());
    } else if (op.has_set_data()) {
      ToApiStat(op.set_data().stat(), result->mutable_stat());
    }
  }
  return st;
}

// --- Reads ----------------------------------------------------------------

// Watches belong to a session: a sessionless read cannot set one.
#define RK_WATCH_NEEDS_SESSION(req, caller)                                \
  if ((req)->watch() && (caller).ctx.session_id == 0) {                    \
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,             \
                        "watches need a session (metadata rk-session-id)"); \
  }

grpc::Status RockeeperService::Exists(grpc::ServerContext* context,
                                      const v1::ExistsRequest* req,
                                      v1::ExistsResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  RK_WATCH_NEEDS_SESSION(req, caller);
  absl::ReaderMutexLock visible(&replica_->visibility_mutex());
  engine::Znode node;
  const ZkError err = CheckRead(req->path(), engine::perms::kRead, caller.ctx, &node);
  if (req->watch() && (err == ZkError::kOk || err == ZkError::kNoNode)) {
    watches_.Add(caller.ctx.session_id, req->path(),
                 err == ZkError::kOk ? WatchKind::kData : WatchKind::kExist);
  }
  FillHeader(err, replica_->db().last_applied_zxid(), caller.ctx.session_id, resp->mutable_header());
  if (err == ZkError::kOk) ToApiStat(engine::ClientStat(node), resp->mutable_stat());
  return grpc::Status::OK;
}

grpc::Status RockeeperService::GetData(grpc::ServerContext* context,
                                       const v1::GetDataRequest* req,
                                       v1::GetDataResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  RK_WATCH_NEEDS_SESSION(req, caller);
  absl::ReaderMutexLock visible(&replica_->visibility_mutex());
  engine::Znode node;
  const ZkError err = CheckRead(req->path(), engine::perms::kRead, caller.ctx, &node);
  if (req->watch() && err == ZkError::kOk) {
    watches_.Add(caller.ctx.session_id, req->path(), WatchKind::kData);
  }
  FillHeader(err, replica_->db().last_applied_zxid(), caller.ctx.session_id, resp->mutable_header());
  if (err == ZkError::kOk) {
    ToApiStat(engine::ClientStat(node), resp->mutable_stat());
    resp->set_data(std::move(node.data));
  }
  return grpc::Status::OK;
}

grpc::Status RockeeperService::GetChildren(grpc::ServerContext* context,
                                           const v1::GetChildrenRequest* req,
                                           v1::GetChildrenResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  RK_WATCH_NEEDS_SESSION(req, caller);
  absl::ReaderMutexLock visible(&replica_->visibility_mutex());
  engine::Znode node;
  ZkError err = CheckRead(req->path(), engine::perms::kRead, caller.ctx, &node);
  if (req->watch() && err == ZkError::kOk) {
    watches_.Add(caller.ctx.session_id, req->path(), WatchKind::kChild);
  }
  std::vector<std::string> names;
  if (err == ZkError::kOk &&
      !replica_->db().ListChildren(req->path(), &names).ok()) {
    err = ZkError::kSystemError;
  }
  FillHeader(err, replica_->db().last_applied_zxid(), caller.ctx.session_id, resp->mutable_header());
  if (err == ZkError::kOk) {
    ToApiStat(engine::ClientStat(node), resp->mutable_stat());
    for (auto& n : names) resp->add_children(std::move(n));
  }
  return grpc::Status::OK;
}

grpc::Status RockeeperService::GetAcl(grpc::ServerContext* context,
                                      const v1::GetAclRequest* req,
                                      v1::GetAclResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  absl::ReaderMutexLock visible(&replica_->visibility_mutex());
  engine::Znode node;
  const ZkError err =
      CheckRead(req->path(), engine::perms::kRead | engine::perms::kAdmin,
                caller.ctx, &node);
  FillHeader(err, replica_->db().last_applied_zxid(), caller.ctx.session_id, resp->mutable_header());
  if (err != ZkError::kOk) return grpc::Status::OK;
  absl::StatusOr<engine::AclVector> acl = replica_->db().GetAcl(node.acl_id);
  if (!acl.ok()) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        std::string(acl.status().message()));
  }
  // Callers without ADMIN see digest ids masked, as ZooKeeper does.
  const bool admin = engine::HasPermission(*acl, engine::perms::kAdmin,
                                           caller.ctx.auth_ids);
  for (const auto& a : *acl) {
    auto* out = resp->add_acl();
    out->set_perms(a.perms());
    out->set_scheme(a.scheme());
    std::string id = a.id();
    if (!admin && a.scheme() == "digest") id = id.substr(0, id.find(':')) + ":x";
    out->set_id(id);
  }
  ToApiStat(engine::ClientStat(node), resp->mutable_stat());
  return grpc::Status::OK;
}

grpc::Status RockeeperService::MultiRead(grpc::ServerContext* context,
                                         const v1::MultiReadRequest* req,
                                         v1::MultiReadResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  absl::ReaderMutexLock visible(&replica_->visibility_mutex());
  for (const auto& op : req->ops()) {
    auto* result = resp->add_results();
    engine::Znode node;
    const std::string& path = op.has_get_data() ? op.get_data().path()
                                                : op.get_children().path();
    ZkError err = CheckRead(path, engine::perms::kRead, caller.ctx, &node);
    if (err == ZkError::kOk && op.has_get_children()) {
      std::vector<std::string> names;
      if (!replica_->db().ListChildren(path, &names).ok()) {
        err = ZkError::kSystemError;
      }
      for (auto& n : names) result->add_children(std::move(n));
    } else if (err == ZkError::kOk) {
      result->set_data(node.data);
    }
    result->set_err(static_cast<int32_t>(err));
    if (err == ZkError::kOk) ToApiStat(engine::ClientStat(node), result->mutable_stat());
  }
  FillHeader(ZkError::kOk, replica_->db().last_applied_zxid(), caller.ctx.session_id, resp->mutable_header());
  return grpc::Status::OK;
}

grpc::Status RockeeperService::GetEphemerals(
    grpc::ServerContext* context, const v1::GetEphemeralsRequest* req,
    v1::GetEphemeralsResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  absl::ReaderMutexLock visible(&replica_->visibility_mutex());
  std::vector<std::string> paths;
  if (caller.ctx.session_id != 0 &&
      !replica_->db().ListEphemerals(caller.ctx.session_id, &paths).ok()) {
    return grpc::Status(grpc::StatusCode::INTERNAL, "listing ephemerals");
  }
  const std::string& prefix = req->prefix_path();
  for (auto& p : paths) {
    if (prefix.empty() || prefix == "/" || p.rfind(prefix, 0) == 0) {
      resp->add_paths(std::move(p));
    }
  }
  FillHeader(ZkError::kOk, replica_->db().last_applied_zxid(), caller.ctx.session_id, resp->mutable_header());
  return grpc::Status::OK;
}

grpc::Status RockeeperService::GetAllChildrenNumber(
    grpc::ServerContext* context, const v1::GetAllChildrenNumberRequest* req,
    v1::GetAllChildrenNumberResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  absl::ReaderMutexLock visible(&replica_->visibility_mutex());
  engine::Znode node;
  ZkError err = CheckRead(req->path(), engine::perms::kRead, caller.ctx, &node);
  if (err == ZkError::kOk) {
    absl::StatusOr<int64_t> n = replica_->db().CountDescendants(req->path());
    if (n.ok()) {
      resp->set_total_number(static_cast<int32_t>(*n));
    } else {
      err = ZkError::kSystemError;
    }
  }
  FillHeader(err, replica_->db().last_applied_zxid(), caller.ctx.session_id, resp->mutable_header());
  return grpc::Status::OK;
}

grpc::Status RockeeperService::Sync(grpc::ServerContext* context,
                                    const v1::SyncRequest* req,
                                    v1::SyncResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  // Standalone: every committed txn is applied before its write returns, so
  // this server is always up to date with the (only) leader.
  resp->set_path(req->path());
  FillHeader(engine::IsValidPath(req->path()) ? ZkError::kOk
                                              : ZkError::kBadArguments,
             replica_->db().last_applied_zxid(), caller.ctx.session_id, resp->mutable_header());
  return grpc::Status::OK;
}

grpc::Status RockeeperService::AddAuth(grpc::ServerContext* context,
                                       const v1::AddAuthRequest* req,
                                       v1::AddAuthResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  if (caller.ctx.session_id == 0) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "AddAuth needs a session (metadata rk-session-id)");
  }
  if (req->scheme() != "digest" ||
      req->auth().find(':') == std::string::npos) {
    FillHeader(ZkError::kAuthFailed, replica_->db().last_applied_zxid(), caller.ctx.session_id, resp->mutable_header());
    return grpc::Status::OK;
  }
  for (auto& id : engine::DigestAuthIds(req->auth(), options_.super_digest)) {
    sessions_.AddAuth(caller.ctx.session_id, std::move(id));
  }
  FillHeader(ZkError::kOk, replica_->db().last_applied_zxid(), caller.ctx.session_id, resp->mutable_header());
  return grpc::Status::OK;
}

grpc::Status RockeeperService::WhoAmI(grpc::ServerContext* context,
                                      const v1::WhoAmIRequest*,
                                      v1::WhoAmIResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  for (const auto& id : caller.ctx.auth_ids) {
    auto* info = resp->add_client_info();
    info->set_auth_scheme(id.scheme);
    info->set_user(id.scheme == "digest" ? id.id.substr(0, id.id.find(':'))
                                         : id.id);
  }
  FillHeader(ZkError::kOk, replica_->db().last_applied_zxid(), caller.ctx.session_id, resp->mutable_header());
  return grpc::Status::OK;
}

// --- Watches ----------------------------------------------------------------

grpc::Status RockeeperService::AddWatch(grpc::ServerContext* context,
                                        const v1::AddWatchRequest* req,
                                        v1::AddWatchResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  if (caller.ctx.session_id == 0) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "watches need a session (metadata rk-session-id)");
  }
  ZkError err = ZkError::kOk;
  if (!engine::IsValidPath(req->path())) {
    err = ZkError::kBadArguments;
  } else {
    watches_.Add(caller.ctx.session_id, req->path(),
                 req->mode() == v1::PERSISTENT_RECURSIVE_WATCH
                     ? WatchKind::kPersistentRecursive
                     : WatchKind::kPersistent);
  }
  FillHeader(err, replica_->db().last_applied_zxid(), caller.ctx.session_id,
             resp->mutable_header());
  return grpc::Status::OK;
}

grpc::Status RockeeperService::RemoveWatches(
    grpc::ServerContext* context, const v1::RemoveWatchesRequest* req,
    v1::RemoveWatchesResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  std::vector<WatchKind> kinds;
  switch (req->type()) {
    case v1::WATCHER_CHILDREN:
      kinds = {WatchKind::kChild};
      break;
    case v1::WATCHER_DATA:
      kinds = {WatchKind::kData, WatchKind::kExist};
      break;
    case v1::WATCHER_ANY:
      kinds = {WatchKind::kChild, WatchKind::kData, WatchKind::kExist,
               WatchKind::kPersistent, WatchKind::kPersistentRecursive};
      break;
    case v1::WATCHER_PERSISTENT:
      kinds = {WatchKind::kPersistent};
      break;
    case v1::WATCHER_PERSISTENT_RECURSIVE:
      kinds = {WatchKind::kPersistentRecursive};
      break;
    default:
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "unknown watcher type");
  }
  const int removed =
      caller.ctx.session_id == 0
          ? 0
          : watches_.Remove(caller.ctx.session_id, req->path(), kinds);
  FillHeader(removed > 0 ? ZkError::kOk : ZkError::kNoWatcher,
             replica_->db().last_applied_zxid(), caller.ctx.session_id,
             resp->mutable_header());
  return grpc::Status::OK;
}

grpc::Status RockeeperService::SetWatches(grpc::ServerContext* context,
                                          const v1::SetWatchesRequest* req,
                                          v1::SetWatchesResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  const int64_t sid = caller.ctx.session_id;
  if (sid == 0) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "watches need a session (metadata rk-session-id)");
  }
  absl::ReaderMutexLock visible(&replica_->visibility_mutex());
  const int64_t rel = req->relative_zxid();
  const engine::StateDb& db = replica_->db();
  using engine::WatchEventType;
  // As ZooKeeper's DataTree.setWatches: fire at once what changed after
  // `rel`, register the rest. Made-up events carry zxid -1.
  for (const std::string& path : req->data_watches()) {
    absl::StatusOr<engine::Znode> n = db.GetZnode(path);
    if (!n.ok()) {
      events_.Publish(sid, WatchEventType::kNodeDeleted, path, -1);
    } else if (n->mzxid > rel) {
      events_.Publish(sid, WatchEventType::kNodeDataChanged, path, -1);
    } else {
      watches_.Add(sid, path, WatchKind::kData);
    }
  }
  for (const std::string& path : req->exist_watches()) {
    if (db.GetZnode(path).ok()) {
      events_.Publish(sid, WatchEventType::kNodeCreated, path, -1);
    } else {
      watches_.Add(sid, path, WatchKind::kExist);
    }
  }
  for (const std::string& path : req->child_watches()) {
    absl::StatusOr<engine::Znode> n = db.GetZnode(path);
    if (!n.ok()) {
      events_.Publish(sid, WatchEventType::kNodeDeleted, path, -1);
    } else if (n->pzxid > rel) {
      events_.Publish(sid, WatchEventType::kNodeChildrenChanged, path, -1);
    } else {
      watches_.Add(sid, path, WatchKind::kChild);
    }
  }
  for (const std::string& path : req->persistent_watches()) {
    watches_.Add(sid, path, WatchKind::kPersistent);
  }
  for (const std::string& path : req->persistent_recursive_watches()) {
    watches_.Add(sid, path, WatchKind::kPersistentRecursive);
  }
  FillHeader(ZkError::kOk, db.last_applied_zxid(), sid, resp->mutable_header());
  return grpc::Status::OK;
}

namespace {

v1::EventType ToApiEventType(engine::WatchEventType t) {
  return static_cast<v1::EventType>(static_cast<int>(t));
}

v1::SessionMessage::State ToApiState(EventHub::End end) {
  switch (end) {
    case EventHub::End::kReplaced: return v1::SessionMessage::REPLACED;
    case EventHub::End::kClosed: return v1::SessionMessage::CLOSED;
    case EventHub::End::kExpired: return v1::SessionMessage::EXPIRED;
    case EventHub::End::kNone: break;
  }
  return v1::SessionMessage::STATE_UNSPECIFIED;
}

}  // namespace

grpc::Status RockeeperService::Session(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<v1::SessionMessage, v1::SessionRequest>* stream) {
  v1::SessionRequest first;
  if (!stream->Read(&first)) return grpc::Status::OK;
  const int64_t sid = first.session_id();
  std::optional<SessionInfo> info = sessions_.Get(sid);
  v1::SessionMessage msg;
  if (!info || info->password != first.password() || !sessions_.Touch(sid)) {
    msg.set_state(v1::SessionMessage::EXPIRED);
    stream->Write(msg);
    return grpc::Status::OK;
  }
  const uint64_t token = events_.Attach(sid);
  msg.set_state(v1::SessionMessage::CONNECTED);
  if (!stream->Write(msg)) {
    events_.Detach(sid, token);
    return grpc::Status::OK;
  }
  // Pings arrive on their own thread; this one writes.
  std::atomic<bool> reader_done{false};
  std::thread reader([&] {
    v1::SessionRequest req;
    while (stream->Read(&req)) {
      sessions_.Touch(sid);
      if (req.ping()) events_.Ping(sid, token);
    }
    reader_done = true;
    events_.Ping(sid, token);  // wake the writer
  });
  for (;;) {
    EventHub::Batch batch = events_.Wait(sid, token, absl::Seconds(1));
    bool ok = true;
    for (const QueuedEvent& e : batch.events) {
      v1::SessionMessage m;
      auto* ev = m.mutable_event();
      ev->set_seq(e.seq);
      ev->set_type(ToApiEventType(e.type));
      ev->set_path(e.path);
      ev->set_zxid(e.zxid);
      if (!(ok = stream->Write(m))) break;
      events_.Ack(sid, e.seq);
    }
    if (ok && batch.pong && !reader_done) {
      v1::SessionMessage m;
      m.set_pong(true);
      ok = stream->Write(m);
    }
    if (ok && batch.end != EventHub::End::kNone) {
      v1::SessionMessage m;
      m.set_state(ToApiState(batch.end));
      stream->Write(m);
      break;
    }
    if (!ok || reader_done || context->IsCancelled()) break;
  }
  context->TryCancel();  // unblocks the reader's Read
  reader.join();
  events_.Detach(sid, token);
  return grpc::Status::OK;
}

}  // namespace rockeeper::rpc
