#include "rpc/grpc_service.h"

#include <algorithm>
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

void RockeeperService::ExpiryLoop() {
  while (!stop_.WaitForNotificationWithTimeout(options_.expiry_interval)) {
    for (int64_t id : sessions_.Expired(absl::Now())) {
      engine::RequestContext ctx;
      ctx.session_id = id;
      sessions_.Remove(id);
      replication::SubmitResult r =
          SubmitAndWait(ctx, engine::CloseSessionRequest{});
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
  replica_->Submit(ctx, request, [waiter](replication::SubmitResult r) {
    waiter->result = std::move(r);
    waiter->done.Notify();
  });
  waiter->done.WaitForNotification();
  return std::move(waiter->result);
}

void RockeeperService::FillHeader(ZkError err, int64_t zxid,
                                  v1::ResponseHeader* header) const {
  header->set_zxid(zxid);
  header->set_server_id(options_.server_id);
  header->set_err(static_cast<int32_t>(err));
  if (err != ZkError::kOk) {
    header->set_err_name(std::string(engine::ZkErrorName(err)));
  }
}

grpc::Status RockeeperService::FinishWrite(
    const replication::SubmitResult& result, v1::ResponseHeader* header) {
  if (!result.status.ok()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        std::string(result.status.message()));
  }
  const int64_t zxid = result.outcome.txn
                           ? result.outcome.txn->header().zxid()
                           : replica_->db().last_applied_zxid();
  FillHeader(result.outcome.err, zxid, header);
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
  if (req->session_id() != 0) {  // resume
    std::optional<SessionInfo> s = sessions_.Get(req->session_id());
    if (!s || s->password != req->password() ||
        !sessions_.Touch(req->session_id())) {
      FillHeader(ZkError::kSessionExpired, applied, resp->mutable_header());
      return grpc::Status::OK;
    }
    resp->set_session_id(s->id);
    resp->set_password(s->password);
    resp->set_timeout_ms(s->timeout_ms);
    FillHeader(ZkError::kOk, applied, resp->mutable_header());
    return grpc::Status::OK;
  }
  Caller caller = ResolveCaller(context);
  engine::RequestContext ctx;
  ctx.session_id = sessions_.NextSessionId();
  const std::string password = SessionTracker::NewPassword();
  replication::SubmitResult r =
      SubmitAndWait(ctx, engine::CreateSessionRequest{timeout, password});
  grpc::Status st = FinishWrite(r, resp->mutable_header());
  if (st.ok() && r.outcome.err == ZkError::kOk) {
    sessions_.Add(ctx.session_id, timeout, password);
    resp->set_session_id(ctx.session_id);
    resp->set_password(password);
    resp->set_timeout_ms(timeout);
  }
  (void)caller;
  return st;
}

grpc::Status RockeeperService::Close(grpc::ServerContext* context,
                                     const v1::CloseRequest*,
                                     v1::CloseResponse* resp) {
  Caller caller = ResolveCaller(context);
  if (caller.ctx.session_id == 0) {
    FillHeader(caller.err == ZkError::kOk ? ZkError::kBadArguments : caller.err,
               replica_->db().last_applied_zxid(), resp->mutable_header());
    return grpc::Status::OK;
  }
  sessions_.Remove(caller.ctx.session_id);
  return FinishWrite(SubmitAndWait(caller.ctx, engine::CloseSessionRequest{}),
                     resp->mutable_header());
}

grpc::Status RockeeperService::Heartbeat(grpc::ServerContext* context,
                                         const v1::HeartbeatRequest*,
                                         v1::HeartbeatResponse* resp) {
  Caller caller = ResolveCaller(context);
  ZkError err = caller.err;
  if (err == ZkError::kOk && caller.ctx.session_id == 0) {
    err = ZkError::kBadArguments;
  }
  FillHeader(err, replica_->db().last_applied_zxid(), resp->mutable_header());
  return grpc::Status::OK;
}

// --- Writes ---------------------------------------------------------------

#define RK_RESOLVE_OR_RETURN(caller, context, resp)                      \
  Caller caller = ResolveCaller(context);                                \
  if (caller.err != ZkError::kOk) {                                      \
    FillHeader(caller.err, replica_->db().last_applied_zxid(),           \
               (resp)->mutable_header());                                \
    return grpc::Status::OK;                                             \
  }

grpc::Status RockeeperService::Create(grpc::ServerContext* context,
                                      const v1::CreateRequest* req,
                                      v1::CreateResponse* resp) {
  if (req->data().size() > options_.max_data_bytes) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "data larger than jute.maxbuffer");
  }
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  replication::SubmitResult r = SubmitAndWait(caller.ctx, ToCreate(*req));
  grpc::Status st = FinishWrite(r, resp->mutable_header());
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
                                                       req->version())}),
      resp->mutable_header());
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
  grpc::Status st = FinishWrite(r, resp->mutable_header());
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
  grpc::Status st = FinishWrite(r, resp->mutable_header());
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
  grpc::Status st = FinishWrite(r, resp->mutable_header());
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

#define RK_NO_WATCH(req)                                                   \
  if ((req)->watch()) {                                                    \
    return grpc::Status(grpc::StatusCode::UNIMPLEMENTED,                   \
                        "watches are not implemented yet");                \
  }

grpc::Status RockeeperService::Exists(grpc::ServerContext* context,
                                      const v1::ExistsRequest* req,
                                      v1::ExistsResponse* resp) {
  RK_NO_WATCH(req);
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  engine::Znode node;
  const ZkError err = CheckRead(req->path(), engine::perms::kRead, caller.ctx, &node);
  FillHeader(err, replica_->db().last_applied_zxid(), resp->mutable_header());
  if (err == ZkError::kOk) ToApiStat(engine::ClientStat(node), resp->mutable_stat());
  return grpc::Status::OK;
}

grpc::Status RockeeperService::GetData(grpc::ServerContext* context,
                                       const v1::GetDataRequest* req,
                                       v1::GetDataResponse* resp) {
  RK_NO_WATCH(req);
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  engine::Znode node;
  const ZkError err = CheckRead(req->path(), engine::perms::kRead, caller.ctx, &node);
  FillHeader(err, replica_->db().last_applied_zxid(), resp->mutable_header());
  if (err == ZkError::kOk) {
    ToApiStat(engine::ClientStat(node), resp->mutable_stat());
    resp->set_data(std::move(node.data));
  }
  return grpc::Status::OK;
}

grpc::Status RockeeperService::GetChildren(grpc::ServerContext* context,
                                           const v1::GetChildrenRequest* req,
                                           v1::GetChildrenResponse* resp) {
  RK_NO_WATCH(req);
  RK_RESOLVE_OR_RETURN(caller, context, resp);
  engine::Znode node;
  ZkError err = CheckRead(req->path(), engine::perms::kRead, caller.ctx, &node);
  std::vector<std::string> names;
  if (err == ZkError::kOk &&
      !replica_->db().ListChildren(req->path(), &names).ok()) {
    err = ZkError::kSystemError;
  }
  FillHeader(err, replica_->db().last_applied_zxid(), resp->mutable_header());
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
  engine::Znode node;
  const ZkError err =
      CheckRead(req->path(), engine::perms::kRead | engine::perms::kAdmin,
                caller.ctx, &node);
  FillHeader(err, replica_->db().last_applied_zxid(), resp->mutable_header());
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
  FillHeader(ZkError::kOk, replica_->db().last_applied_zxid(),
             resp->mutable_header());
  return grpc::Status::OK;
}

grpc::Status RockeeperService::GetEphemerals(
    grpc::ServerContext* context, const v1::GetEphemeralsRequest* req,
    v1::GetEphemeralsResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
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
  FillHeader(ZkError::kOk, replica_->db().last_applied_zxid(),
             resp->mutable_header());
  return grpc::Status::OK;
}

grpc::Status RockeeperService::GetAllChildrenNumber(
    grpc::ServerContext* context, const v1::GetAllChildrenNumberRequest* req,
    v1::GetAllChildrenNumberResponse* resp) {
  RK_RESOLVE_OR_RETURN(caller, context, resp);
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
  FillHeader(err, replica_->db().last_applied_zxid(), resp->mutable_header());
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
             replica_->db().last_applied_zxid(), resp->mutable_header());
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
    FillHeader(ZkError::kAuthFailed, replica_->db().last_applied_zxid(),
               resp->mutable_header());
    return grpc::Status::OK;
  }
  for (auto& id : engine::DigestAuthIds(req->auth(), options_.super_digest)) {
    sessions_.AddAuth(caller.ctx.session_id, std::move(id));
  }
  FillHeader(ZkError::kOk, replica_->db().last_applied_zxid(),
             resp->mutable_header());
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
  FillHeader(ZkError::kOk, replica_->db().last_applied_zxid(),
             resp->mutable_header());
  return grpc::Status::OK;
}

}  // namespace rockeeper::rpc
