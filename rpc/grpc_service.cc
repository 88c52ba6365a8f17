#include "rpc/grpc_service.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <deque>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/match.h"
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
  c.data_null = r.data_null() && r.data().empty();
  return c;
}

}  // namespace

class RockeeperService::CompletionsHelper final
    : public replication::GateHelper {
 public:
  explicit CompletionsHelper(WorkQueue* queue) : queue_(queue) {}
  bool RunOne() override {
    absl::ReaderMutexLock lock(&mu_);
    return queue_ != nullptr && queue_->RunOne();
  }
  // Waits for a RunOne in progress; later ones do nothing.
  void Disable() {
    absl::MutexLock lock(&mu_);
    queue_ = nullptr;
  }

 private:
  absl::Mutex mu_;
  WorkQueue* queue_ ABSL_GUARDED_BY(mu_);
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
      sessions_(options.server_id),
      gate_helper_(std::make_shared<CompletionsHelper>(&completions_)),
      serializer_(replica->honours_apply_gates(), gate_helper_),
      read_io_(options.read_io_threads > 0
                   ? std::make_unique<WorkQueue>(options.read_io_threads,
                                                 "rk-read-io")
                   : nullptr) {
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
  expiry_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "rk-expiry");
    ExpiryLoop();
  });
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
  gate_helper_->Disable();
  stop_.Notify();
  if (expiry_thread_.joinable()) expiry_thread_.join();
  replica_->SetApplyListener(nullptr);
  replica_->SetSessionTouchListener(nullptr);
}

bool RockeeperService::Resident(absl::string_view path, bool children) const {
  // The state DB a SNAP sync swaps in is installed under this mutex.
  absl::ReaderMutexLock visible(&replica_->visibility_mutex());
  return children ? replica_->db().ChildrenResident(path)
                  : replica_->db().ZnodeResident(path);
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

replication::SubmitResult RockeeperService::SubmitAndWait(
    const engine::RequestContext& ctx, const engine::WriteRequest& request) {
  struct Waiter {
    absl::Notification done;
    replication::SubmitResult result;
  };
  auto waiter = std::make_shared<Waiter>();
  const absl::Time start = absl::Now();
  {
    // Closed before the wait: whatever the submit deferred (a standalone
    // pipeline may leave the log write to this thread) runs first.
    DeferScope scope;
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
  }
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

// --- The frame of a request -----------------------------------------------
//
// One Call per request, from admission to done: it carries the caller's
// context, the op's body and completion (CallOf), and the write's result,
// so a request costs one allocation here and every closure handed to the
// serializer, the replica and the work queue is a pointer to it.
// Two references keep it: the start path (until the body returned and a
// write was ordered) and the finish path (until Finish returned); a write
// may finish on the work queue before its body returned.

class RockeeperService::Call : public SessionSerializer::Task {
 public:
  Call(RockeeperService* service, OpKind op, bool write,
       v1::ResponseHeader* header, Done done)
      : service_(service),
        op_(op),
        write_(write),
        header_(header),
        start_(absl::Now()),
        done_(std::move(done)) {}

  engine::RequestContext ctx;
  replication::SubmitResult result;  // a write's, before Submitted runs
  absl::Time submitted_at;
  // A read's footprint (the path copied: the request may go before the
  // serializer forgets the read).
  ReadScope read_scope = ReadScope::kAll;
  std::string read_path;
  // A read of one znode: its path (in the request, which outlives Start),
  // to decide whether the read needs the disk. Empty otherwise.
  absl::string_view probe_path;
  bool probe_children = false;  // a getChildren: its child list too

  // The serializer lets it run.
  void Start() final {
    const int64_t sid = ctx.session_id;
    if (sid != 0) {
      // The session's ids as of now: an AddAuth queued before this request
      // counts.
      if (std::optional<SessionInfo> info = service_->sessions_.Get(sid)) {
        for (engine::AuthId& id : info->auth_ids) {
          ctx.auth_ids.push_back(std::move(id));
        }
      }
    }
    // A read whose znode is in no cache would block this thread (a wire
    // loop, with other connections) on the disk: a read I/O thread runs it.
    if (!probe_path.empty() && service_->read_io_ != nullptr &&
        !service_->Resident(probe_path, probe_children)) {
      service_->metrics_->reads_offloaded.Add();
      service_->read_io_->Post([this] { Run(); });
      return;
    }
    Run();
  }

  // On the work queue: the write's txn applied (or failed).
  void OnSubmitted() { Finish(Submitted()); }

 protected:
  virtual std::optional<grpc::Status> Body() = 0;
  virtual grpc::Status Submitted() = 0;

 private:
  void Run() {
    std::optional<grpc::Status> st = Body();
    if (st) Finish(*st);
    // A write's body has submitted it (or already finished): its place in
    // the session's order is fixed.
    if (write_) service_->serializer_.Ordered(this);
    Release();
  }
  void Finish(const grpc::Status& st) {
    RockeeperService* const service = service_;
    const int64_t us = absl::ToInt64Microseconds(absl::Now() - start_);
    service->metrics_->RecordRequest(op_, us, !st.ok() || header_->err() != 0);
    service->in_flight_.fetch_sub(1, std::memory_order_relaxed);
    // The caller's request and response may be gone once done_ returned.
    Done done = std::move(done_);
    done(st);
    service->serializer_.Done(this);
    Release();
  }
  void Release() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  RockeeperService* const service_;
  const OpKind op_;
  const bool write_;
  v1::ResponseHeader* const header_;
  const absl::Time start_;
  Done done_;
  std::atomic<int> refs_{2};
};

template <typename BodyFn, typename SubmittedFn>
class RockeeperService::CallOf final : public RockeeperService::Call {
 public:
  CallOf(RockeeperService* service, OpKind op, bool write,
         v1::ResponseHeader* header, Done done, BodyFn body,
         SubmittedFn submitted)
      : Call(service, op, write, header, std::move(done)),
        body_(std::move(body)),
        submitted_(std::move(submitted)) {}

 private:
  std::optional<grpc::Status> Body() override { return body_(*this); }
  grpc::Status Submitted() override { return submitted_(*this, result); }
  BodyFn body_;
  SubmittedFn submitted_;
};

namespace {

// The `submitted` of a request that never submits a write.
struct NoWrite {
  template <typename AnyCall>
  grpc::Status operator()(AnyCall&, replication::SubmitResult&) const {
    return grpc::Status(grpc::StatusCode::INTERNAL, "unexpected write");
  }
};

const grpc::Status& Unavailable() {
  static const grpc::Status* const st =
      new grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       "this server has no quorum: looking for a leader");
  return *st;
}

}  // namespace

template <typename BodyFn>
void RockeeperService::Serve(const CallInfo& info, OpKind op,
                             v1::ResponseHeader* header, Done done,
                             BodyFn body, ReadFootprint footprint) {
  Serve(info, op, header, std::move(done), std::move(body), NoWrite{},
        footprint);
}

template <typename BodyFn, typename SubmittedFn>
void RockeeperService::Serve(const CallInfo& info, OpKind op,
                             v1::ResponseHeader* header, Done done, BodyFn body,
                             SubmittedFn submitted, ReadFootprint footprint) {
  // Backpressure: count the request until it finishes.
  if (in_flight_.fetch_add(1, std::memory_order_relaxed) >=
          options_.max_outstanding_requests &&
      !info.paced) {
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    metrics_->requests_throttled.Add();
    metrics_->RecordRequest(op, 0, /*error=*/true);
    done(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      "too many outstanding requests"));
    return;
  }
  if (!Serves()) {
    // No quorum (or still syncing), or a leader told not to serve: like
    // ZooKeeper, which drops clients then, send the client elsewhere.
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    metrics_->RecordRequest(op, 0, /*error=*/true);
    done(Unavailable());
    return;
  }
  if (info.bad_session ||
      (info.session_id != 0 && !sessions_.Touch(info.session_id))) {
    FillHeader(ZkError::kSessionExpired, replica_->db().last_applied_zxid(), 0,
               header);
    in_flight_.fetch_sub(1, std::memory_order_relaxed);
    metrics_->RecordRequest(op, 0, /*error=*/true);
    done(grpc::Status::OK);
    return;
  }
  // Writes pipeline within a session (their order is fixed once submitted)
  // and, where the replica honours apply gates, pass the session's earlier
  // reads; reads wait for the earlier requests; the rest are barriers.
  const bool write = op == OpKind::kCreate || op == OpKind::kDelete ||
                     op == OpKind::kSetData || op == OpKind::kSetAcl ||
                     op == OpKind::kMulti;
  const bool read = op == OpKind::kExists || op == OpKind::kGetData ||
                    op == OpKind::kGetChildren || op == OpKind::kGetAcl ||
                    op == OpKind::kMultiRead || op == OpKind::kGetEphemerals ||
                    op == OpKind::kGetAllChildrenNumber;
  auto* call =
      new CallOf<BodyFn, SubmittedFn>(this, op, write, header, std::move(done),
                                      std::move(body), std::move(submitted));
  call->ctx.session_id = info.session_id;
  // Only a serializer that lets writes pass reads ever asks for it.
  if (read && info.session_id != 0 && serializer_.writes_pass_reads() &&
      footprint.scope != ReadScope::kAll) {
    call->read_scope = footprint.scope;
    call->read_path.assign(footprint.path.data(), footprint.path.size());
  }
  if (read && footprint.scope == ReadScope::kNode) {
    call->probe_path = footprint.path;
    call->probe_children = op == OpKind::kGetChildren;
  }
  if (!info.client_ip.empty()) {
    call->ctx.auth_ids.push_back({"ip", info.client_ip});
  }
  serializer_.Run(info.session_id,
                  write  ? SessionSerializer::Kind::kWrite
                  : read ? SessionSerializer::Kind::kRead
                         : SessionSerializer::Kind::kBarrier,
                  call);
}

void RockeeperService::SubmitAsync(Call* call,
                                   const engine::WriteRequest& request) {
  call->submitted_at = absl::Now();
  // Small captures: the closures are stored without allocating.
  auto done = [this, call](replication::SubmitResult r) {
    if (r.outcome.txn) {
      metrics_->RecordCommit(
          absl::ToInt64Microseconds(absl::Now() - call->submitted_at));
    }
    PublishTriggers(r.triggers);
    const bool urgent = r.urgent;
    const bool lone = r.lone;
    const bool gathered = r.gathered;
    call->result = std::move(r);
    // A lone write (standalone, the log thread applied it): finish it on
    // that thread once the apply is done, if nothing of its session waits
    // behind it (whose start would then run there too); no other thread
    // wakes up for a single session's write.
    if (lone && DeferScope::Active() && serializer_.IsLast(call)) {
      DeferScope::Defer([call] { call->OnSubmitted(); });
    } else if (urgent) {
      completions_.PostFront([call] { call->OnSubmitted(); });
    } else if (gathered) {
      // The apply thread's batch: its completions go to the work queue
      // together once the batch is done.
      completions_.PostGathered([call] { call->OnSubmitted(); });
    } else {
      completions_.Post([call] { call->OnSubmitted(); });
    }
  };
  // A write that passed reads of its session waits for them only if one of
  // them could observe it.
  if (call->apply_gate() != nullptr &&
      serializer_.AnyEarlierRead(
          call, [&request](const SessionSerializer::Task& task) {
            const auto& read = static_cast<const Call&>(task);
            return ReadObservesWrite({read.read_scope, read.read_path},
                                     request);
          })) {
    replica_->SubmitGated(call->ctx, request, call->apply_gate(),
                          std::move(done));
  } else {
    replica_->Submit(call->ctx, request, std::move(done));
  }
}

std::unique_ptr<EventSubscription> RockeeperService::AttachEvents(
    int64_t session_id, const std::string& password,
    std::function<void()> notify) {
  std::optional<SessionInfo> info = sessions_.Get(session_id);
  if (session_id == 0 || !info || info->password != password ||
      !sessions_.Touch(session_id)) {
    return nullptr;
  }
  const uint64_t token = events_.Attach(session_id, std::move(notify));
  return std::make_unique<EventSubscription>(&events_, session_id, token);
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
  // The txn's zxid; for a refused write, the error txn's that recorded the
  // refusal (as ZooKeeper); else (nothing logged) the last applied one.
  const int64_t zxid = result.zxid != 0 ? result.zxid
                       : result.outcome.txn
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

// --- Sessions -------------------------------------------------------------

void RockeeperService::Connect(const CallInfo& call,
                               const v1::ConnectRequest& req,
                               v1::ConnectResponse* resp, Done done) {
  if (!Serves()) {
    metrics_->RecordRequest(OpKind::kCreateSession, 0, /*error=*/true);
    done(Unavailable());
    return;
  }
  const int64_t applied = replica_->db().last_applied_zxid();
  const absl::Time start = absl::Now();
  if (req.last_zxid_seen() > applied) {
    metrics_->RecordRequest(OpKind::kCreateSession, 0, /*error=*/true);
    done(
        grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                     absl::StrCat("client has seen zxid ", req.last_zxid_seen(),
                                  ", newer than this server's ", applied)));
    return;
  }
  const int32_t timeout =
      std::clamp(req.timeout_ms(), options_.min_session_timeout_ms,
                 options_.max_session_timeout_ms);
  if (req.session_id() != 0) {  // resume
    std::optional<SessionInfo> s = sessions_.Get(req.session_id());
    if (!s || s->password != req.password() ||
        !sessions_.Touch(req.session_id())) {
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
    done(grpc::Status::OK);
    return;
  }
  const std::string& ip = call.client_ip;
  if (options_.max_sessions_per_ip > 0 &&
      sessions_.CountForIp(ip) >=
          static_cast<size_t>(options_.max_sessions_per_ip)) {
    metrics_->RecordRequest(OpKind::kCreateSession, 0, /*error=*/true);
    done(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                      "too many sessions from " + ip));
    return;
  }
  engine::RequestContext rctx;
  rctx.session_id = sessions_.NextSessionId();
  const std::string password = SessionTracker::NewPassword();
  SubmitAsync(rctx, engine::CreateSessionRequest{timeout, password},
              [this, resp, rctx, password, timeout, ip, start,
               done = std::move(done)](replication::SubmitResult r) {
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
                done(st);
              });
}

void RockeeperService::Close(const CallInfo& call, const v1::CloseRequest&,
                             v1::CloseResponse* resp, Done done) {
  Serve(
      call, OpKind::kCloseSession, resp->mutable_header(), std::move(done),
      [this, resp](auto& c) -> std::optional<grpc::Status> {
        const int64_t sid = c.ctx.session_id;
        if (sid == 0) {
          FillHeader(ZkError::kBadArguments, replica_->db().last_applied_zxid(),
                     0, resp->mutable_header());
          return grpc::Status::OK;
        }
        sessions_.Remove(sid);
        metrics_->sessions_closed.Add();
        SubmitAsync(&c, engine::CloseSessionRequest{});
        return std::nullopt;
      },
      [this, resp](auto& c, replication::SubmitResult& r) {
        const int64_t sid = c.ctx.session_id;
        grpc::Status st = FinishWrite(r, sid, resp->mutable_header());
        EndSession(sid, EventHub::End::kClosed);
        return st;
      });
}

void RockeeperService::Heartbeat(const CallInfo& call,
                                 const v1::HeartbeatRequest&,
                                 v1::HeartbeatResponse* resp, Done done) {
  Serve(call, OpKind::kPing, resp->mutable_header(), std::move(done),
        [this, resp](auto& c) -> std::optional<grpc::Status> {
          FillHeader(
              c.ctx.session_id == 0 ? ZkError::kBadArguments : ZkError::kOk,
              replica_->db().last_applied_zxid(), c.ctx.session_id,
              resp->mutable_header());
          return grpc::Status::OK;
        });
}

// --- Writes ---------------------------------------------------------------

namespace {

bool DataTooLarge(size_t bytes, size_t max,
                  const RockeeperService::Done& done) {
  if (bytes <= max) return false;
  done(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                    "data larger than jute.maxbuffer"));
  return true;
}

// data_null with data: the request contradicts itself.
bool NullWithData(bool data_null, const std::string& data,
                  const RockeeperService::Done& done) {
  if (!data_null || data.empty()) return false;
  done(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                    "data_null with non-empty data"));
  return true;
}

}  // namespace

void RockeeperService::Create(const CallInfo& call,
                              const v1::CreateRequest& req,
                              v1::CreateResponse* resp, Done done) {
  if (DataTooLarge(req.data().size(), options_.max_data_bytes, done)) return;
  if (NullWithData(req.data_null(), req.data(), done)) return;
  Serve(
      call, OpKind::kCreate, resp->mutable_header(), std::move(done),
      [this, &req](auto& c) -> std::optional<grpc::Status> {
        SubmitAsync(&c, ToCreate(req));
        return std::nullopt;
      },
      [this, resp](auto& c, replication::SubmitResult& r) {
        grpc::Status st =
            FinishWrite(r, c.ctx.session_id, resp->mutable_header());
        if (st.ok() && r.outcome.txn) {
          resp->set_path(r.outcome.txn->create().path());
          ToApiStat(engine::StatOfCreated(r.outcome.txn->create(),
                                          r.outcome.txn->header()),
                    resp->mutable_stat());
        }
        return st;
      });
}

void RockeeperService::Delete(const CallInfo& call,
                              const v1::DeleteRequest& req,
                              v1::DeleteResponse* resp, Done done) {
  Serve(
      call, OpKind::kDelete, resp->mutable_header(), std::move(done),
      [this, &req](auto& c) -> std::optional<grpc::Status> {
        SubmitAsync(&c, engine::DeleteRequest{
                            req.path(),
                            VersionOrAny(req.has_version(), req.version())});
        return std::nullopt;
      },
      [this, resp](auto& c, replication::SubmitResult& r) {
        return FinishWrite(r, c.ctx.session_id, resp->mutable_header());
      });
}

void RockeeperService::SetData(const CallInfo& call,
                               const v1::SetDataRequest& req,
                               v1::SetDataResponse* resp, Done done) {
  if (DataTooLarge(req.data().size(), options_.max_data_bytes, done)) return;
  if (NullWithData(req.data_null(), req.data(), done)) return;
  Serve(
      call, OpKind::kSetData, resp->mutable_header(), std::move(done),
      [this, &req](auto& c) -> std::optional<grpc::Status> {
        SubmitAsync(&c, engine::SetDataRequest{
                            req.path(), req.data(),
                            VersionOrAny(req.has_version(), req.version()),
                            req.data_null() && req.data().empty()});
        return std::nullopt;
      },
      [this, resp](auto& c, replication::SubmitResult& r) {
        grpc::Status st =
            FinishWrite(r, c.ctx.session_id, resp->mutable_header());
        if (st.ok() && r.outcome.txn) {
          ToApiStat(r.outcome.txn->set_data().stat(), resp->mutable_stat());
        }
        return st;
      });
}

void RockeeperService::SetAcl(const CallInfo& call,
                              const v1::SetAclRequest& req,
                              v1::SetAclResponse* resp, Done done) {
  Serve(
      call, OpKind::kSetAcl, resp->mutable_header(), std::move(done),
      [this, &req](auto& c) -> std::optional<grpc::Status> {
        engine::SetAclRequest set;
        set.path = req.path();
        for (const v1::Acl& a : req.acl()) {
          set.acl.push_back(engine::MakeAcl(a.perms(), a.scheme(), a.id()));
        }
        set.version = VersionOrAny(req.has_version(), req.version());
        SubmitAsync(&c, std::move(set));
        return std::nullopt;
      },
      [this, resp](auto& c, replication::SubmitResult& r) {
        grpc::Status st =
            FinishWrite(r, c.ctx.session_id, resp->mutable_header());
        if (st.ok() && r.outcome.txn) {
          ToApiStat(r.outcome.txn->set_acl().stat(), resp->mutable_stat());
        }
        return st;
      });
}

namespace {

// Converts a v1 multi into the engine's; INVALID_ARGUMENT for an empty op.
grpc::Status ToMulti(const v1::MultiRequest& req, engine::MultiRequest* multi) {
  for (const auto& op : req.ops()) {
    switch (op.op_case()) {
      case v1::MultiRequest::Op::kCreate:
        if (op.create().data_null() && !op.create().data().empty()) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "data_null with non-empty data");
        }
        multi->ops.push_back(ToCreate(op.create()));
        break;
      case v1::MultiRequest::Op::kDelete:
        multi->ops.push_back(engine::DeleteRequest{
            op.delete_().path(),
            VersionOrAny(op.delete_().has_version(), op.delete_().version())});
        break;
      case v1::MultiRequest::Op::kSetData:
        if (op.set_data().data_null() && !op.set_data().data().empty()) {
          return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                              "data_null with non-empty data");
        }
        multi->ops.push_back(engine::SetDataRequest{
            op.set_data().path(), op.set_data().data(),
            VersionOrAny(op.set_data().has_version(), op.set_data().version()),
            op.set_data().data_null() && op.set_data().data().empty()});
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

void RockeeperService::Multi(const CallInfo& call, const v1::MultiRequest& req,
                             v1::MultiResponse* resp, Done done) {
  engine::MultiRequest multi;
  if (grpc::Status st = ToMulti(req, &multi); !st.ok()) {
    done(st);
    return;
  }
  Serve(
      call, OpKind::kMulti, resp->mutable_header(), std::move(done),
      // Held as the WriteRequest SubmitAsync takes: passing the MultiRequest
      // would copy all its ops into a temporary variant.
      [this, request = engine::WriteRequest(std::move(multi))](
          auto& c) -> std::optional<grpc::Status> {
        SubmitAsync(&c, request);
        return std::nullopt;
      },
      [this, resp](auto& c, replication::SubmitResult& r) {
        grpc::Status st =
            FinishWrite(r, c.ctx.session_id, resp->mutable_header());
        if (st.ok()) FillMultiResults(r, resp);
        return st;
      });
}

// --- Reads ----------------------------------------------------------------
// Reads run inline, holding the replica's visibility mutex shared while they
// read and register watches, and release it before finishing (the next
// queued request of the session may run inside `done`).

namespace {

grpc::Status WatchNeedsSession(bool watch, const int64_t session_id) {
  if (watch && session_id == 0) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        "watches need a session (metadata rk-session-id)");
  }
  return grpc::Status::OK;
}

}  // namespace

void RockeeperService::Exists(const CallInfo& call,
                              const v1::ExistsRequest& req,
                              v1::ExistsResponse* resp, Done done) {
  Serve(call, OpKind::kExists, resp->mutable_header(), std::move(done),
        [this, &req, resp](auto& c) -> std::optional<grpc::Status> {
          grpc::Status st = WatchNeedsSession(req.watch(), c.ctx.session_id);
          if (!st.ok()) return st;
          absl::ReaderMutexLock visible(&replica_->visibility_mutex());
          engine::Znode node;
          const ZkError err =
              CheckRead(req.path(), engine::perms::kRead, c.ctx, &node);
          if (req.watch() && (err == ZkError::kOk || err == ZkError::kNoNode)) {
            watches_.Add(
                c.ctx.session_id, req.path(),
                err == ZkError::kOk ? WatchKind::kData : WatchKind::kExist);
          }
          FillHeader(err, replica_->db().last_applied_zxid(), c.ctx.session_id,
                     resp->mutable_header());
          if (err == ZkError::kOk) {
            ToApiStat(engine::ClientStat(node), resp->mutable_stat());
          }
          return st;
        },
        ReadFootprint{ReadScope::kNode, req.path()});
}

void RockeeperService::GetData(const CallInfo& call,
                               const v1::GetDataRequest& req,
                               v1::GetDataResponse* resp, Done done) {
  Serve(call, OpKind::kGetData, resp->mutable_header(), std::move(done),
        [this, &req, resp](auto& c) -> std::optional<grpc::Status> {
          grpc::Status st = WatchNeedsSession(req.watch(), c.ctx.session_id);
          if (!st.ok()) return st;
          absl::ReaderMutexLock visible(&replica_->visibility_mutex());
          engine::Znode node;
          const ZkError err =
              CheckRead(req.path(), engine::perms::kRead, c.ctx, &node);
          if (req.watch() && err == ZkError::kOk) {
            watches_.Add(c.ctx.session_id, req.path(), WatchKind::kData);
          }
          FillHeader(err, replica_->db().last_applied_zxid(), c.ctx.session_id,
                     resp->mutable_header());
          if (err == ZkError::kOk) {
            ToApiStat(engine::ClientStat(node), resp->mutable_stat());
            resp->set_data(std::move(node.data));
            resp->set_data_null(node.data_null);
          }
          return st;
        },
        ReadFootprint{ReadScope::kNode, req.path()});
}

template <typename Resp, typename ListFn>
void RockeeperService::ServeGetChildren(const CallInfo& call,
                                        const v1::GetChildrenRequest& req,
                                        Resp* resp, Done done, ListFn list) {
  Serve(
      call, OpKind::kGetChildren, resp->mutable_header(), std::move(done),
      [this, &req, resp, list](auto& c) -> std::optional<grpc::Status> {
        grpc::Status st = WatchNeedsSession(req.watch(), c.ctx.session_id);
        if (!st.ok()) return st;
        absl::ReaderMutexLock visible(&replica_->visibility_mutex());
        engine::Znode node;
        ZkError err = CheckChildrenRead(req, c.ctx, &node);
        if (err == ZkError::kOk && !list(resp)) err = ZkError::kSystemError;
        FillHeader(err, replica_->db().last_applied_zxid(), c.ctx.session_id,
                   resp->mutable_header());
        if (err == ZkError::kOk) {
          ToApiStat(engine::ClientStat(node), resp->mutable_stat());
        }
        return st;
      },
      ReadFootprint{ReadScope::kNode, req.path()});
}

void RockeeperService::GetChildren(const CallInfo& call,
                                   const v1::GetChildrenRequest& req,
                                   v1::GetChildrenResponse* resp, Done done) {
  ServeGetChildren(
      call, req, resp, std::move(done),
      [this, &req](v1::GetChildrenResponse* r) {
        std::vector<std::string> names;
        if (!replica_->db().ListChildren(req.path(), &names).ok()) {
          return false;
        }
        r->mutable_children()->Reserve(static_cast<int>(names.size()));
        for (auto& n : names) r->add_children(std::move(n));
        return true;
      });
}

void RockeeperService::GetChildrenPacked(const CallInfo& call,
                                         const v1::GetChildrenRequest& req,
                                         PackedChildrenResponse* resp,
                                         Done done) {
  ServeGetChildren(
      call, req, resp, std::move(done),
      [this, &req](PackedChildrenResponse* r) {
        return replica_->db().ListChildrenPacked(req.path(), &r->children).ok();
      });
}

ZkError RockeeperService::CheckChildrenRead(const v1::GetChildrenRequest& req,
                                            const engine::RequestContext& ctx,
                                            engine::Znode* node) {
  const ZkError err = CheckRead(req.path(), engine::perms::kRead, ctx, node);
  if (req.watch() && err == ZkError::kOk) {
    watches_.Add(ctx.session_id, req.path(), WatchKind::kChild);
  }
  return err;
}

void RockeeperService::GetAcl(const CallInfo& call,
                              const v1::GetAclRequest& req,
                              v1::GetAclResponse* resp, Done done) {
  Serve(call, OpKind::kGetAcl, resp->mutable_header(), std::move(done),
        [this, &req, resp](auto& c) -> std::optional<grpc::Status> {
          absl::ReaderMutexLock visible(&replica_->visibility_mutex());
          engine::Znode node;
          const ZkError err = CheckRead(
              req.path(), engine::perms::kRead | engine::perms::kAdmin, c.ctx,
              &node);
          FillHeader(err, replica_->db().last_applied_zxid(), c.ctx.session_id,
                     resp->mutable_header());
          if (err != ZkError::kOk) return grpc::Status::OK;
          absl::StatusOr<engine::AclVector> acl =
              replica_->db().GetAcl(node.acl_id);
          if (!acl.ok()) {
            return grpc::Status(grpc::StatusCode::INTERNAL,
                                std::string(acl.status().message()));
          }
          // Callers without ADMIN see digest ids masked, as in ZooKeeper.
          const bool admin = engine::HasPermission(*acl, engine::perms::kAdmin,
                                                   c.ctx.auth_ids);
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
          return grpc::Status::OK;
        },
        ReadFootprint{ReadScope::kNode, req.path()});
}

void RockeeperService::MultiRead(const CallInfo& call,
                                 const v1::MultiReadRequest& req,
                                 v1::MultiReadResponse* resp, Done done) {
  Serve(call, OpKind::kMultiRead, resp->mutable_header(), std::move(done),
        [this, &req, resp](auto& c) -> std::optional<grpc::Status> {
          absl::ReaderMutexLock visible(&replica_->visibility_mutex());
          for (const auto& op : req.ops()) {
            auto* result = resp->add_results();
            engine::Znode node;
            const std::string& path = op.has_get_data()
                                          ? op.get_data().path()
                                          : op.get_children().path();
            ZkError err = CheckRead(path, engine::perms::kRead, c.ctx, &node);
            if (err == ZkError::kOk && op.has_get_children()) {
              std::vector<std::string> names;
              if (!replica_->db().ListChildren(path, &names).ok()) {
                err = ZkError::kSystemError;
              }
              for (auto& n : names) result->add_children(std::move(n));
            } else if (err == ZkError::kOk) {
              result->set_data(node.data);
              result->set_data_null(node.data_null);
            }
            result->set_err(static_cast<int32_t>(err));
            if (err == ZkError::kOk) {
              ToApiStat(engine::ClientStat(node), result->mutable_stat());
            }
          }
          FillHeader(ZkError::kOk, replica_->db().last_applied_zxid(),
                     c.ctx.session_id, resp->mutable_header());
          return grpc::Status::OK;
        });
}

void RockeeperService::GetEphemerals(const CallInfo& call,
                                     const v1::GetEphemeralsRequest& req,
                                     v1::GetEphemeralsResponse* resp,
                                     Done done) {
  Serve(call, OpKind::kGetEphemerals, resp->mutable_header(), std::move(done),
        [this, &req, resp](auto& c) -> std::optional<grpc::Status> {
          grpc::Status st = grpc::Status::OK;
          absl::ReaderMutexLock visible(&replica_->visibility_mutex());
          std::vector<std::string> paths;
          if (c.ctx.session_id != 0 &&
              !replica_->db().ListEphemerals(c.ctx.session_id, &paths).ok()) {
            st = grpc::Status(grpc::StatusCode::INTERNAL, "listing ephemerals");
          }
          const std::string& prefix = req.prefix_path();
          for (auto& p : paths) {
            if (prefix.empty() || prefix == "/" || p.rfind(prefix, 0) == 0) {
              resp->add_paths(std::move(p));
            }
          }
          FillHeader(ZkError::kOk, replica_->db().last_applied_zxid(),
                     c.ctx.session_id, resp->mutable_header());
          return st;
        });
}

void RockeeperService::GetAllChildrenNumber(
    const CallInfo& call, const v1::GetAllChildrenNumberRequest& req,
    v1::GetAllChildrenNumberResponse* resp, Done done) {
  Serve(call, OpKind::kGetAllChildrenNumber, resp->mutable_header(),
        std::move(done),
        [this, &req, resp](auto& c) -> std::optional<grpc::Status> {
          absl::ReaderMutexLock visible(&replica_->visibility_mutex());
          engine::Znode node;
          ZkError err =
              CheckRead(req.path(), engine::perms::kRead, c.ctx, &node);
          if (err == ZkError::kOk) {
            absl::StatusOr<int64_t> n =
                replica_->db().CountDescendants(req.path());
            if (n.ok()) {
              resp->set_total_number(static_cast<int32_t>(*n));
            } else {
              err = ZkError::kSystemError;
            }
          }
          FillHeader(err, replica_->db().last_applied_zxid(), c.ctx.session_id,
                     resp->mutable_header());
          return grpc::Status::OK;
        },
        ReadFootprint{ReadScope::kSubtree, req.path()});
}

void RockeeperService::Sync(const CallInfo& call, const v1::SyncRequest& req,
                            v1::SyncResponse* resp, Done done) {
  Serve(
      call, OpKind::kSync, resp->mutable_header(), std::move(done),
      [this, &req, resp](auto& c) -> std::optional<grpc::Status> {
        if (replicated_ && engine::IsValidPath(req.path())) {
          // An ensemble member catches up with the leader: a no-op write
          // (check "/" at any version) goes through the leader and is
          // applied here after everything committed before it. ZooKeeper
          // uses a SYNC packet; a txn costs a zxid but needs no second
          // path.
          SubmitAsync(&c, engine::CheckRequest{"/", -1});
          return std::nullopt;
        }
        // Standalone: a write is applied before it returns, so this server
        // is always up to date with the (only) leader. Running in the
        // session's FIFO order is what sync promises.
        resp->set_path(req.path());
        FillHeader(engine::IsValidPath(req.path()) ? ZkError::kOk
                                                   : ZkError::kBadArguments,
                   replica_->db().last_applied_zxid(), c.ctx.session_id,
                   resp->mutable_header());
        return grpc::Status::OK;
      },
      [this, &req, resp](auto& c, replication::SubmitResult& r) {
        resp->set_path(req.path());
        grpc::Status st =
            FinishWrite(r, c.ctx.session_id, resp->mutable_header());
        // The check's own verdict (e.g. an ACL on "/") is not the sync's:
        // it is applied.
        resp->mutable_header()->set_err(0);
        resp->mutable_header()->clear_err_name();
        return st;
      });
}

void RockeeperService::AddAuth(const CallInfo& call,
                               const v1::AddAuthRequest& req,
                               v1::AddAuthResponse* resp, Done done) {
  Serve(call, OpKind::kAuth, resp->mutable_header(), std::move(done),
        [this, &req, resp](auto& c) -> std::optional<grpc::Status> {
          const int64_t sid = c.ctx.session_id;
          if (sid == 0) {
            return grpc::Status(
                grpc::StatusCode::FAILED_PRECONDITION,
                "AddAuth needs a session (metadata rk-session-id)");
          }
          ZkError err = ZkError::kOk;
          if (req.scheme() != "digest" ||
              req.auth().find(':') == std::string::npos) {
            err = ZkError::kAuthFailed;
          } else {
            for (auto& id :
                 engine::DigestAuthIds(req.auth(), options_.super_digest)) {
              sessions_.AddAuth(sid, std::move(id));
            }
          }
          FillHeader(err, replica_->db().last_applied_zxid(), sid,
                     resp->mutable_header());
          return grpc::Status::OK;
        });
}

void RockeeperService::WhoAmI(const CallInfo& call, const v1::WhoAmIRequest&,
                              v1::WhoAmIResponse* resp, Done done) {
  Serve(call, OpKind::kWhoAmI, resp->mutable_header(), std::move(done),
        [this, resp](auto& c) -> std::optional<grpc::Status> {
          // ZooKeeper lists the added identities before the connection's ip.
          for (const bool ip_pass : {false, true}) {
            for (const auto& id : c.ctx.auth_ids) {
              if ((id.scheme == "ip") != ip_pass) continue;
              auto* info = resp->add_client_info();
              info->set_auth_scheme(id.scheme);
              info->set_user(id.scheme == "digest"
                                 ? id.id.substr(0, id.id.find(':'))
                                 : id.id);
            }
          }
          FillHeader(ZkError::kOk, replica_->db().last_applied_zxid(),
                     c.ctx.session_id, resp->mutable_header());
          return grpc::Status::OK;
        });
}

// --- Watches ----------------------------------------------------------------

void RockeeperService::AddWatch(const CallInfo& call,
                                const v1::AddWatchRequest& req,
                                v1::AddWatchResponse* resp, Done done) {
  Serve(call, OpKind::kAddWatch, resp->mutable_header(), std::move(done),
        [this, &req, resp](auto& c) -> std::optional<grpc::Status> {
          const int64_t sid = c.ctx.session_id;
          if (sid == 0) return WatchNeedsSession(true, sid);
          ZkError err = ZkError::kOk;
          if (!engine::IsValidPath(req.path())) {
            err = ZkError::kBadArguments;
          } else {
            watches_.Add(sid, req.path(),
                         req.mode() == v1::PERSISTENT_RECURSIVE_WATCH
                             ? WatchKind::kPersistentRecursive
                             : WatchKind::kPersistent);
          }
          FillHeader(err, replica_->db().last_applied_zxid(), sid,
                     resp->mutable_header());
          return grpc::Status::OK;
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

void RockeeperService::RemoveWatches(const CallInfo& call,
                                     const v1::RemoveWatchesRequest& req,
                                     v1::RemoveWatchesResponse* resp,
                                     Done done) {
  // checkWatches (the wire protocol's opcode 17): only check.
  const bool check_only = call.check_only;
  Serve(call, OpKind::kRemoveWatches, resp->mutable_header(), std::move(done),
        [this, &req, resp, check_only](auto& c) -> std::optional<grpc::Status> {
          std::optional<std::vector<WatchKind>> kinds = KindsOf(req.type());
          if (!kinds) {
            return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                "unknown watcher type");
          }
          const int64_t sid = c.ctx.session_id;
          const int removed =
              sid == 0 ? 0
              : check_only
                  ? (watches_.Contains(sid, req.path(), *kinds) ? 1 : 0)
                  : watches_.Remove(sid, req.path(), *kinds);
          FillHeader(removed > 0 ? ZkError::kOk : ZkError::kNoWatcher,
                     replica_->db().last_applied_zxid(), sid,
                     resp->mutable_header());
          return grpc::Status::OK;
        });
}

void RockeeperService::SetWatches(const CallInfo& call,
                                  const v1::SetWatchesRequest& req,
                                  v1::SetWatchesResponse* resp, Done done) {
  Serve(call, OpKind::kSetWatches, resp->mutable_header(), std::move(done),
        [this, &req, resp](auto& c) -> std::optional<grpc::Status> {
          const int64_t sid = c.ctx.session_id;
          if (sid == 0) return WatchNeedsSession(true, sid);
          absl::ReaderMutexLock visible(&replica_->visibility_mutex());
          const int64_t rel = req.relative_zxid();
          const engine::StateDb& db = replica_->db();
          using engine::WatchEventType;
          // As ZooKeeper's DataTree.setWatches: fire at once what changed after
          // `rel`, register the rest. Made-up events carry zxid -1.
          for (const std::string& path : req.data_watches()) {
            absl::StatusOr<engine::Znode> n = db.GetZnode(path);
            if (!n.ok()) {
              events_.Publish(sid, WatchEventType::kNodeDeleted, path, -1);
            } else if (n->mzxid > rel) {
              events_.Publish(sid, WatchEventType::kNodeDataChanged, path, -1);
            } else {
              watches_.Add(sid, path, WatchKind::kData);
            }
          }
          for (const std::string& path : req.exist_watches()) {
            if (db.GetZnode(path).ok()) {
              events_.Publish(sid, WatchEventType::kNodeCreated, path, -1);
            } else {
              watches_.Add(sid, path, WatchKind::kExist);
            }
          }
          for (const std::string& path : req.child_watches()) {
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
          for (const std::string& path : req.persistent_watches()) {
            watches_.Add(sid, path, WatchKind::kPersistent);
          }
          for (const std::string& path : req.persistent_recursive_watches()) {
            watches_.Add(sid, path, WatchKind::kPersistentRecursive);
          }
          FillHeader(ZkError::kOk, db.last_applied_zxid(), sid,
                     resp->mutable_header());
          return grpc::Status::OK;
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

// --- gRPC shims -----------------------------------------------------------
// Each unary method resolves the caller from its ServerContext and runs the
// transport-neutral entry point; the reactor finishes in `done`.

CallInfo RockeeperService::CallInfoOf(const grpc::CallbackServerContext* ctx) {
  CallInfo info;
  info.client_ip = PeerAddress(ctx->peer());
  const auto& md = ctx->client_metadata();
  auto it = md.find(kSessionMetadata);
  if (it != md.end() &&
      !absl::SimpleAtoi(absl::string_view(it->second.data(), it->second.size()),
                        &info.session_id)) {
    info.session_id = 0;
    info.bad_session = true;
  }
  return info;
}

#define RK_GRPC_SHIM(Method, Req, Resp)                                       \
  grpc::ServerUnaryReactor* RockeeperService::Method(                         \
      grpc::CallbackServerContext* ctx, const v1::Req* req, v1::Resp* resp) { \
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();                \
    Method(CallInfoOf(ctx), *req, resp,                                       \
           [reactor](const grpc::Status& st) { reactor->Finish(st); });       \
    return reactor;                                                           \
  }

RK_GRPC_SHIM(Connect, ConnectRequest, ConnectResponse)
RK_GRPC_SHIM(Close, CloseRequest, CloseResponse)
RK_GRPC_SHIM(Heartbeat, HeartbeatRequest, HeartbeatResponse)
RK_GRPC_SHIM(Create, CreateRequest, CreateResponse)
RK_GRPC_SHIM(Delete, DeleteRequest, DeleteResponse)
RK_GRPC_SHIM(SetData, SetDataRequest, SetDataResponse)
RK_GRPC_SHIM(SetAcl, SetAclRequest, SetAclResponse)
RK_GRPC_SHIM(Multi, MultiRequest, MultiResponse)
RK_GRPC_SHIM(Exists, ExistsRequest, ExistsResponse)
RK_GRPC_SHIM(GetData, GetDataRequest, GetDataResponse)
RK_GRPC_SHIM(GetChildren, GetChildrenRequest, GetChildrenResponse)
RK_GRPC_SHIM(GetAcl, GetAclRequest, GetAclResponse)
RK_GRPC_SHIM(MultiRead, MultiReadRequest, MultiReadResponse)
RK_GRPC_SHIM(GetEphemerals, GetEphemeralsRequest, GetEphemeralsResponse)
RK_GRPC_SHIM(GetAllChildrenNumber, GetAllChildrenNumberRequest,
             GetAllChildrenNumberResponse)
RK_GRPC_SHIM(Sync, SyncRequest, SyncResponse)
RK_GRPC_SHIM(AddAuth, AddAuthRequest, AddAuthResponse)
RK_GRPC_SHIM(WhoAmI, WhoAmIRequest, WhoAmIResponse)
RK_GRPC_SHIM(AddWatch, AddWatchRequest, AddWatchResponse)
RK_GRPC_SHIM(RemoveWatches, RemoveWatchesRequest, RemoveWatchesResponse)
RK_GRPC_SHIM(SetWatches, SetWatchesRequest, SetWatchesResponse)

#undef RK_GRPC_SHIM

}  // namespace rockeeper::rpc
