#include "rpc/grpc_service.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <thread>
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

// The caller's IP: from the transport, or, for in-process callers (the
// ZooKeeper wire protocol front end), from the rk-client-ip metadata.
std::string ClientIp(const grpc::ServerContextBase* context) {
  const std::string peer = context->peer();
  // In-process peers are "unknown" (or "inproc..."): only those may name the
  // client in metadata, so a network client cannot claim another IP.
  if (peer.rfind("ipv4:", 0) != 0 && peer.rfind("ipv6:", 0) != 0) {
    const auto& md = context->client_metadata();
    auto it = md.find("rk-client-ip");
    if (it != md.end())
      return std::string(it->second.data(), it->second.size());
    return "";
  }
  return PeerAddress(peer);
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

RockeeperService::RockeeperService(replication::Replica* replica,
                                   ServiceOptions options)
    : replica_(replica),
      options_(options),
      own_metrics_(options.metrics == nullptr
                       ? std::make_unique<ServerMetrics>()
                       : nullptr),
      metrics_(options.metrics != nullptr ? options.metrics
                                          : own_metrics_.get()),
      sessions_(options.server_id) {
  // Sessions survive restarts: give each a fresh deadline, as ZooKeeper.
  std::vector<engine::SessionRecord> stored;
  if (replica_->db().ListSessions(&stored).ok()) {
    for (const auto& s : stored) {
      sessions_.Add(s.session_id(), s.timeout_ms(), s.password());
    }
  }
  replica_->SetApplyListener(
      [this](const std::vector<engine::Txn>& txns,
             const std::vector<engine::WatchTrigger>& triggers) {
        OnApplied(txns, triggers);
      });
  replica_->SetSessionTouchListener([this](const std::vector<int64_t>& ids) {
    for (int64_t id : ids) sessions_.Touch(id);
  });
  replicated_ = replica_->status().mode != "standalone";
  was_authority_ = replica_->is_session_authority();
  sessions_.set_enforce_deadlines(was_authority_);
  expiry_thread_ = std::thread([this] { ExpiryLoop(); });
}

bool RockeeperService::Serves() const {
  if (!replica_->serving()) return false;
  return options_.leader_serves || !replicated_ ||
         !replica_->is_session_authority();
}

void RockeeperService::OnApplied(
    const std::vector<engine::Txn>& txns,
    const std::vector<engine::WatchTrigger>& triggers) {
  PublishTriggers(triggers);
  for (const engine::Txn& t : txns) {
    const int64_t sid = t.header().session_id();
    if (t.has_create_session()) {
      if (!sessions_.Get(sid)) {
        sessions_.Add(sid, t.create_session().timeout_ms(),
                      t.create_session().password());
      }
    } else if (t.has_close_session()) {
      // Still tracked here: closed or expired through another server (a
      // local close or expiry forgot it before submitting).
      if (sessions_.Get(sid)) {
        sessions_.Remove(sid);
        EndSession(sid, EventHub::End::kExpired);
      }
    }
  }
}

RockeeperService::~RockeeperService() {
  stop_.Notify();
  if (expiry_thread_.joinable()) expiry_thread_.join();
  replica_->SetApplyListener(nullptr);
  replica_->SetSessionTouchListener(nullptr);
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
    UnstickOrder();
    const bool authority = replica_->is_session_authority();
    if (authority != was_authority_) {
      // A new leader gives every session a full timeout from now, as
      // ZooKeeper does: their touches went to the old leader.
      if (authority) sessions_.ResetDeadlines();
      sessions_.set_enforce_deadlines(authority);
      was_authority_ = authority;
      next_reap = absl::Now() + options_.container_check_interval;
    }
    std::vector<int64_t> touched = sessions_.TakeTouched();
    if (!authority) {
      if (!touched.empty()) replica_->RelaySessionTouches(std::move(touched));
      continue;
    }
    if (absl::Now() >= next_reap) {
      ReapContainers();
      next_reap = absl::Now() + options_.container_check_interval;
    }
    for (int64_t id : sessions_.Expired(absl::Now())) {
      engine::RequestContext ctx;
      ctx.session_id = id;
      sessions_.Remove(id);
      metrics_->sessions_expired.Add();
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
    grpc::ServerContextBase* context) {
  Caller caller;
  const std::string ip = ClientIp(context);
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
  const absl::Time start = absl::Now();
  replica_->Submit(ctx, request,
                   [this, waiter, start](replication::SubmitResult r) {
                     if (r.outcome.txn) {
                       metrics_->RecordCommit(
                           absl::ToInt64Microseconds(absl::Now() - start));
                     }
                     PublishTriggers(r.triggers);
                     waiter->result = std::move(r);
                     waiter->done.Notify();
                   });
  waiter->done.WaitForNotification();
  return std::move(waiter->result);
}

void RockeeperService::PublishTriggers(
    const std::vector<engine::WatchTrigger>& triggers) {
  // On the apply thread, under the replica's visibility mutex: events are
  // queued before any reader can see the change.
  for (const engine::WatchTrigger& t : triggers) {
    std::vector<Notification> notes = watches_.Trigger(t);
    if (notes.empty()) continue;
    // As ZooKeeper, a watcher that may not READ the node gets no event. A
    // deleted node's ACL is gone: its deletion is always delivered.
    std::optional<engine::AclVector> acl;
    if (t.type != engine::WatchEventType::kNodeDeleted) {
      absl::StatusOr<engine::Znode> node = replica_->db().GetZnode(t.path);
      if (node.ok()) {
        absl::StatusOr<engine::AclVector> a =
            replica_->db().GetAcl(node->acl_id);
        if (a.ok()) acl = *std::move(a);
      }
    }
    for (const Notification& n : notes) {
      if (acl && !options_.skip_acl) {
        std::optional<SessionInfo> info = sessions_.Get(n.session_id);
        std::vector<engine::AuthId> ids;
        if (info) {
          if (!info->client_ip.empty()) ids.push_back({"ip", info->client_ip});
          ids.insert(ids.end(), info->auth_ids.begin(), info->auth_ids.end());
        }
        if (!engine::HasPermission(*acl, engine::perms::kRead, ids)) continue;
      }
      events_.Publish(n.session_id, n.type, n.path, t.zxid);
    }
  }
}

void RockeeperService::SubmitAsync(
    const engine::RequestContext& ctx, const engine::WriteRequest& request,
    std::function<void(replication::SubmitResult)> done) {
  const absl::Time start = absl::Now();
  replica_->Submit(
      ctx, request,
      [this, start,
       done = std::move(done)](replication::SubmitResult r) mutable {
        if (r.outcome.txn) {
          metrics_->RecordCommit(
              absl::ToInt64Microseconds(absl::Now() - start));
        }
        PublishTriggers(r.triggers);
        auto result = std::make_shared<replication::SubmitResult>(std::move(r));
        completions_.Post([done, result] { done(std::move(*result)); });
      });
}

// --- Per-connection order of in-process callers ----------------------------
//
// The wire protocol front end sends each ZooKeeper request as its own gRPC
// call; gRPC may start the handlers of concurrent calls in any order, but
// ZooKeeper runs a session's requests in the order they were sent. So the
// front end numbers its calls ("rk-order: <connection>:<seq>", seq 1, 2, ...
// per connection) and calls are admitted in that order here.

bool RockeeperService::OrderKey(grpc::ServerContextBase* ctx, uint64_t* conn,
                                uint64_t* seq) {
  const std::string peer = ctx->peer();
  if (peer.rfind("ipv4:", 0) == 0 || peer.rfind("ipv6:", 0) == 0) {
    return false;  // network callers have their own stream order
  }
  const auto& md = ctx->client_metadata();
  auto it = md.find("rk-order");
  if (it == md.end()) return false;
  const absl::string_view v(it->second.data(), it->second.size());
  const size_t colon = v.find(':');
  return colon != absl::string_view::npos &&
         absl::SimpleAtoi(v.substr(0, colon), conn) &&
         absl::SimpleAtoi(v.substr(colon + 1), seq);
}

void RockeeperService::Admit(uint64_t conn, uint64_t seq,
                             std::function<void()> start) {
  std::vector<std::function<void()>> ready;
  {
    absl::MutexLock lock(&order_mu_);
    OrderState& st = order_[conn];
    st.waiting.emplace(seq, std::move(start));
    if (st.stuck_since == absl::InfiniteFuture()) st.stuck_since = absl::Now();
    if (st.draining) return;  // the draining thread will run it
    st.draining = true;
  }
  // This thread runs every admissible call, in order, until none is left.
  for (;;) {
    {
      absl::MutexLock lock(&order_mu_);
      OrderState& st = order_[conn];
      while (!st.waiting.empty() && st.waiting.begin()->first <= st.next) {
        ready.push_back(std::move(st.waiting.begin()->second));
        st.waiting.erase(st.waiting.begin());
        ++st.next;
      }
      if (ready.empty()) {
        st.draining = false;
        st.stuck_since =
            st.waiting.empty() ? absl::InfiniteFuture() : absl::Now();
        if (st.forgotten && st.waiting.empty()) order_.erase(conn);
        return;
      }
    }
    for (auto& f : ready) f();
    ready.clear();
  }
}

void RockeeperService::UnstickOrder() {
  const absl::Time limit = absl::Now() - absl::Seconds(5);
  std::vector<std::pair<uint64_t, uint64_t>> unstick;  // conn, seq
  {
    absl::MutexLock lock(&order_mu_);
    for (auto& [conn, st] : order_) {
      if (!st.draining && !st.waiting.empty() && st.stuck_since < limit) {
        std::fprintf(
            stderr,
            "WARN wire connection %llu: call %llu never arrived; "
            "admitting %llu\n",
            static_cast<unsigned long long>(conn),
            static_cast<unsigned long long>(st.next),
            static_cast<unsigned long long>(st.waiting.begin()->first));
        st.next = st.waiting.begin()->first;
        // Re-queue the first waiting call through Admit, which drains.
        unstick.emplace_back(conn, st.next);
      }
    }
  }
  for (const auto& [conn, seq] : unstick) {
    std::function<void()> first;
    {
      absl::MutexLock lock(&order_mu_);
      auto it = order_.find(conn);
      if (it == order_.end()) continue;
      auto w = it->second.waiting.find(seq);
      if (w == it->second.waiting.end()) continue;
      first = std::move(w->second);
      it->second.waiting.erase(w);
    }
    Admit(conn, seq, std::move(first));
  }
}

void RockeeperService::ForgetConnection(uint64_t conn) {
  absl::MutexLock lock(&order_mu_);
  auto it = order_.find(conn);
  if (it == order_.end()) return;
  if (!it->second.draining && it->second.waiting.empty()) {
    order_.erase(it);
  } else {
    it->second.forgotten = true;  // erased once drained
  }
}

grpc::ServerUnaryReactor* RockeeperService::Serve(
    grpc::CallbackServerContext* ctx, OpKind op, v1::ResponseHeader* header,
    Body body) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  uint64_t conn = 0;
  uint64_t seq = 0;
  if (OrderKey(ctx, &conn, &seq)) {
    Admit(conn, seq, [this, ctx, op, header, reactor, body = std::move(body)] {
      Start(ctx, op, header, reactor, body);
    });
  } else {
    Start(ctx, op, header, reactor, std::move(body));
  }
  return reactor;
}

void RockeeperService::Start(grpc::CallbackServerContext* ctx, OpKind op,
                             v1::ResponseHeader* header,
                             grpc::ServerUnaryReactor* reactor, Body body) {
  // Backpressure: count the request until it finishes.
  if (in_flight_.fetch_add(1) >= options_.max_outstanding_requests) {
    in_flight_.fetch_sub(1);
    metrics_->requests_throttled.Add();
    metrics_->RecordRequest(op, 0, /*error=*/true);
    reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 "too many outstanding requests"));
    return;
  }
  if (!Serves()) {
    // No quorum (or still syncing), or a leader told not to serve: like
    // ZooKeeper, which drops clients then, send the client elsewhere.
    in_flight_.fetch_sub(1);
    metrics_->RecordRequest(op, 0, /*error=*/true);
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                 "this server has no quorum: looking for a "
                                 "leader"));
    return;
  }
  Caller caller = ResolveCaller(ctx);
  if (caller.err != ZkError::kOk) {
    FillHeader(caller.err, replica_->db().last_applied_zxid(), 0, header);
    in_flight_.fetch_sub(1);
    metrics_->RecordRequest(op, 0, /*error=*/true);
    reactor->Finish(grpc::Status::OK);
    return;
  }
  const int64_t sid = caller.ctx.session_id;
  const absl::Time start = absl::Now();
  // Writes pipeline within a session (their order is fixed once submitted);
  // everything else waits for the session's earlier requests.
  const bool write = op == OpKind::kCreate || op == OpKind::kDelete ||
                     op == OpKind::kSetData || op == OpKind::kSetAcl ||
                     op == OpKind::kMulti;
  serializer_.Run(
      sid, write,
      [this, reactor, start, op, header, write, caller = std::move(caller),
       body = std::move(body)](SessionSerializer::Done ordered,
                               SessionSerializer::Done done) {
        // Ids added by an AddAuth queued before this request count.
        Caller current = caller;
        if (current.ctx.session_id != 0) {
          if (auto info = sessions_.Get(current.ctx.session_id)) {
            std::vector<engine::AuthId> ids;
            for (auto& id : current.ctx.auth_ids) {
              if (id.scheme == "ip") ids.push_back(id);
            }
            for (auto& id : info->auth_ids) ids.push_back(id);
            current.ctx.auth_ids = std::move(ids);
          }
        }
        body(current, [this, reactor, done, start, op,
                       header](const grpc::Status& st) {
          const int64_t us = absl::ToInt64Microseconds(absl::Now() - start);
          metrics_->RecordRequest(op, us, !st.ok() || header->err() != 0);
          in_flight_.fetch_sub(1);
          reactor->Finish(st);
          done();
        });
        // A write's body has submitted it (or already finished): its place in
        // the session's order is fixed.
        if (write) ordered();
      });
}

RockeeperService::LatencyStats RockeeperService::latency() const {
  const MinMaxAvg::Value v = metrics_->latency_us();
  LatencyStats s;
  s.count = v.count;
  s.min_us = v.min;
  s.max_us = v.max;
  s.avg_us = v.avg;
  return s;
}

void RockeeperService::ResetStats() { metrics_->ResetStats(); }

void RockeeperService::EndSession(int64_t session_id, EventHub::End why) {
  watches_.RemoveSession(session_id);
  events_.Close(session_id, why);
}

void RockeeperService::FillHeader(ZkError err, int64_t zxid, int64_t session_id,
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
  const int64_t zxid = result.outcome.txn ? result.outcome.txn->header().zxid()
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

// --- Sessions -------------------------------------------------------------

grpc::ServerUnaryReactor* RockeeperService::Connect(
    grpc::CallbackServerContext* ctx, const v1::ConnectRequest* req,
    v1::ConnectResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  if (!Serves()) {
    metrics_->RecordRequest(OpKind::kCreateSession, 0, /*error=*/true);
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                 "this server has no quorum: looking for a "
                                 "leader"));
    return reactor;
  }
  const int64_t applied = replica_->db().last_applied_zxid();
  const absl::Time start = absl::Now();
  if (req->last_zxid_seen() > applied) {
    metrics_->RecordRequest(OpKind::kCreateSession, 0, /*error=*/true);
    reactor->Finish(grpc::Status(
        grpc::StatusCode::FAILED_PRECONDITION,
        absl::StrCat("client has seen zxid ", req->last_zxid_seen(),
                     ", newer than this server's ", applied)));
    return reactor;
  }
  const int32_t timeout =
      std::clamp(req->timeout_ms(), options_.min_session_timeout_ms,
                 options_.max_session_timeout_ms);
  if (req->session_id() != 0) {  // resume
    std::optional<SessionInfo> s = sessions_.Get(req->session_id());
    if (!s || s->password != req->password() ||
        !sessions_.Touch(req->session_id())) {
      FillHeader(ZkError::kSessionExpired, applied, 0, resp->mutable_header());
    } else {
      resp->set_session_id(s->id);
      resp->set_password(s->password);
      resp->set_timeout_ms(s->timeout_ms);
      FillHeader(ZkError::kOk, applied, s->id, resp->mutable_header());
    }
    metrics_->RecordRequest(OpKind::kCreateSession,
                            absl::ToInt64Microseconds(absl::Now() - start),
                            resp->header().err() != 0);
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  const std::string ip = ClientIp(ctx);
  if (options_.max_sessions_per_ip > 0 &&
      sessions_.CountForIp(ip) >=
          static_cast<size_t>(options_.max_sessions_per_ip)) {
    metrics_->RecordRequest(OpKind::kCreateSession, 0, /*error=*/true);
    reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                 "too many sessions from " + ip));
    return reactor;
  }
  engine::RequestContext rctx;
  rctx.session_id = sessions_.NextSessionId();
  const std::string password = SessionTracker::NewPassword();
  SubmitAsync(rctx, engine::CreateSessionRequest{timeout, password},
              [this, reactor, resp, rctx, password, timeout, ip,
               start](replication::SubmitResult r) {
                grpc::Status st =
                    FinishWrite(r, rctx.session_id, resp->mutable_header());
                const bool ok = st.ok() && r.outcome.err == ZkError::kOk;
                metrics_->RecordRequest(
                    OpKind::kCreateSession,
                    absl::ToInt64Microseconds(absl::Now() - start), !ok);
                if (ok) {
                  metrics_->sessions_created.Add();
                  sessions_.Add(rctx.session_id, timeout, password, ip);
                  resp->set_session_id(rctx.session_id);
                  resp->set_password(password);
                  resp->set_timeout_ms(timeout);
                }
                reactor->Finish(st);
              });
  return reactor;
}

grpc::ServerUnaryReactor* RockeeperService::Close(
    grpc::CallbackServerContext* ctx, const v1::CloseRequest*,
    v1::CloseResponse* resp) {
  return Serve(
      ctx, OpKind::kCloseSession, resp->mutable_header(),
      [this, resp](const Caller& caller, Finish finish) {
        const int64_t sid = caller.ctx.session_id;
        if (sid == 0) {
          FillHeader(ZkError::kBadArguments, replica_->db().last_applied_zxid(),
                     0, resp->mutable_header());
          finish(grpc::Status::OK);
          return;
        }
        sessions_.Remove(sid);
        metrics_->sessions_closed.Add();
        SubmitAsync(caller.ctx, engine::CloseSessionRequest{},
                    [this, resp, sid, finish](replication::SubmitResult r) {
                      grpc::Status st =
                          FinishWrite(r, sid, resp->mutable_header());
                      EndSession(sid, EventHub::End::kClosed);
                      finish(st);
                    });
      });
}

grpc::ServerUnaryReactor* RockeeperService::Heartbeat(
    grpc::CallbackServerContext* ctx, const v1::HeartbeatRequest*,
    v1::HeartbeatResponse* resp) {
  return Serve(ctx, OpKind::kPing, resp->mutable_header(),
               [this, resp](const Caller& caller, Finish finish) {
                 FillHeader(caller.ctx.session_id == 0 ? ZkError::kBadArguments
                                                       : ZkError::kOk,
                            replica_->db().last_applied_zxid(),
                            caller.ctx.session_id, resp->mutable_header());
                 finish(grpc::Status::OK);
               });
}

// --- Writes ---------------------------------------------------------------

namespace {

grpc::Status CheckDataSize(size_t bytes, size_t max) {
  if (bytes > max) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "data larger than jute.maxbuffer");
  }
  return grpc::Status::OK;
}

}  // namespace

grpc::ServerUnaryReactor* RockeeperService::Create(
    grpc::CallbackServerContext* ctx, const v1::CreateRequest* req,
    v1::CreateResponse* resp) {
  if (grpc::Status st =
          CheckDataSize(req->data().size(), options_.max_data_bytes);
      !st.ok()) {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(st);
    return reactor;
  }
  return Serve(
      ctx, OpKind::kCreate, resp->mutable_header(),
      [this, req, resp](const Caller& caller, Finish finish) {
        const int64_t sid = caller.ctx.session_id;
        SubmitAsync(
            caller.ctx, ToCreate(*req),
            [this, resp, sid, finish](replication::SubmitResult r) {
              grpc::Status st = FinishWrite(r, sid, resp->mutable_header());
              if (st.ok() && r.outcome.txn) {
                resp->set_path(r.outcome.txn->create().path());
                ToApiStat(engine::StatOfCreated(r.outcome.txn->create(),
                                                r.outcome.txn->header()),
                          resp->mutable_stat());
              }
              finish(st);
            });
      });
}

grpc::ServerUnaryReactor* RockeeperService::Delete(
    grpc::CallbackServerContext* ctx, const v1::DeleteRequest* req,
    v1::DeleteResponse* resp) {
  return Serve(
      ctx, OpKind::kDelete, resp->mutable_header(),
      [this, req, resp](const Caller& caller, Finish finish) {
        const int64_t sid = caller.ctx.session_id;
        SubmitAsync(
            caller.ctx,
            engine::DeleteRequest{
                req->path(), VersionOrAny(req->has_version(), req->version())},
            [this, resp, sid, finish](replication::SubmitResult r) {
              finish(FinishWrite(r, sid, resp->mutable_header()));
            });
      });
}

grpc::ServerUnaryReactor* RockeeperService::SetData(
    grpc::CallbackServerContext* ctx, const v1::SetDataRequest* req,
    v1::SetDataResponse* resp) {
  if (grpc::Status st =
          CheckDataSize(req->data().size(), options_.max_data_bytes);
      !st.ok()) {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(st);
    return reactor;
  }
  return Serve(ctx, OpKind::kSetData, resp->mutable_header(),
               [this, req, resp](const Caller& caller, Finish finish) {
                 const int64_t sid = caller.ctx.session_id;
                 SubmitAsync(
                     caller.ctx,
                     engine::SetDataRequest{
                         req->path(), req->data(),
                         VersionOrAny(req->has_version(), req->version())},
                     [this, resp, sid, finish](replication::SubmitResult r) {
                       grpc::Status st =
                           FinishWrite(r, sid, resp->mutable_header());
                       if (st.ok() && r.outcome.txn) {
                         ToApiStat(r.outcome.txn->set_data().stat(),
                                   resp->mutable_stat());
                       }
                       finish(st);
                     });
               });
}

grpc::ServerUnaryReactor* RockeeperService::SetAcl(
    grpc::CallbackServerContext* ctx, const v1::SetAclRequest* req,
    v1::SetAclResponse* resp) {
  return Serve(
      ctx, OpKind::kSetAcl, resp->mutable_header(),
      [this, req, resp](const Caller& caller, Finish finish) {
        engine::SetAclRequest set;
        set.path = req->path();
        for (const v1::Acl& a : req->acl()) {
          set.acl.push_back(engine::MakeAcl(a.perms(), a.scheme(), a.id()));
        }
        set.version = VersionOrAny(req->has_version(), req->version());
        const int64_t sid = caller.ctx.session_id;
        SubmitAsync(caller.ctx, set,
                    [this, resp, sid, finish](replication::SubmitResult r) {
                      grpc::Status st =
                          FinishWrite(r, sid, resp->mutable_header());
                      if (st.ok() && r.outcome.txn) {
                        ToApiStat(r.outcome.txn->set_acl().stat(),
                                  resp->mutable_stat());
                      }
                      finish(st);
                    });
      });
}

namespace {

// Converts a v1 multi into the engine's; INVALID_ARGUMENT for an empty op.
grpc::Status ToMulti(const v1::MultiRequest& req, engine::MultiRequest* multi) {
  for (const auto& op : req.ops()) {
    switch (op.op_case()) {
      case v1::MultiRequest::Op::kCreate:
        multi->ops.push_back(ToCreate(op.create()));
        break;
      case v1::MultiRequest::Op::kDelete:
        multi->ops.push_back(engine::DeleteRequest{
            op.delete_().path(),
            VersionOrAny(op.delete_().has_version(), op.delete_().version())});
        break;
      case v1::MultiRequest::Op::kSetData:
        multi->ops.push_back(
            engine::SetDataRequest{op.set_data().path(), op.set_data().data(),
                                   VersionOrAny(op.set_data().has_version(),
                                                op.set_data().version())});
        break;
      case v1::MultiRequest::Op::kCheck:
        multi->ops.push_back(engine::CheckRequest{
            op.check().path(),
            VersionOrAny(op.check().has_version(), op.check().version())});
        break;
      case v1::MultiRequest::Op::OP_NOT_SET:
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "multi op without an operation");
    }
  }
  return grpc::Status::OK;
}

void FillMultiResults(const replication::SubmitResult& r,
                      v1::MultiResponse* resp) {
  if (!r.outcome.txn) {
    for (engine::ZkError e : r.outcome.multi_errors) {
      resp->add_results()->set_err(static_cast<int32_t>(e));
    }
    return;
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
}

}  // namespace

grpc::ServerUnaryReactor* RockeeperService::Multi(
    grpc::CallbackServerContext* ctx, const v1::MultiRequest* req,
    v1::MultiResponse* resp) {
  auto multi = std::make_shared<engine::MultiRequest>();
  if (grpc::Status st = ToMulti(*req, multi.get()); !st.ok()) {
    auto* reactor = ctx->DefaultReactor();
    reactor->Finish(st);
    return reactor;
  }
  return Serve(ctx, OpKind::kMulti, resp->mutable_header(),
               [this, multi, resp](const Caller& caller, Finish finish) {
                 const int64_t sid = caller.ctx.session_id;
                 SubmitAsync(
                     caller.ctx, *multi,
                     [this, resp, sid, finish](replication::SubmitResult r) {
                       grpc::Status st =
                           FinishWrite(r, sid, resp->mutable_header());
                       if (st.ok()) FillMultiResults(r, resp);
                       finish(st);
                     });
               });
}

// --- Reads ----------------------------------------------------------------
// Reads run inline, holding the replica's visibility mutex shared while they
// read and register watches, and release it before finishing (the next
// queued request of the session may run inside `finish`).

namespace {

grpc::Status WatchNeedsSession(bool watch, const int64_t session_id) {
  if (watch && session_id == 0) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "watches need a session (metadata rk-session-id)");
  }
  return grpc::Status::OK;
}

}  // namespace

grpc::ServerUnaryReactor* RockeeperService::Exists(
    grpc::CallbackServerContext* ctx, const v1::ExistsRequest* req,
    v1::ExistsResponse* resp) {
  return Serve(ctx, OpKind::kExists, resp->mutable_header(),
               [this, req, resp](const Caller& caller, Finish finish) {
                 grpc::Status st =
                     WatchNeedsSession(req->watch(), caller.ctx.session_id);
                 if (st.ok()) {
                   absl::ReaderMutexLock visible(&replica_->visibility_mutex());
                   engine::Znode node;
                   const ZkError err = CheckRead(
                       req->path(), engine::perms::kRead, caller.ctx, &node);
                   if (req->watch() &&
                       (err == ZkError::kOk || err == ZkError::kNoNode)) {
                     watches_.Add(caller.ctx.session_id, req->path(),
                                  err == ZkError::kOk ? WatchKind::kData
                                                      : WatchKind::kExist);
                   }
                   FillHeader(err, replica_->db().last_applied_zxid(),
                              caller.ctx.session_id, resp->mutable_header());
                   if (err == ZkError::kOk) {
                     ToApiStat(engine::ClientStat(node), resp->mutable_stat());
                   }
                 }
                 finish(st);
               });
}

grpc::ServerUnaryReactor* RockeeperService::GetData(
    grpc::CallbackServerContext* ctx, const v1::GetDataRequest* req,
    v1::GetDataResponse* resp) {
  return Serve(
      ctx, OpKind::kGetData, resp->mutable_header(),
      [this, req, resp](const Caller& caller, Finish finish) {
        grpc::Status st =
            WatchNeedsSession(req->watch(), caller.ctx.session_id);
        if (st.ok()) {
          absl::ReaderMutexLock visible(&replica_->visibility_mutex());
          engine::Znode node;
          const ZkError err =
              CheckRead(req->path(), engine::perms::kRead, caller.ctx, &node);
          if (req->watch() && err == ZkError::kOk) {
            watches_.Add(caller.ctx.session_id, req->path(), WatchKind::kData);
          }
          FillHeader(err, replica_->db().last_applied_zxid(),
                     caller.ctx.session_id, resp->mutable_header());
          if (err == ZkError::kOk) {
            ToApiStat(engine::ClientStat(node), resp->mutable_stat());
            resp->set_data(std::move(node.data));
          }
        }
        finish(st);
      });
}

grpc::ServerUnaryReactor* RockeeperService::GetChildren(
    grpc::CallbackServerContext* ctx, const v1::GetChildrenRequest* req,
    v1::GetChildrenResponse* resp) {
  return Serve(
      ctx, OpKind::kGetChildren, resp->mutable_header(),
      [this, req, resp](const Caller& caller, Finish finish) {
        grpc::Status st =
            WatchNeedsSession(req->watch(), caller.ctx.session_id);
        if (st.ok()) {
          absl::ReaderMutexLock visible(&replica_->visibility_mutex());
          engine::Znode node;
          ZkError err =
              CheckRead(req->path(), engine::perms::kRead, caller.ctx, &node);
          if (req->watch() && err == ZkError::kOk) {
            watches_.Add(caller.ctx.session_id, req->path(), WatchKind::kChild);
          }
          std::vector<std::string> names;
          if (err == ZkError::kOk &&
              !replica_->db().ListChildren(req->path(), &names).ok()) {
            err = ZkError::kSystemError;
          }
          FillHeader(err, replica_->db().last_applied_zxid(),
                     caller.ctx.session_id, resp->mutable_header());
          if (err == ZkError::kOk) {
            ToApiStat(engine::ClientStat(node), resp->mutable_stat());
            for (auto& n : names) resp->add_children(std::move(n));
          }
        }
        finish(st);
      });
}

grpc::ServerUnaryReactor* RockeeperService::GetAcl(
    grpc::CallbackServerContext* ctx, const v1::GetAclRequest* req,
    v1::GetAclResponse* resp) {
  return Serve(ctx, OpKind::kGetAcl, resp->mutable_header(),
               [this, req, resp](const Caller& caller, Finish finish) {
                 grpc::Status st = grpc::Status::OK;
                 {
                   absl::ReaderMutexLock visible(&replica_->visibility_mutex());
                   engine::Znode node;
                   const ZkError err =
                       CheckRead(req->path(),
                                 engine::perms::kRead | engine::perms::kAdmin,
                                 caller.ctx, &node);
                   FillHeader(err, replica_->db().last_applied_zxid(),
                              caller.ctx.session_id, resp->mutable_header());
                   absl::StatusOr<engine::AclVector> acl =
                       err == ZkError::kOk
                           ? replica_->db().GetAcl(node.acl_id)
                           : absl::StatusOr<engine::AclVector>();
                   if (err == ZkError::kOk && !acl.ok()) {
                     st = grpc::Status(grpc::StatusCode::INTERNAL,
                                       std::string(acl.status().message()));
                   } else if (err == ZkError::kOk) {
                     // Callers without ADMIN see digest ids masked, as in
                     // ZooKeeper.
                     const bool admin = engine::HasPermission(
                         *acl, engine::perms::kAdmin, caller.ctx.auth_ids);
                     for (const auto& a : *acl) {
                       auto* out = resp->add_acl();
                       out->set_perms(a.perms());
                       out->set_scheme(a.scheme());
                       std::string id = a.id();
                       if (!admin && a.scheme() == "digest") {
                         id = id.substr(0, id.find(':')) + ":x";
                       }
                       out->set_id(id);
                     }
                     ToApiStat(engine::ClientStat(node), resp->mutable_stat());
                   }
                 }
                 finish(st);
               });
}

grpc::ServerUnaryReactor* RockeeperService::MultiRead(
    grpc::CallbackServerContext* ctx, const v1::MultiReadRequest* req,
    v1::MultiReadResponse* resp) {
  return Serve(
      ctx, OpKind::kMultiRead, resp->mutable_header(),
      [this, req, resp](const Caller& caller, Finish finish) {
        {
          absl::ReaderMutexLock visible(&replica_->visibility_mutex());
          for (const auto& op : req->ops()) {
            auto* result = resp->add_results();
            engine::Znode node;
            const std::string& path = op.has_get_data()
                                          ? op.get_data().path()
                                          : op.get_children().path();
            ZkError err =
                CheckRead(path, engine::perms::kRead, caller.ctx, &node);
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
            if (err == ZkError::kOk) {
              ToApiStat(engine::ClientStat(node), result->mutable_stat());
            }
          }
          FillHeader(ZkError::kOk, replica_->db().last_applied_zxid(),
                     caller.ctx.session_id, resp->mutable_header());
        }
        finish(grpc::Status::OK);
      });
}

grpc::ServerUnaryReactor* RockeeperService::GetEphemerals(
    grpc::CallbackServerContext* ctx, const v1::GetEphemeralsRequest* req,
    v1::GetEphemeralsResponse* resp) {
  return Serve(
      ctx, OpKind::kGetEphemerals, resp->mutable_header(),
      [this, req, resp](const Caller& caller, Finish finish) {
        grpc::Status st = grpc::Status::OK;
        {
          absl::ReaderMutexLock visible(&replica_->visibility_mutex());
          std::vector<std::string> paths;
          if (caller.ctx.session_id != 0 &&
              !replica_->db()
                   .ListEphemerals(caller.ctx.session_id, &paths)
                   .ok()) {
            st = grpc::Status(grpc::StatusCode::INTERNAL, "listing ephemerals");
          }
          const std::string& prefix = req->prefix_path();
          for (auto& p : paths) {
            if (prefix.empty() || prefix == "/" || p.rfind(prefix, 0) == 0) {
              resp->add_paths(std::move(p));
            }
          }
          FillHeader(ZkError::kOk, replica_->db().last_applied_zxid(),
                     caller.ctx.session_id, resp->mutable_header());
        }
        finish(st);
      });
}

grpc::ServerUnaryReactor* RockeeperService::GetAllChildrenNumber(
    grpc::CallbackServerContext* ctx,
    const v1::GetAllChildrenNumberRequest* req,
    v1::GetAllChildrenNumberResponse* resp) {
  return Serve(ctx, OpKind::kGetAllChildrenNumber, resp->mutable_header(),
               [this, req, resp](const Caller& caller, Finish finish) {
                 {
                   absl::ReaderMutexLock visible(&replica_->visibility_mutex());
                   engine::Znode node;
                   ZkError err = CheckRead(req->path(), engine::perms::kRead,
                                           caller.ctx, &node);
                   if (err == ZkError::kOk) {
                     absl::StatusOr<int64_t> n =
                         replica_->db().CountDescendants(req->path());
                     if (n.ok()) {
                       resp->set_total_number(static_cast<int32_t>(*n));
                     } else {
                       err = ZkError::kSystemError;
                     }
                   }
                   FillHeader(err, replica_->db().last_applied_zxid(),
                              caller.ctx.session_id, resp->mutable_header());
                 }
                 finish(grpc::Status::OK);
               });
}

grpc::ServerUnaryReactor* RockeeperService::Sync(
    grpc::CallbackServerContext* ctx, const v1::SyncRequest* req,
    v1::SyncResponse* resp) {
  return Serve(
      ctx, OpKind::kSync, resp->mutable_header(),
      [this, req, resp](const Caller& caller, Finish finish) {
        if (replicated_ && engine::IsValidPath(req->path())) {
          // An ensemble member catches up with the leader: a no-op
          // write (check "/" at any version) goes through the leader
          // and is applied here after everything committed before
          // it. ZooKeeper uses a SYNC packet; a txn costs a zxid
          // but needs no second path.
          const int64_t sid = caller.ctx.session_id;
          SubmitAsync(
              caller.ctx, engine::CheckRequest{"/", -1},
              [this, req, resp, sid, finish](replication::SubmitResult r) {
                resp->set_path(req->path());
                grpc::Status st = FinishWrite(r, sid, resp->mutable_header());
                // The check's own verdict (e.g. an ACL on
                // "/") is not the sync's: it is applied.
                resp->mutable_header()->set_err(0);
                resp->mutable_header()->clear_err_name();
                finish(st);
              });
          return;
        }
        // Standalone: a write is applied before it returns, so this
        // server is always up to date with the (only) leader. Running
        // in the session's FIFO order is what sync promises.
        resp->set_path(req->path());
        FillHeader(engine::IsValidPath(req->path()) ? ZkError::kOk
                                                    : ZkError::kBadArguments,
                   replica_->db().last_applied_zxid(), caller.ctx.session_id,
                   resp->mutable_header());
        finish(grpc::Status::OK);
      });
}

grpc::ServerUnaryReactor* RockeeperService::AddAuth(
    grpc::CallbackServerContext* ctx, const v1::AddAuthRequest* req,
    v1::AddAuthResponse* resp) {
  return Serve(ctx, OpKind::kAuth, resp->mutable_header(),
               [this, req, resp](const Caller& caller, Finish finish) {
                 const int64_t sid = caller.ctx.session_id;
                 if (sid == 0) {
                   finish(grpc::Status(
                       grpc::StatusCode::FAILED_PRECONDITION,
                       "AddAuth needs a session (metadata rk-session-id)"));
                   return;
                 }
                 ZkError err = ZkError::kOk;
                 if (req->scheme() != "digest" ||
                     req->auth().find(':') == std::string::npos) {
                   err = ZkError::kAuthFailed;
                 } else {
                   for (auto& id : engine::DigestAuthIds(
                            req->auth(), options_.super_digest)) {
                     sessions_.AddAuth(sid, std::move(id));
                   }
                 }
                 FillHeader(err, replica_->db().last_applied_zxid(), sid,
                            resp->mutable_header());
                 finish(grpc::Status::OK);
               });
}

grpc::ServerUnaryReactor* RockeeperService::WhoAmI(
    grpc::CallbackServerContext* ctx, const v1::WhoAmIRequest*,
    v1::WhoAmIResponse* resp) {
  return Serve(ctx, OpKind::kWhoAmI, resp->mutable_header(),
               [this, resp](const Caller& caller, Finish finish) {
                 // ZooKeeper lists the added identities before the connection's
                 // ip.
                 for (const bool ip_pass : {false, true}) {
                   for (const auto& id : caller.ctx.auth_ids) {
                     if ((id.scheme == "ip") != ip_pass) continue;
                     auto* info = resp->add_client_info();
                     info->set_auth_scheme(id.scheme);
                     info->set_user(id.scheme == "digest"
                                        ? id.id.substr(0, id.id.find(':'))
                                        : id.id);
                   }
                 }
                 FillHeader(ZkError::kOk, replica_->db().last_applied_zxid(),
                            caller.ctx.session_id, resp->mutable_header());
                 finish(grpc::Status::OK);
               });
}

// --- Watches ----------------------------------------------------------------

grpc::ServerUnaryReactor* RockeeperService::AddWatch(
    grpc::CallbackServerContext* ctx, const v1::AddWatchRequest* req,
    v1::AddWatchResponse* resp) {
  return Serve(ctx, OpKind::kAddWatch, resp->mutable_header(),
               [this, req, resp](const Caller& caller, Finish finish) {
                 const int64_t sid = caller.ctx.session_id;
                 if (sid == 0) {
                   finish(WatchNeedsSession(true, sid));
                   return;
                 }
                 ZkError err = ZkError::kOk;
                 if (!engine::IsValidPath(req->path())) {
                   err = ZkError::kBadArguments;
                 } else {
                   watches_.Add(sid, req->path(),
                                req->mode() == v1::PERSISTENT_RECURSIVE_WATCH
                                    ? WatchKind::kPersistentRecursive
                                    : WatchKind::kPersistent);
                 }
                 FillHeader(err, replica_->db().last_applied_zxid(), sid,
                            resp->mutable_header());
                 finish(grpc::Status::OK);
               });
}

namespace {

std::optional<std::vector<WatchKind>> KindsOf(v1::WatcherType type) {
  switch (type) {
    case v1::WATCHER_CHILDREN:
      return std::vector<WatchKind>{WatchKind::kChild};
    case v1::WATCHER_DATA:
      return std::vector<WatchKind>{WatchKind::kData, WatchKind::kExist};
    case v1::WATCHER_ANY:
      return std::vector<WatchKind>{WatchKind::kChild, WatchKind::kData,
                                    WatchKind::kExist, WatchKind::kPersistent,
                                    WatchKind::kPersistentRecursive};
    case v1::WATCHER_PERSISTENT:
      return std::vector<WatchKind>{WatchKind::kPersistent};
    case v1::WATCHER_PERSISTENT_RECURSIVE:
      return std::vector<WatchKind>{WatchKind::kPersistentRecursive};
    default:
      return std::nullopt;
  }
}

}  // namespace

grpc::ServerUnaryReactor* RockeeperService::RemoveWatches(
    grpc::CallbackServerContext* ctx, const v1::RemoveWatchesRequest* req,
    v1::RemoveWatchesResponse* resp) {
  return Serve(
      ctx, OpKind::kRemoveWatches, resp->mutable_header(),
      [this, ctx, req, resp](const Caller& caller, Finish finish) {
        std::optional<std::vector<WatchKind>> kinds = KindsOf(req->type());
        if (!kinds) {
          finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "unknown watcher type"));
          return;
        }
        const int64_t sid = caller.ctx.session_id;
        // The wire front end's checkWatches (17): in-process callers may ask to
        // only check (rk-check-only metadata).
        bool check_only = false;
        if (ctx->peer().rfind("ipv4:", 0) != 0 &&
            ctx->peer().rfind("ipv6:", 0) != 0) {
          check_only = ctx->client_metadata().count("rk-check-only") > 0;
        }
        const int removed =
            sid == 0     ? 0
            : check_only ? (watches_.Contains(sid, req->path(), *kinds) ? 1 : 0)
                         : watches_.Remove(sid, req->path(), *kinds);
        FillHeader(removed > 0 ? ZkError::kOk : ZkError::kNoWatcher,
                   replica_->db().last_applied_zxid(), sid,
                   resp->mutable_header());
        finish(grpc::Status::OK);
      });
}

grpc::ServerUnaryReactor* RockeeperService::SetWatches(
    grpc::CallbackServerContext* ctx, const v1::SetWatchesRequest* req,
    v1::SetWatchesResponse* resp) {
  return Serve(
      ctx, OpKind::kSetWatches, resp->mutable_header(),
      [this, req, resp](const Caller& caller, Finish finish) {
        const int64_t sid = caller.ctx.session_id;
        if (sid == 0) {
          finish(WatchNeedsSession(true, sid));
          return;
        }
        {
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
              events_.Publish(sid, WatchEventType::kNodeChildrenChanged, path,
                              -1);
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
          FillHeader(ZkError::kOk, db.last_applied_zxid(), sid,
                     resp->mutable_header());
        }
        finish(grpc::Status::OK);
      });
}

// --- The Session stream ---------------------------------------------------

namespace {

v1::SessionMessage::State ToApiState(EventHub::End end) {
  switch (end) {
    case EventHub::End::kReplaced:
      return v1::SessionMessage::REPLACED;
    case EventHub::End::kClosed:
      return v1::SessionMessage::CLOSED;
    case EventHub::End::kExpired:
      return v1::SessionMessage::EXPIRED;
    case EventHub::End::kNone:
      break;
  }
  return v1::SessionMessage::STATE_UNSPECIFIED;
}

}  // namespace

// A reactor per stream: reads (attach, then pings) drive OnReadDone; writes
// are pulled from the EventHub whenever it notifies, one in flight at a
// time. All state is guarded by `state_->mu`, which also guards the
// reactor's lifetime against late notifications.
class RockeeperService::SessionStream
    : public grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionMessage> {
 public:
  explicit SessionStream(RockeeperService* service)
      : service_(service), state_(std::make_shared<State>()) {
    state_->stream = this;
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    if (!ok) {  // client closed its side or went away
      EndLocked(std::nullopt);
      return;
    }
    if (session_id_ == 0) {
      AttachLocked();
    } else {
      service_->sessions_.Touch(session_id_);
      if (request_.ping()) pong_ = true;
    }
    PumpLocked();
    if (!ending_) StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    absl::MutexLock lock(&state_->mu);
    writing_ = false;
    if (!ok) {
      // The stream is broken: nothing more can be written, so finish now
      // (writing the queue again would fail forever and OnDone never come).
      outgoing_.clear();
      ending_ = true;
      if (!finished_) {
        finished_ = true;
        Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      }
      return;
    }
    if (acked_seq_on_write_ > 0) {
      service_->events_.Ack(session_id_, acked_seq_on_write_);
    }
    outgoing_.pop_front();
    PumpLocked();
  }

  void OnDone() override {
    {
      absl::MutexLock lock(&state_->mu);
      state_->stream = nullptr;
      if (token_ != 0) service_->events_.Detach(session_id_, token_);
    }
    delete this;
  }

  void OnCancel() override {
    absl::MutexLock lock(&state_->mu);
    EndLocked(std::nullopt);
  }

 private:
  struct State {
    absl::Mutex mu;
    SessionStream* stream ABSL_GUARDED_BY(mu) = nullptr;
  };

  void AttachLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    const int64_t sid = request_.session_id();
    std::optional<SessionInfo> info = service_->sessions_.Get(sid);
    v1::SessionMessage msg;
    if (sid == 0 || !info || info->password != request_.password() ||
        !service_->sessions_.Touch(sid)) {
      EndLocked(v1::SessionMessage::EXPIRED);
      return;
    }
    session_id_ = sid;
    std::weak_ptr<State> weak = state_;
    token_ = service_->events_.Attach(sid, [weak] {
      if (auto s = weak.lock()) {
        absl::MutexLock lock(&s->mu);
        if (s->stream != nullptr) s->stream->PumpLocked();
      }
    });
    msg.set_state(v1::SessionMessage::CONNECTED);
    outgoing_.push_back({std::move(msg), 0});
  }

  // Moves what the hub has into `outgoing_` and starts the next write.
  void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (finished_) return;
    if (token_ != 0 && !ending_) {
      EventHub::Batch batch = service_->events_.Take(session_id_, token_);
      for (const QueuedEvent& e : batch.events) {
        if (e.seq <= queued_seq_) continue;  // already queued
        v1::SessionMessage m;
        auto* ev = m.mutable_event();
        ev->set_seq(e.seq);
        ev->set_type(static_cast<v1::EventType>(static_cast<int>(e.type)));
        ev->set_path(e.path);
        ev->set_zxid(e.zxid);
        outgoing_.push_back({std::move(m), e.seq});
        queued_seq_ = e.seq;
      }
      if (batch.pong) pong_ = true;
      if (batch.end != EventHub::End::kNone) {
        token_ = 0;  // the hub forgot us (closed/expired) or replaced us
        EndLocked(ToApiState(batch.end));
        return;
      }
    }
    if (pong_ && !ending_) {
      v1::SessionMessage m;
      m.set_pong(true);
      outgoing_.push_back({std::move(m), 0});
      pong_ = false;
    }
    if (writing_) return;
    if (!outgoing_.empty()) {
      writing_ = true;
      acked_seq_on_write_ = outgoing_.front().seq;
      StartWrite(&outgoing_.front().msg);
    } else if (ending_) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  // Ends the stream after sending `final_state` (if any) and what is queued.
  void EndLocked(std::optional<v1::SessionMessage::State> final_state)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_->mu) {
    if (ending_) return;
    ending_ = true;
    if (final_state) {
      v1::SessionMessage m;
      m.set_state(*final_state);
      outgoing_.push_back({std::move(m), 0});
    }
    PumpLocked();
  }

  struct Outgoing {
    v1::SessionMessage msg;
    uint64_t seq;  // event seq to ack once written (0: not an event)
  };

  RockeeperService* const service_;
  std::shared_ptr<State> state_;
  v1::SessionRequest request_;
  int64_t session_id_ = 0;
  uint64_t token_ = 0;
  uint64_t queued_seq_ = 0;
  uint64_t acked_seq_on_write_ = 0;
  std::deque<Outgoing> outgoing_;
  bool writing_ = false;
  bool pong_ = false;
  bool ending_ = false;
  bool finished_ = false;
};

grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionMessage>*
RockeeperService::Session(grpc::CallbackServerContext*) {
  return new SessionStream(this);
}

}  // namespace rockeeper::rpc
