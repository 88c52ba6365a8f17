#include "rpc/client.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <list>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "rockeeper/v1/rockeeper.grpc.pb.h"

namespace rockeeper::client {

// --- Error codes --------------------------------------------------------

namespace zk {
const char* CodeName(int32_t code) {
  switch (code) {
    case kOk:
      return "OK";
    case kSystemError:
      return "SYSTEMERROR";
    case kRuntimeInconsistency:
      return "RUNTIMEINCONSISTENCY";
    case kDataInconsistency:
      return "DATAINCONSISTENCY";
    case kConnectionLoss:
      return "CONNECTIONLOSS";
    case kMarshallingError:
      return "MARSHALLINGERROR";
    case kUnimplemented:
      return "UNIMPLEMENTED";
    case kOperationTimeout:
      return "OPERATIONTIMEOUT";
    case kBadArguments:
      return "BADARGUMENTS";
    case kUnknownSession:
      return "UNKNOWNSESSION";
    case kNewConfigNoQuorum:
      return "NEWCONFIGNOQUORUM";
    case kReconfigInProgress:
      return "RECONFIGINPROGRESS";
    case kApiError:
      return "APIERROR";
    case kNoNode:
      return "NONODE";
    case kNoAuth:
      return "NOAUTH";
    case kBadVersion:
      return "BADVERSION";
    case kNoChildrenForEphemerals:
      return "NOCHILDRENFOREPHEMERALS";
    case kNodeExists:
      return "NODEEXISTS";
    case kNotEmpty:
      return "NOTEMPTY";
    case kSessionExpired:
      return "SESSIONEXPIRED";
    case kInvalidCallback:
      return "INVALIDCALLBACK";
    case kInvalidAcl:
      return "INVALIDACL";
    case kAuthFailed:
      return "AUTHFAILED";
    case kSessionMoved:
      return "SESSIONMOVED";
    case kNotReadOnly:
      return "NOTREADONLY";
    case kEphemeralOnLocalSession:
      return "EPHEMERALONLOCALSESSION";
    case kNoWatcher:
      return "NOWATCHER";
    case kRequestTimeout:
      return "REQUESTTIMEOUT";
    case kReconfigDisabled:
      return "RECONFIGDISABLED";
    case kSessionClosedRequireSaslAuth:
      return "SESSIONCLOSEDREQUIRESASLAUTH";
    case kQuotaExceeded:
      return "QUOTAEXCEEDED";
    case kThrottledOp:
      return "THROTTLEDOP";
  }
  return "UNKNOWN";
}
}  // namespace zk

absl::StatusCode ZkCodeToStatusCode(int32_t code) {
  using C = absl::StatusCode;
  switch (code) {
    case zk::kOk:
      return C::kOk;
    case zk::kSystemError:
    case zk::kMarshallingError:
    case zk::kApiError:
      return C::kInternal;
    case zk::kRuntimeInconsistency:
      return C::kAborted;
    case zk::kDataInconsistency:
      return C::kDataLoss;
    case zk::kConnectionLoss:
    case zk::kNewConfigNoQuorum:
    case zk::kReconfigInProgress:
    case zk::kSessionMoved:
      return C::kUnavailable;
    case zk::kUnimplemented:
      return C::kUnimplemented;
    case zk::kOperationTimeout:
    case zk::kRequestTimeout:
      return C::kDeadlineExceeded;
    case zk::kBadArguments:
    case zk::kInvalidCallback:
    case zk::kInvalidAcl:
      return C::kInvalidArgument;
    case zk::kUnknownSession:
    case zk::kSessionExpired:
    case zk::kAuthFailed:
    case zk::kSessionClosedRequireSaslAuth:
      return C::kUnauthenticated;
    case zk::kNoNode:
    case zk::kNoWatcher:
      return C::kNotFound;
    case zk::kNoAuth:
      return C::kPermissionDenied;
    case zk::kBadVersion:
    case zk::kNoChildrenForEphemerals:
    case zk::kNotEmpty:
    case zk::kNotReadOnly:
    case zk::kEphemeralOnLocalSession:
    case zk::kReconfigDisabled:
      return C::kFailedPrecondition;
    case zk::kNodeExists:
      return C::kAlreadyExists;
    case zk::kQuotaExceeded:
    case zk::kThrottledOp:
      return C::kResourceExhausted;
  }
  return C::kUnknown;
}

absl::Status ZkErrorStatus(int32_t code, const std::string& detail) {
  if (code == zk::kOk) return absl::OkStatus();
  absl::Status st(ZkCodeToStatusCode(code),
                  absl::StrCat(zk::CodeName(code), " (", code, ")",
                               detail.empty() ? "" : ": ", detail));
  st.SetPayload(kZkErrorPayloadKey, absl::Cord(absl::StrCat(code)));
  return st;
}

int32_t ZkErrorCode(const absl::Status& status) {
  if (status.ok()) return zk::kOk;
  auto payload = status.GetPayload(kZkErrorPayloadKey);
  int32_t code = 0;
  if (payload.has_value() && absl::SimpleAtoi(std::string(*payload), &code)) {
    return code;
  }
  return zk::kConnectionLoss;
}

// --- Value types ----------------------------------------------------------

std::vector<Acl> OpenAclUnsafe() { return {{perms::kAll, "world", "anyone"}}; }
std::vector<Acl> CreatorAllAcl() { return {{perms::kAll, "auth", ""}}; }
std::vector<Acl> ReadAclUnsafe() { return {{perms::kRead, "world", "anyone"}}; }

const char* EventTypeName(EventType type) {
  switch (type) {
    case EventType::kNone:
      return "None";
    case EventType::kNodeCreated:
      return "NodeCreated";
    case EventType::kNodeDeleted:
      return "NodeDeleted";
    case EventType::kNodeDataChanged:
      return "NodeDataChanged";
    case EventType::kNodeChildrenChanged:
      return "NodeChildrenChanged";
    case EventType::kDataWatchRemoved:
      return "DataWatchRemoved";
    case EventType::kChildWatchRemoved:
      return "ChildWatchRemoved";
    case EventType::kPersistentWatchRemoved:
      return "PersistentWatchRemoved";
  }
  return "Unknown";
}

const char* SessionStateName(SessionState state) {
  switch (state) {
    case SessionState::kDisconnected:
      return "Disconnected";
    case SessionState::kSyncConnected:
      return "SyncConnected";
    case SessionState::kExpired:
      return "Expired";
    case SessionState::kClosed:
      return "Closed";
  }
  return "Unknown";
}

Op Op::Create(std::string path, std::string data, std::vector<Acl> acl,
              CreateMode mode, int64_t ttl_ms) {
  Op op;
  op.type = Type::kCreate;
  op.path = std::move(path);
  op.data = std::move(data);
  op.acl = std::move(acl);
  op.mode = mode;
  op.ttl_ms = ttl_ms;
  return op;
}

Op Op::Delete(std::string path, int32_t version) {
  Op op;
  op.type = Type::kDelete;
  op.path = std::move(path);
  op.version = version;
  return op;
}

Op Op::SetData(std::string path, std::string data, int32_t version) {
  Op op;
  op.type = Type::kSetData;
  op.path = std::move(path);
  op.data = std::move(data);
  op.version = version;
  return op;
}

Op Op::Check(std::string path, int32_t version) {
  Op op;
  op.type = Type::kCheck;
  op.path = std::move(path);
  op.version = version;
  return op;
}

ReadOp ReadOp::GetData(std::string path) {
  ReadOp op;
  op.type = Type::kGetData;
  op.path = std::move(path);
  return op;
}

ReadOp ReadOp::GetChildren(std::string path) {
  ReadOp op;
  op.type = Type::kGetChildren;
  op.path = std::move(path);
  return op;
}

namespace {

namespace v1 = ::rockeeper::v1;
using Stub = v1::Rockeeper::Stub;

constexpr char kSessionMetadata[] = "rk-session-id";

Stat FromApi(const v1::Stat& s) {
  Stat out;
  out.czxid = s.czxid();
  out.mzxid = s.mzxid();
  out.ctime_ms = s.ctime_ms();
  out.mtime_ms = s.mtime_ms();
  out.version = s.version();
  out.cversion = s.cversion();
  out.aversion = s.aversion();
  out.ephemeral_owner = s.ephemeral_owner();
  out.data_length = s.data_length();
  out.num_children = s.num_children();
  out.pzxid = s.pzxid();
  return out;
}

void ToApi(const std::vector<Acl>& in,
           google::protobuf::RepeatedPtrField<v1::Acl>* out) {
  for (const Acl& a : in) {
    v1::Acl* o = out->Add();
    o->set_perms(a.perms);
    o->set_scheme(a.scheme);
    o->set_id(a.id);
  }
}

void FillCreate(const std::string& path, const std::string& data,
                const std::vector<Acl>& acl, CreateMode mode, int64_t ttl_ms,
                v1::CreateRequest* req) {
  req->set_path(path);
  req->set_data(data);
  ToApi(acl, req->mutable_acl());
  req->set_mode(static_cast<v1::CreateMode>(static_cast<int>(mode)));
  if (ttl_ms >= 0) req->set_ttl_ms(ttl_ms);
}

// A gRPC failure as a client error (CONNECTIONLOSS unless more specific).
absl::Status FromGrpc(const grpc::Status& st, const std::string& what) {
  int32_t code = zk::kConnectionLoss;
  switch (st.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
      code = zk::kBadArguments;
      break;
    case grpc::StatusCode::UNIMPLEMENTED:
      code = zk::kUnimplemented;
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      code = zk::kRequestTimeout;
      break;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      code = zk::kThrottledOp;
      break;
    default:
      break;
  }
  return ZkErrorStatus(code, absl::StrCat(what, ": ", st.error_message()));
}

// Watch kinds, as the server's: one-shot (data, exist, child) and
// persistent ones.
enum class Kind { kData = 0, kExist, kChild, kPersistent, kRecursive };
constexpr int kNumKinds = 5;

bool IsOneShot(Kind k) {
  return k == Kind::kData || k == Kind::kExist || k == Kind::kChild;
}

// A position in the session's event sequence. `gen` counts the servers'
// event queues: it moves on when a reconnect finds that the server lost
// the queue (a restart), where seqs start again from 1.
struct SeqPos {
  uint64_t gen = 0;
  uint64_t seq = 0;
};

bool After(const SeqPos& a, const SeqPos& b) {
  return a.gen > b.gen || (a.gen == b.gen && a.seq > b.seq);
}

// One registered watcher. Registered (`pending`) before the read that sets
// it is sent, so that no event can slip between the server's registration
// and ours; the read's response resolves it (ok or not, and `min`: events
// at or before it predate the read and do not fire it).
// `fn` and `path` are immutable; the other fields are guarded by
// Client::Impl::mu_.
struct WatchEntry {
  Watcher fn;
  Kind kind = Kind::kData;
  std::string path;
  bool pending = true;
  bool ok = false;
  bool removed = false;  // by RemoveWatches
  SeqPos min;
  std::vector<SeqPos> hits;  // events that matched it while pending
  bool claimed = false;      // one-shot: `claim` is the event that fires it
  SeqPos claim;
};
using EntryPtr = std::shared_ptr<WatchEntry>;

// One unit of work for the dispatcher thread: a task (async completion,
// *WatchRemoved event), a session state event for the default watcher, or
// a watch event with the watchers it may fire.
struct DispatchItem {
  std::function<void()> task;
  bool to_default = false;
  WatchEvent event;
  SeqPos pos;
  std::vector<EntryPtr> targets;
};

// The current `Session` stream. Its reader thread owns reading; the
// session thread writes pings (under write_mu).
struct Stream {
  grpc::ClientContext ctx;
  absl::Mutex write_mu;
  std::unique_ptr<
      grpc::ClientReaderWriter<v1::SessionRequest, v1::SessionMessage>>
      rw ABSL_GUARDED_BY(write_mu);
  bool finished ABSL_GUARDED_BY(write_mu) = false;
  std::thread reader;
  // Guarded by Client::Impl::mu_.
  absl::Time started;
  absl::Time last_heard;
  bool connected = false;
  bool done = false;
  grpc::Status status;
  v1::SessionMessage::State end_state = v1::SessionMessage::STATE_UNSPECIFIED;
};

enum class Retry { kNo, kYes };

}  // namespace

// --- Impl -------------------------------------------------------------------

class Client::Impl : public std::enable_shared_from_this<Client::Impl> {
 public:
  Impl(ClientOptions options, std::vector<std::string> servers);
  ~Impl();

  // Creates the session and starts the threads.
  absl::Status Start();
  absl::Status Close();

  int64_t session_id() const {
    absl::MutexLock l(&mu_);
    return session_id_;
  }
  std::string session_password() const {
    absl::MutexLock l(&mu_);
    return password_;
  }
  int32_t session_timeout_ms() const {
    absl::MutexLock l(&mu_);
    return timeout_ms_;
  }
  int64_t last_zxid_seen() const {
    absl::MutexLock l(&mu_);
    return last_zxid_;
  }
  std::string current_server() const {
    absl::MutexLock l(&mu_);
    return servers_[server_index_];
  }
  SessionState state() const;
  void PausePings(bool paused) {
    absl::MutexLock l(&mu_);
    pings_paused_ = paused;
    // Silence while paused is not the server's fault.
    if (!paused && stream_ != nullptr) stream_->last_heard = absl::Now();
  }

  absl::StatusOr<CreateResult> Create(const std::string& path,
                                      const std::string& data,
                                      const std::vector<Acl>& acl,
                                      CreateMode mode, int64_t ttl_ms,
                                      bool data_null = false);
  absl::Status Delete(const std::string& path, int32_t version);
  absl::StatusOr<Stat> SetData(const std::string& path, const std::string& data,
                               int32_t version);
  absl::StatusOr<Stat> SetAcl(const std::string& path,
                              const std::vector<Acl>& acl, int32_t aversion);
  MultiResult Multi(const std::vector<Op>& ops);
  absl::StatusOr<std::optional<Stat>> Exists(const std::string& path,
                                             Watcher watcher);
  absl::StatusOr<DataResult> GetData(const std::string& path, Watcher watcher);
  absl::StatusOr<ChildrenResult> GetChildren(const std::string& path,
                                             Watcher watcher);
  absl::StatusOr<AclResult> GetAcl(const std::string& path);
  absl::StatusOr<std::vector<ReadOpResult>> MultiRead(
      const std::vector<ReadOp>& ops);
  absl::Status Sync(const std::string& path);
  absl::StatusOr<std::vector<std::string>> GetEphemerals(
      const std::string& prefix);
  absl::StatusOr<int32_t> GetAllChildrenNumber(const std::string& path);
  absl::Status AddAuth(const std::string& scheme, const std::string& auth);
  absl::StatusOr<std::vector<AuthInfo>> WhoAmI();
  absl::Status AddWatch(const std::string& path, AddWatchMode mode,
                        Watcher watcher);
  absl::Status RemoveWatches(const std::string& path, WatcherType type);

  // Runs `fn` on the worker thread (FIFO); the future gets its result.
  template <typename T>
  std::future<T> Submit(std::function<T()> fn) {
    auto promise = std::make_shared<std::promise<T>>();
    std::future<T> future = promise->get_future();
    Enqueue([promise, fn = std::move(fn)] { promise->set_value(fn()); });
    return future;
  }
  // Runs `fn` on the worker thread (FIFO), then `done` with its result on
  // the dispatcher thread.
  template <typename T>
  void SubmitWithCallback(std::function<T()> fn, std::function<void(T)> done) {
    Enqueue([this, fn = std::move(fn), done = std::move(done)] {
      auto result = std::make_shared<T>(fn());
      if (done) Post([done, result] { done(std::move(*result)); });
    });
  }

 private:
  enum class State {
    kConnecting,
    kConnected,
    kDisconnected,
    kExpired,
    kClosed
  };

  struct InFlight {
    grpc::ClientContext* ctx;
    const Stub* stub;  // the connection it was sent on
    bool cancelled = false;
  };

  // The RPC `method` on behalf of the session: waits for a connection,
  // retries connection losses (Retry::kYes) until request_timeout_ms, marks
  // the session expired on SESSIONEXPIRED, and waits for the events up to
  // header.event_seq (the ordering promise). OK means the server answered;
  // the caller reads header.err. `pos` (optional) gets the response's
  // position in the event sequence.
  template <typename Req, typename Resp>
  absl::Status Call(const std::string& what,
                    grpc::Status (Stub::*method)(grpc::ClientContext*,
                                                 const Req&, Resp*),
                    const Req& req, Resp* resp, Retry retry,
                    SeqPos* pos = nullptr);

  bool TerminalLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return state_ == State::kExpired || state_ == State::kClosed;
  }
  absl::Status UnusableErrorLocked(const std::string& what) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Duration PingIntervalLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return absl::Milliseconds(std::max(timeout_ms_ / 3, 10));
  }
  absl::Duration ReadTimeoutLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return absl::Milliseconds(std::max(timeout_ms_ * 2 / 3, 20));
  }
  void ExpireLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EnqueueStateLocked(SessionState s) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RequestReconnect(uint64_t epoch);
  // Cancels the calls in flight (all, or those not sent on `keep`).
  void CancelInFlightLocked(bool all, const Stub* keep)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A stub on a fresh channel to servers_[idx]. Every connection attempt
  // uses a fresh channel (as ZooKeeper a fresh socket), so that gRPC's
  // reconnect backoff of a failed channel never delays a reconnection.
  std::shared_ptr<Stub> NewStub(size_t idx) const;
  // Runs `rpc` (using `ctx` on `stub`) registered as in flight, so that
  // Close() can cancel it; CANCELLED without running it when closing.
  grpc::Status Tracked(grpc::ClientContext* ctx, const Stub* stub,
                       const std::function<grpc::Status()>& rpc);

  // Watches.
  EntryPtr AddPendingWatch(Kind kind, const std::string& path, Watcher fn);
  void ResolveWatch(const EntryPtr& e, bool ok, bool exists, SeqPos pos);
  void EraseWatchLocked(const EntryPtr& e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OnEventLocked(const v1::WatchEvent& ev)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CollectWatchesLocked(v1::SetWatchesRequest* req) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Threads.
  void SessionLoop();
  void StartStreamLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ReaderMain(const std::shared_ptr<Stream>& s,
                  const std::shared_ptr<Stub>& stub, int64_t session_id,
                  const std::string& password);
  void HandleStreamEnd(Stream* s);
  void Heartbeat();
  void Reconnect();
  bool FinishResume(size_t server, const std::shared_ptr<Stub>& stub,
                    const v1::ConnectResponse& resp);
  void DispatcherMain();
  void WorkerMain();
  void Enqueue(std::function<void()> task);
  void Post(std::function<void()> task);

  const ClientOptions options_;
  const std::vector<std::string> servers_;

  mutable absl::Mutex mu_;
  State state_ ABSL_GUARDED_BY(mu_) = State::kConnecting;
  int64_t session_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::string password_ ABSL_GUARDED_BY(mu_);
  int32_t timeout_ms_ ABSL_GUARDED_BY(mu_) = 0;
  size_t server_index_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<Stub> stub_ ABSL_GUARDED_BY(mu_);  // of the connection
  uint64_t epoch_ ABSL_GUARDED_BY(mu_) = 0;          // +1 per (re)connect
  int64_t last_zxid_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t hub_gen_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t last_seq_ ABSL_GUARDED_BY(mu_) = 0;  // last event received
  bool pings_paused_ ABSL_GUARDED_BY(mu_) = false;
  bool reconnect_requested_ ABSL_GUARDED_BY(mu_) = false;
  bool stream_unavailable_ ABSL_GUARDED_BY(mu_) = false;  // use Heartbeat
  bool close_called_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::pair<std::string, std::string>> auths_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<EntryPtr>>
      watches_[kNumKinds] ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Stream> stream_ ABSL_GUARDED_BY(mu_);
  std::list<InFlight> in_flight_ ABSL_GUARDED_BY(mu_);
  std::deque<DispatchItem> dispatch_ ABSL_GUARDED_BY(mu_);
  bool dispatcher_stop_ ABSL_GUARDED_BY(mu_) = false;
  std::deque<std::function<void()>> work_ ABSL_GUARDED_BY(mu_);
  bool worker_stop_ ABSL_GUARDED_BY(mu_) = false;

  std::thread session_thread_;
  std::thread worker_thread_;
  std::thread dispatcher_thread_;
};

Client::Impl::Impl(ClientOptions options, std::vector<std::string> servers)
    : options_(std::move(options)), servers_(std::move(servers)) {}

std::shared_ptr<Stub> Client::Impl::NewStub(size_t idx) const {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
              std::max(options_.reconnect_backoff_initial_ms, 10));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
              std::max(options_.reconnect_backoff_max_ms, 10));
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(-1);
  return v1::Rockeeper::NewStub(grpc::CreateCustomChannel(
      servers_[idx], grpc::InsecureChannelCredentials(), args));
}

Client::Impl::~Impl() {
  // Close() has joined the other threads. The dispatcher is detached when
  // the last reference is dropped on the dispatcher thread itself.
  if (session_thread_.joinable()) session_thread_.join();
  if (worker_thread_.joinable()) worker_thread_.join();
  if (dispatcher_thread_.joinable()) {
    if (dispatcher_thread_.get_id() == std::this_thread::get_id()) {
      dispatcher_thread_.detach();
    } else {
      dispatcher_thread_.join();
    }
  }
}

SessionState Client::Impl::state() const {
  absl::MutexLock l(&mu_);
  switch (state_) {
    case State::kConnected:
      return SessionState::kSyncConnected;
    case State::kExpired:
      return SessionState::kExpired;
    case State::kClosed:
      return SessionState::kClosed;
    case State::kConnecting:
    case State::kDisconnected:
      break;
  }
  return SessionState::kDisconnected;
}

absl::Status Client::Impl::Start() {
  const absl::Time deadline =
      absl::Now() + absl::Milliseconds(options_.connect_timeout_ms);
  absl::Duration backoff =
      absl::Milliseconds(std::max(options_.reconnect_backoff_initial_ms, 1));
  std::string last_error = "no attempt";
  for (size_t attempt = 0;; ++attempt) {
    const size_t idx = attempt % servers_.size();
    std::shared_ptr<Stub> stub = NewStub(idx);
    v1::ConnectRequest req;
    req.set_timeout_ms(options_.session_timeout_ms);
    req.set_session_id(options_.session_id);
    req.set_password(options_.session_password);
    grpc::ClientContext ctx;
    // Each server gets its share of the time (a blackholed one must not
    // take it all), at least 1 s.
    ctx.set_deadline(absl::ToChronoTime(std::min(
        deadline,
        absl::Now() + std::max(absl::Milliseconds(options_.connect_timeout_ms) /
                                   static_cast<int64_t>(servers_.size()),
                               absl::Seconds(1)))));
    v1::ConnectResponse resp;
    const grpc::Status st = stub->Connect(&ctx, req, &resp);
    if (st.ok()) {
      const v1::ResponseHeader& h = resp.header();
      if (h.err() != zk::kOk) {
        return ZkErrorStatus(h.err(),
                             absl::StrCat("Connect to ", servers_[idx]));
      }
      absl::MutexLock l(&mu_);
      state_ = State::kConnected;
      session_id_ = resp.session_id();
      password_ = resp.password();
      timeout_ms_ = resp.timeout_ms();
      server_index_ = idx;
      stub_ = std::move(stub);
      epoch_ = 1;
      last_zxid_ = h.zxid();
      last_seq_ = h.event_seq();
      break;
    }
    if (st.error_code() != grpc::StatusCode::UNAVAILABLE &&
        st.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return FromGrpc(st, absl::StrCat("Connect to ", servers_[idx]));
    }
    last_error = absl::StrCat(servers_[idx], ": ", st.error_message());
    const absl::Time now = absl::Now();
    if (now >= deadline) {
      return ZkErrorStatus(zk::kConnectionLoss,
                           absl::StrCat("Connect: no server answered within ",
                                        options_.connect_timeout_ms,
                                        " ms (last: ", last_error, ")"));
    }
    if ((attempt + 1) % servers_.size() == 0) {
      absl::SleepFor(std::min(backoff, deadline - now));
      backoff = std::min(
          backoff * 2,
          absl::Milliseconds(std::max(options_.reconnect_backoff_max_ms, 1)));
    }
  }
  {
    absl::MutexLock l(&mu_);
    EnqueueStateLocked(SessionState::kSyncConnected);
  }
  dispatcher_thread_ =
      std::thread([self = shared_from_this()] { self->DispatcherMain(); });
  worker_thread_ = std::thread([this] { WorkerMain(); });
  session_thread_ = std::thread([this] { SessionLoop(); });
  return absl::OkStatus();
}

absl::Status Client::Impl::Close() {
  bool send = false;
  absl::Status result;
  {
    absl::MutexLock l(&mu_);
    if (close_called_) return absl::OkStatus();
    close_called_ = true;
    send = state_ == State::kConnected;
    if (state_ == State::kDisconnected) {
      result = ZkErrorStatus(
          zk::kConnectionLoss,
          "Close: not connected; the session will expire on the server");
    }
  }
  if (send) {
    v1::CloseRequest req;
    v1::CloseResponse resp;
    result = Call("Close", &Stub::Close, req, &resp, Retry::kNo);
    if (result.ok() && resp.header().err() != zk::kOk &&
        resp.header().err() != zk::kSessionExpired) {
      result = ZkErrorStatus(resp.header().err(), "Close");
    }
  }
  {
    absl::MutexLock l(&mu_);
    closing_ = true;
    const bool expired = state_ == State::kExpired;
    state_ = State::kClosed;
    CancelInFlightLocked(/*all=*/true, nullptr);
    if (!expired) EnqueueStateLocked(SessionState::kClosed);
    worker_stop_ = true;
  }
  if (session_thread_.joinable()) session_thread_.join();
  if (worker_thread_.joinable()) worker_thread_.join();
  {
    absl::MutexLock l(&mu_);
    dispatcher_stop_ = true;
  }
  if (dispatcher_thread_.joinable() &&
      dispatcher_thread_.get_id() != std::this_thread::get_id()) {
    dispatcher_thread_.join();
  }
  return result;
}

absl::Status Client::Impl::UnusableErrorLocked(const std::string& what) const {
  return ZkErrorStatus(
      zk::kSessionExpired,
      absl::StrCat(what, state_ == State::kExpired ? ": session expired"
                                                   : ": client closed"));
}

template <typename Req, typename Resp>
absl::Status Client::Impl::Call(
    const std::string& what,
    grpc::Status (Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
    const Req& req, Resp* resp, Retry retry, SeqPos* pos) {
  const absl::Time deadline =
      absl::Now() + absl::Milliseconds(options_.request_timeout_ms);
  grpc::Status last;
  for (int attempt = 0;; ++attempt) {
    std::shared_ptr<Stub> stub;
    int64_t sid = 0;
    uint64_t epoch = 0;
    std::list<InFlight>::iterator token;
    grpc::ClientContext ctx;
    {
      absl::MutexLock l(&mu_);
      auto usable = [this] {
        return closing_ || state_ == State::kConnected || TerminalLocked();
      };
      if (!mu_.AwaitWithDeadline(absl::Condition(&usable), deadline)) {
        return ZkErrorStatus(
            zk::kConnectionLoss,
            absl::StrCat(what, ": not connected within request_timeout_ms",
                         last.ok() ? "" : ": ", last.error_message()));
      }
      if (closing_ || TerminalLocked()) return UnusableErrorLocked(what);
      stub = stub_;
      sid = session_id_;
      epoch = epoch_;
      ctx.set_deadline(absl::ToChronoTime(deadline));
      ctx.set_wait_for_ready(true);
      ctx.AddMetadata(kSessionMetadata, absl::StrCat(sid));
      token = in_flight_.insert(in_flight_.end(), InFlight{&ctx, stub.get()});
    }
    resp->Clear();
    const grpc::Status st = (stub.get()->*method)(&ctx, req, resp);
    bool cancelled_by_us = false;
    {
      absl::MutexLock l(&mu_);
      cancelled_by_us = token->cancelled;
      in_flight_.erase(token);
      if (st.ok()) {
        const v1::ResponseHeader& h = resp->header();
        last_zxid_ = std::max(last_zxid_, h.zxid());
        if (h.err() == zk::kSessionExpired) {
          ExpireLocked();
          return UnusableErrorLocked(what);
        }
        // The ordering promise: the events sent before this response are
        // received (and queued for the dispatcher) before it is returned.
        const uint64_t n = h.event_seq();
        auto caught_up = [this, n, epoch] {
          return last_seq_ >= n || epoch_ != epoch || closing_ ||
                 TerminalLocked();
        };
        mu_.AwaitWithDeadline(
            absl::Condition(&caught_up),
            absl::Now() + absl::Milliseconds(std::max(timeout_ms_, 1)));
        if (pos != nullptr) *pos = SeqPos{hub_gen_, n};
        return absl::OkStatus();
      }
      if (closing_) return UnusableErrorLocked(what);
    }
    last = st;
    const bool lost =
        st.error_code() == grpc::StatusCode::UNAVAILABLE ||
        (st.error_code() == grpc::StatusCode::CANCELLED && cancelled_by_us);
    if (!lost) return FromGrpc(st, what);
    RequestReconnect(epoch);
    if (retry == Retry::kNo || absl::Now() >= deadline || attempt >= 1000) {
      return ZkErrorStatus(zk::kConnectionLoss,
                           absl::StrCat(what, ": ", st.error_message()));
    }
  }
}

void Client::Impl::RequestReconnect(uint64_t epoch) {
  absl::MutexLock l(&mu_);
  if (epoch == epoch_ && state_ == State::kConnected) {
    reconnect_requested_ = true;
  }
}

grpc::Status Client::Impl::Tracked(grpc::ClientContext* ctx, const Stub* stub,
                                   const std::function<grpc::Status()>& rpc) {
  std::list<InFlight>::iterator token;
  {
    absl::MutexLock l(&mu_);
    if (closing_) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "client closed");
    }
    token = in_flight_.insert(in_flight_.end(), InFlight{ctx, stub});
  }
  const grpc::Status st = rpc();
  absl::MutexLock l(&mu_);
  in_flight_.erase(token);
  return st;
}

void Client::Impl::CancelInFlightLocked(bool all, const Stub* keep) {
  for (InFlight& f : in_flight_) {
    if (all || f.stub != keep) {
      f.cancelled = true;
      f.ctx->TryCancel();
    }
  }
}

void Client::Impl::ExpireLocked() {
  if (close_called_ || TerminalLocked()) return;
  state_ = State::kExpired;
  for (auto& table : watches_) table.clear();
  EnqueueStateLocked(SessionState::kExpired);
}

void Client::Impl::EnqueueStateLocked(SessionState s) {
  if (dispatcher_stop_) return;
  DispatchItem item;
  item.to_default = true;
  item.event.type = EventType::kNone;
  item.event.state = s;
  dispatch_.push_back(std::move(item));
}

// --- Watches ------------------------------------------------------------

EntryPtr Client::Impl::AddPendingWatch(Kind kind, const std::string& path,
                                       Watcher fn) {
  auto e = std::make_shared<WatchEntry>();
  e->fn = std::move(fn);
  e->kind = kind;
  e->path = path;
  absl::MutexLock l(&mu_);
  watches_[static_cast<int>(kind)][path].push_back(e);
  return e;
}

void Client::Impl::EraseWatchLocked(const EntryPtr& e) {
  auto& table = watches_[static_cast<int>(e->kind)];
  auto it = table.find(e->path);
  if (it == table.end()) return;
  auto& v = it->second;
  v.erase(std::remove(v.begin(), v.end(), e), v.end());
  if (v.empty()) table.erase(it);
}

void Client::Impl::ResolveWatch(const EntryPtr& e, bool ok, bool exists,
                                SeqPos pos) {
  absl::MutexLock l(&mu_);
  e->pending = false;
  e->ok = ok && !TerminalLocked();
  e->min = pos;
  if (!e->ok) {
    EraseWatchLocked(e);
    e->hits.clear();
    return;
  }
  if (e->kind == Kind::kExist && exists) {  // the server set a data watch
    EraseWatchLocked(e);
    e->kind = Kind::kData;
    watches_[static_cast<int>(Kind::kData)][e->path].push_back(e);
  }
  if (IsOneShot(e->kind)) {
    for (const SeqPos& hit : e->hits) {
      if (After(hit, pos)) {  // an event after the read: it fires the watch
        e->claimed = true;
        e->claim = hit;
        EraseWatchLocked(e);
        break;
      }
    }
  }
  e->hits.clear();
}

void Client::Impl::OnEventLocked(const v1::WatchEvent& ev) {
  if (ev.seq() <= last_seq_) return;  // already received (stream resent it)
  last_seq_ = ev.seq();
  DispatchItem item;
  item.pos = SeqPos{hub_gen_, ev.seq()};
  item.event.type = static_cast<EventType>(static_cast<int>(ev.type()));
  item.event.state = SessionState::kSyncConnected;
  item.event.path = ev.path();
  item.event.zxid = ev.zxid();
  item.event.seq = ev.seq();
  const std::string& path = ev.path();
  // As ZooKeeper's ZKWatchManager.materialize.
  auto take_one_shot = [&](Kind kind) {
    auto& table = watches_[static_cast<int>(kind)];
    auto it = table.find(path);
    if (it == table.end()) return;
    std::vector<EntryPtr>& v = it->second;
    for (auto i = v.begin(); i != v.end();) {
      const EntryPtr& e = *i;
      item.targets.push_back(e);
      if (e->pending) {
        e->hits.push_back(item.pos);
        ++i;
      } else {
        e->claimed = true;
        e->claim = item.pos;
        i = v.erase(i);
      }
    }
    if (v.empty()) table.erase(it);
  };
  auto add_persistent = [&](Kind kind, const std::string& p) {
    auto& table = watches_[static_cast<int>(kind)];
    auto it = table.find(p);
    if (it == table.end()) return;
    for (const EntryPtr& e : it->second) item.targets.push_back(e);
  };
  switch (item.event.type) {
    case EventType::kNodeCreated:
    case EventType::kNodeDataChanged:
      take_one_shot(Kind::kData);
      take_one_shot(Kind::kExist);
      break;
    case EventType::kNodeChildrenChanged:
      take_one_shot(Kind::kChild);
      break;
    case EventType::kNodeDeleted:
      take_one_shot(Kind::kData);
      take_one_shot(Kind::kExist);
      take_one_shot(Kind::kChild);
      break;
    default:
      break;
  }
  add_persistent(Kind::kPersistent, path);
  // Recursive watches see no NodeChildrenChanged (ZooKeeper's rule).
  if (item.event.type != EventType::kNodeChildrenChanged) {
    std::string p = path;
    for (;;) {
      add_persistent(Kind::kRecursive, p);
      if (p == "/" || p.empty()) break;
      const size_t slash = p.rfind('/');
      p = slash == 0 ? "/" : p.substr(0, slash);
    }
  }
  if (!item.targets.empty() && !dispatcher_stop_) {
    dispatch_.push_back(std::move(item));
  }
}

void Client::Impl::CollectWatchesLocked(v1::SetWatchesRequest* req) const {
  auto collect = [&](Kind kind,
                     google::protobuf::RepeatedPtrField<std::string>* out) {
    for (const auto& [path, entries] : watches_[static_cast<int>(kind)]) {
      for (const EntryPtr& e : entries) {
        if (!e->pending && e->ok && !e->removed) {
          *out->Add() = path;
          break;
        }
      }
    }
  };
  collect(Kind::kData, req->mutable_data_watches());
  collect(Kind::kExist, req->mutable_exist_watches());
  collect(Kind::kChild, req->mutable_child_watches());
  collect(Kind::kPersistent, req->mutable_persistent_watches());
  collect(Kind::kRecursive, req->mutable_persistent_recursive_watches());
}

// --- Session thread ---------------------------------------------------------

void Client::Impl::StartStreamLocked() {
  auto s = std::make_shared<Stream>();
  s->started = s->last_heard = absl::Now();
  stream_ = s;
  std::shared_ptr<Stub> stub = stub_;
  const int64_t sid = session_id_;
  const std::string pw = password_;
  s->reader =
      std::thread([this, s, stub, sid, pw] { ReaderMain(s, stub, sid, pw); });
}

void Client::Impl::ReaderMain(const std::shared_ptr<Stream>& s,
                              const std::shared_ptr<Stub>& stub,
                              int64_t session_id, const std::string& password) {
  grpc::ClientReaderWriter<v1::SessionRequest, v1::SessionMessage>* rw;
  {
    absl::MutexLock wl(&s->write_mu);
    s->rw = stub->Session(&s->ctx);
    rw = s->rw.get();
    v1::SessionRequest first;
    first.set_session_id(session_id);
    first.set_password(password);
    rw->Write(first);  // on failure the Read below fails too
  }
  v1::SessionMessage m;
  while (rw->Read(&m)) {
    absl::MutexLock l(&mu_);
    s->last_heard = absl::Now();
    switch (m.message_case()) {
      case v1::SessionMessage::kEvent:
        OnEventLocked(m.event());
        break;
      case v1::SessionMessage::kState:
        if (m.state() == v1::SessionMessage::CONNECTED) {
          s->connected = true;
        } else {
          s->end_state = m.state();
        }
        break;
      default:  // pong
        break;
    }
  }
  grpc::Status st;
  {
    absl::MutexLock wl(&s->write_mu);
    s->finished = true;
    st = rw->Finish();
  }
  absl::MutexLock l(&mu_);
  s->status = st;
  s->done = true;
}

void Client::Impl::SessionLoop() {
  enum class Action { kNone, kStreamEnded, kReconnect, kCancel, kPing, kBeat };
  absl::Time next_ping;
  {
    absl::MutexLock l(&mu_);
    next_ping = absl::Now() + PingIntervalLocked();
  }
  for (;;) {
    Action action = Action::kNone;
    std::shared_ptr<Stream> s;
    {
      absl::MutexLock l(&mu_);
      if (closing_ || TerminalLocked()) break;
      if (stream_ == nullptr && !stream_unavailable_ && !close_called_ &&
          state_ == State::kConnected) {
        StartStreamLocked();
      }
      auto wake = [this] {
        return closing_ || TerminalLocked() || reconnect_requested_ ||
               (stream_ != nullptr && stream_->done);
      };
      mu_.AwaitWithDeadline(absl::Condition(&wake), next_ping);
      if (closing_ || TerminalLocked()) break;
      const absl::Time now = absl::Now();
      if (stream_ != nullptr && stream_->done) {
        s = std::move(stream_);
        action = Action::kStreamEnded;
      } else if (reconnect_requested_) {
        reconnect_requested_ = false;
        s = std::move(stream_);
        action = Action::kReconnect;
      } else if (now >= next_ping) {
        next_ping = now + PingIntervalLocked();
        if (pings_paused_ || close_called_ || state_ != State::kConnected) {
          action = Action::kNone;
        } else if (stream_ != nullptr) {
          const absl::Time heard =
              stream_->connected ? stream_->last_heard : stream_->started;
          s = stream_;
          // ZooKeeper's read timeout: nothing heard for 2/3 of the session
          // timeout means the server is gone.
          action = now - heard > ReadTimeoutLocked()
                       ? Action::kCancel
                       : (stream_->connected ? Action::kPing : Action::kNone);
        } else {
          action = Action::kBeat;
        }
      }
    }
    switch (action) {
      case Action::kNone:
        break;
      case Action::kStreamEnded:
        s->reader.join();
        HandleStreamEnd(s.get());
        break;
      case Action::kReconnect:
        if (s != nullptr) {
          s->ctx.TryCancel();
          s->reader.join();
        }
        Reconnect();
        break;
      case Action::kCancel:
        s->ctx.TryCancel();  // the reader ends; handled as kStreamEnded
        break;
      case Action::kPing: {
        v1::SessionRequest ping;
        ping.set_ping(true);
        absl::MutexLock wl(&s->write_mu);
        if (!s->finished && s->rw != nullptr) s->rw->Write(ping);
        break;
      }
      case Action::kBeat:
        Heartbeat();
        break;
    }
    if (action == Action::kStreamEnded || action == Action::kReconnect) {
      absl::MutexLock l(&mu_);
      next_ping = absl::Now() + PingIntervalLocked();
    }
  }
  std::shared_ptr<Stream> s;
  {
    absl::MutexLock l(&mu_);
    s = std::move(stream_);
  }
  if (s != nullptr) {
    s->ctx.TryCancel();
    s->reader.join();
  }
}

void Client::Impl::HandleStreamEnd(Stream* s) {
  {
    absl::MutexLock l(&mu_);
    if (closing_ || TerminalLocked()) return;
    switch (s->end_state) {
      case v1::SessionMessage::EXPIRED:
        ExpireLocked();
        return;
      case v1::SessionMessage::CLOSED:
        if (!close_called_) ExpireLocked();  // closed by someone else
        return;
      case v1::SessionMessage::REPLACED:
        // Another client resumed this session and took its events; keep
        // the session alive with Heartbeat until the next reconnect.
        stream_unavailable_ = true;
        return;
      default:
        break;
    }
    if (s->status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      stream_unavailable_ = true;  // an older server: Heartbeat instead
      return;
    }
    if (close_called_) return;
  }
  Reconnect();
}

void Client::Impl::Heartbeat() {
  std::shared_ptr<Stub> stub;
  uint64_t epoch;
  grpc::ClientContext ctx;
  {
    absl::MutexLock l(&mu_);
    stub = stub_;
    epoch = epoch_;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + ReadTimeoutLocked()));
    ctx.AddMetadata(kSessionMetadata, absl::StrCat(session_id_));
  }
  v1::HeartbeatRequest req;
  v1::HeartbeatResponse resp;
  const grpc::Status st = Tracked(
      &ctx, stub.get(), [&] { return stub->Heartbeat(&ctx, req, &resp); });
  absl::MutexLock l(&mu_);
  if (st.ok()) {
    last_zxid_ = std::max(last_zxid_, resp.header().zxid());
    if (resp.header().err() == zk::kSessionExpired) ExpireLocked();
  } else if (epoch == epoch_ && state_ == State::kConnected) {
    reconnect_requested_ = true;
  }
}

void Client::Impl::Reconnect() {
  size_t start;
  {
    absl::MutexLock l(&mu_);
    if (state_ == State::kConnected) {
      state_ = State::kDisconnected;
      EnqueueStateLocked(SessionState::kDisconnected);
    }
    start = server_index_;
  }
  const absl::Duration max_backoff =
      absl::Milliseconds(std::max(options_.reconnect_backoff_max_ms, 1));
  absl::Duration backoff =
      absl::Milliseconds(std::max(options_.reconnect_backoff_initial_ms, 1));
  for (uint64_t attempt = 0;; ++attempt) {
    v1::ConnectRequest req;
    {
      absl::MutexLock l(&mu_);
      if (closing_ || TerminalLocked()) return;
      req.set_timeout_ms(timeout_ms_);
      req.set_session_id(session_id_);
      req.set_password(password_);
      req.set_last_zxid_seen(last_zxid_);
    }
    // The next server first, as ZooKeeper's client.
    const size_t idx = (start + 1 + attempt) % servers_.size();
    std::shared_ptr<Stub> stub = NewStub(idx);
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(
        absl::Now() + absl::Milliseconds(options_.connect_timeout_ms)));
    v1::ConnectResponse resp;
    const grpc::Status st = Tracked(
        &ctx, stub.get(), [&] { return stub->Connect(&ctx, req, &resp); });
    if (st.ok() && resp.header().err() == zk::kSessionExpired) {
      absl::MutexLock l(&mu_);
      ExpireLocked();
      return;
    }
    if (st.ok() && resp.header().err() == zk::kOk &&
        FinishResume(idx, stub, resp)) {
      return;
    }
    absl::MutexLock l(&mu_);
    auto stop = [this] { return closing_ || TerminalLocked(); };
    mu_.AwaitWithTimeout(absl::Condition(&stop), backoff);
    backoff = std::min(backoff * 2, max_backoff);
  }
}

bool Client::Impl::FinishResume(size_t idx, const std::shared_ptr<Stub>& stub,
                                const v1::ConnectResponse& resp) {
  std::vector<std::pair<std::string, std::string>> auths;
  v1::SetWatchesRequest set_watches;
  int64_t sid;
  {
    absl::MutexLock l(&mu_);
    if (closing_ || TerminalLocked()) return true;
    if (resp.timeout_ms() > 0) timeout_ms_ = resp.timeout_ms();
    last_zxid_ = std::max(last_zxid_, resp.header().zxid());
    if (resp.header().event_seq() < last_seq_) {
      // This server does not have the session's event queue (it
      // restarted): its seqs start from 1 again.
      ++hub_gen_;
      last_seq_ = 0;
    }
    auths = auths_;
    CollectWatchesLocked(&set_watches);
    set_watches.set_relative_zxid(last_zxid_);
    sid = session_id_;
  }
  auto context = [&](grpc::ClientContext* ctx) {
    ctx->set_deadline(absl::ToChronoTime(
        absl::Now() + absl::Milliseconds(options_.request_timeout_ms)));
    ctx->AddMetadata(kSessionMetadata, absl::StrCat(sid));
  };
  for (const auto& [scheme, auth] : auths) {
    grpc::ClientContext ctx;
    context(&ctx);
    v1::AddAuthRequest req;
    req.set_scheme(scheme);
    req.set_auth(auth);
    v1::AddAuthResponse resp;
    if (!Tracked(&ctx, stub.get(), [&] {
           return stub->AddAuth(&ctx, req, &resp);
         }).ok()) {
      return false;
    }
  }
  const bool any_watch = set_watches.data_watches_size() +
                             set_watches.exist_watches_size() +
                             set_watches.child_watches_size() +
                             set_watches.persistent_watches_size() +
                             set_watches.persistent_recursive_watches_size() >
                         0;
  if (any_watch) {
    grpc::ClientContext ctx;
    context(&ctx);
    v1::SetWatchesResponse resp;
    const grpc::Status st = Tracked(&ctx, stub.get(), [&] {
      return stub->SetWatches(&ctx, set_watches, &resp);
    });
    if (!st.ok() && st.error_code() != grpc::StatusCode::UNIMPLEMENTED) {
      return false;
    }
    if (st.ok() && resp.header().err() == zk::kSessionExpired) {
      absl::MutexLock l(&mu_);
      ExpireLocked();
      return true;
    }
  }
  absl::MutexLock l(&mu_);
  if (closing_ || TerminalLocked()) return true;
  // Calls still waiting on the previous connection: reads are retried on
  // this one, writes fail with CONNECTIONLOSS.
  CancelInFlightLocked(/*all=*/false, stub.get());
  stub_ = stub;
  server_index_ = idx;
  ++epoch_;
  state_ = State::kConnected;
  stream_unavailable_ = false;
  EnqueueStateLocked(SessionState::kSyncConnected);
  return true;
}

// --- Dispatcher and worker --------------------------------------------------

void Client::Impl::DispatcherMain() {
  for (;;) {
    DispatchItem item;
    {
      absl::MutexLock l(&mu_);
      auto ready = [this] { return !dispatch_.empty() || dispatcher_stop_; };
      mu_.Await(absl::Condition(&ready));
      if (dispatch_.empty()) return;
      item = std::move(dispatch_.front());
      dispatch_.pop_front();
    }
    if (item.task) {
      item.task();
      continue;
    }
    if (item.to_default) {
      if (options_.default_watcher) options_.default_watcher(item.event);
      continue;
    }
    for (const EntryPtr& e : item.targets) {
      bool fire = false;
      {
        absl::MutexLock l(&mu_);
        // A watcher whose read is still in flight: its response decides.
        auto resolved = [&e, this] { return !e->pending || dispatcher_stop_; };
        mu_.Await(absl::Condition(&resolved));
        if (!e->pending && e->ok && !e->removed) {
          fire = IsOneShot(e->kind)
                     ? e->claimed && e->claim.gen == item.pos.gen &&
                           e->claim.seq == item.pos.seq
                     : After(item.pos, e->min);
        }
      }
      if (fire) e->fn(item.event);
    }
  }
}

void Client::Impl::WorkerMain() {
  for (;;) {
    std::function<void()> task;
    {
      absl::MutexLock l(&mu_);
      auto ready = [this] { return !work_.empty() || worker_stop_; };
      mu_.Await(absl::Condition(&ready));
      if (work_.empty()) return;
      task = std::move(work_.front());
      work_.pop_front();
    }
    task();
  }
}

void Client::Impl::Enqueue(std::function<void()> task) {
  {
    absl::MutexLock l(&mu_);
    if (!worker_stop_) {
      work_.push_back(std::move(task));
      return;
    }
  }
  task();  // closed: fails fast on the caller's thread
}

void Client::Impl::Post(std::function<void()> task) {
  {
    absl::MutexLock l(&mu_);
    if (!dispatcher_stop_) {
      DispatchItem item;
      item.task = std::move(task);
      dispatch_.push_back(std::move(item));
      return;
    }
  }
  task();
}

// --- Operations
// ---------------------------------------------------------------

absl::StatusOr<CreateResult> Client::Impl::Create(const std::string& path,
                                                  const std::string& data,
                                                  const std::vector<Acl>& acl,
                                                  CreateMode mode,
                                                  int64_t ttl_ms,
                                                  bool data_null) {
  v1::CreateRequest req;
  FillCreate(path, data, acl, mode, ttl_ms, &req);
  req.set_data_null(data_null);
  v1::CreateResponse resp;
  absl::Status st =
      Call("Create " + path, &Stub::Create, req, &resp, Retry::kNo);
  if (!st.ok()) return st;
  if (resp.header().err() != zk::kOk) {
    return ZkErrorStatus(resp.header().err(), path);
  }
  return CreateResult{resp.path(), FromApi(resp.stat())};
}

absl::Status Client::Impl::Delete(const std::string& path, int32_t version) {
  v1::DeleteRequest req;
  req.set_path(path);
  if (version != -1) req.set_version(version);
  v1::DeleteResponse resp;
  absl::Status st =
      Call("Delete " + path, &Stub::Delete, req, &resp, Retry::kNo);
  if (!st.ok()) return st;
  return ZkErrorStatus(resp.header().err(), path);
}

absl::StatusOr<Stat> Client::Impl::SetData(const std::string& path,
                                           const std::string& data,
                                           int32_t version) {
  v1::SetDataRequest req;
  req.set_path(path);
  req.set_data(data);
  if (version != -1) req.set_version(version);
  v1::SetDataResponse resp;
  absl::Status st =
      Call("SetData " + path, &Stub::SetData, req, &resp, Retry::kNo);
  if (!st.ok()) return st;
  if (resp.header().err() != zk::kOk) {
    return ZkErrorStatus(resp.header().err(), path);
  }
  return FromApi(resp.stat());
}

absl::StatusOr<Stat> Client::Impl::SetAcl(const std::string& path,
                                          const std::vector<Acl>& acl,
                                          int32_t aversion) {
  v1::SetAclRequest req;
  req.set_path(path);
  ToApi(acl, req.mutable_acl());
  if (aversion != -1) req.set_version(aversion);
  v1::SetAclResponse resp;
  absl::Status st =
      Call("SetAcl " + path, &Stub::SetAcl, req, &resp, Retry::kNo);
  if (!st.ok()) return st;
  if (resp.header().err() != zk::kOk) {
    return ZkErrorStatus(resp.header().err(), path);
  }
  return FromApi(resp.stat());
}

MultiResult Client::Impl::Multi(const std::vector<Op>& ops) {
  MultiResult out;
  v1::MultiRequest req;
  for (const Op& op : ops) {
    v1::MultiRequest::Op* o = req.add_ops();
    switch (op.type) {
      case Op::Type::kCreate:
        FillCreate(op.path, op.data, op.acl, op.mode, op.ttl_ms,
                   o->mutable_create());
        o->mutable_create()->set_data_null(op.data_null);
        break;
      case Op::Type::kDelete:
        o->mutable_delete_()->set_path(op.path);
        if (op.version != -1) o->mutable_delete_()->set_version(op.version);
        break;
      case Op::Type::kSetData:
        o->mutable_set_data()->set_path(op.path);
        o->mutable_set_data()->set_data(op.data);
        o->mutable_set_data()->set_data_null(op.data_null);
        if (op.version != -1) o->mutable_set_data()->set_version(op.version);
        break;
      case Op::Type::kCheck:
        o->mutable_check()->set_path(op.path);
        if (op.version != -1) o->mutable_check()->set_version(op.version);
        break;
    }
  }
  v1::MultiResponse resp;
  out.status = Call("Multi", &Stub::Multi, req, &resp, Retry::kNo);
  if (!out.status.ok()) return out;
  for (int i = 0; i < resp.results_size(); ++i) {
    const auto& r = resp.results(i);
    OpResult res;
    const std::string path =
        static_cast<size_t>(i) < ops.size() ? ops[i].path : "";
    if (static_cast<size_t>(i) < ops.size()) res.type = ops[i].type;
    res.err = r.err();
    res.status = ZkErrorStatus(r.err(), path);
    res.path = r.path();
    res.stat = FromApi(r.stat());
    out.results.push_back(std::move(res));
  }
  const int32_t err = resp.header().err();
  if (err != zk::kOk) {
    std::string detail = "multi";
    for (size_t i = 0; i < out.results.size(); ++i) {
      if (out.results[i].err == err && i < ops.size()) {
        detail = absl::StrCat(ops[i].path, " (multi op ", i, ")");
        break;
      }
    }
    out.status = ZkErrorStatus(err, detail);
  }
  return out;
}

absl::StatusOr<std::optional<Stat>> Client::Impl::Exists(
    const std::string& path, Watcher watcher) {
  v1::ExistsRequest req;
  req.set_path(path);
  req.set_watch(watcher != nullptr);
  EntryPtr e = watcher ? AddPendingWatch(Kind::kExist, path, std::move(watcher))
                       : nullptr;
  v1::ExistsResponse resp;
  SeqPos pos;
  absl::Status st =
      Call("Exists " + path, &Stub::Exists, req, &resp, Retry::kYes, &pos);
  const int32_t err = st.ok() ? resp.header().err() : zk::kConnectionLoss;
  if (e != nullptr) {
    ResolveWatch(e, err == zk::kOk || err == zk::kNoNode, err == zk::kOk, pos);
  }
  if (!st.ok()) return st;
  if (err == zk::kNoNode) return std::optional<Stat>();
  if (err != zk::kOk) return ZkErrorStatus(err, path);
  return std::optional<Stat>(FromApi(resp.stat()));
}

absl::StatusOr<DataResult> Client::Impl::GetData(const std::string& path,
                                                 Watcher watcher) {
  v1::GetDataRequest req;
  req.set_path(path);
  req.set_watch(watcher != nullptr);
  EntryPtr e = watcher ? AddPendingWatch(Kind::kData, path, std::move(watcher))
                       : nullptr;
  v1::GetDataResponse resp;
  SeqPos pos;
  absl::Status st =
      Call("GetData " + path, &Stub::GetData, req, &resp, Retry::kYes, &pos);
  const int32_t err = st.ok() ? resp.header().err() : zk::kConnectionLoss;
  if (e != nullptr) ResolveWatch(e, err == zk::kOk, true, pos);
  if (!st.ok()) return st;
  if (err != zk::kOk) return ZkErrorStatus(err, path);
  return DataResult{resp.data(), FromApi(resp.stat()), resp.data_null()};
}

absl::StatusOr<ChildrenResult> Client::Impl::GetChildren(
    const std::string& path, Watcher watcher) {
  v1::GetChildrenRequest req;
  req.set_path(path);
  req.set_watch(watcher != nullptr);
  EntryPtr e = watcher ? AddPendingWatch(Kind::kChild, path, std::move(watcher))
                       : nullptr;
  v1::GetChildrenResponse resp;
  SeqPos pos;
  absl::Status st = Call("GetChildren " + path, &Stub::GetChildren, req, &resp,
                         Retry::kYes, &pos);
  const int32_t err = st.ok() ? resp.header().err() : zk::kConnectionLoss;
  if (e != nullptr) ResolveWatch(e, err == zk::kOk, true, pos);
  if (!st.ok()) return st;
  if (err != zk::kOk) return ZkErrorStatus(err, path);
  ChildrenResult out;
  out.children.assign(resp.children().begin(), resp.children().end());
  out.stat = FromApi(resp.stat());
  return out;
}

absl::StatusOr<AclResult> Client::Impl::GetAcl(const std::string& path) {
  v1::GetAclRequest req;
  req.set_path(path);
  v1::GetAclResponse resp;
  absl::Status st =
      Call("GetAcl " + path, &Stub::GetAcl, req, &resp, Retry::kYes);
  if (!st.ok()) return st;
  if (resp.header().err() != zk::kOk) {
    return ZkErrorStatus(resp.header().err(), path);
  }
  AclResult out;
  for (const v1::Acl& a : resp.acl()) {
    out.acl.push_back(Acl{a.perms(), a.scheme(), a.id()});
  }
  out.stat = FromApi(resp.stat());
  return out;
}

absl::StatusOr<std::vector<ReadOpResult>> Client::Impl::MultiRead(
    const std::vector<ReadOp>& ops) {
  v1::MultiReadRequest req;
  for (const ReadOp& op : ops) {
    v1::MultiReadRequest::Op* o = req.add_ops();
    if (op.type == ReadOp::Type::kGetData) {
      o->mutable_get_data()->set_path(op.path);
    } else {
      o->mutable_get_children()->set_path(op.path);
    }
  }
  v1::MultiReadResponse resp;
  absl::Status st =
      Call("MultiRead", &Stub::MultiRead, req, &resp, Retry::kYes);
  if (!st.ok()) return st;
  if (resp.header().err() != zk::kOk) {
    return ZkErrorStatus(resp.header().err(), "MultiRead");
  }
  std::vector<ReadOpResult> out;
  for (int i = 0;
       i < resp.results_size() && static_cast<size_t>(i) < ops.size(); ++i) {
    const auto& r = resp.results(i);
    ReadOpResult res;
    res.type = ops[i].type;
    res.err = r.err();
    res.status = ZkErrorStatus(r.err(), ops[i].path);
    res.data = r.data();
    res.data_null = r.data_null();
    res.children.assign(r.children().begin(), r.children().end());
    res.stat = FromApi(r.stat());
    out.push_back(std::move(res));
  }
  return out;
}

absl::Status Client::Impl::Sync(const std::string& path) {
  v1::SyncRequest req;
  req.set_path(path);
  v1::SyncResponse resp;
  absl::Status st = Call("Sync " + path, &Stub::Sync, req, &resp, Retry::kYes);
  if (!st.ok()) return st;
  return ZkErrorStatus(resp.header().err(), path);
}

absl::StatusOr<std::vector<std::string>> Client::Impl::GetEphemerals(
    const std::string& prefix) {
  v1::GetEphemeralsRequest req;
  req.set_prefix_path(prefix);
  v1::GetEphemeralsResponse resp;
  absl::Status st = Call("GetEphemerals " + prefix, &Stub::GetEphemerals, req,
                         &resp, Retry::kYes);
  if (!st.ok()) return st;
  if (resp.header().err() != zk::kOk) {
    return ZkErrorStatus(resp.header().err(), prefix);
  }
  return std::vector<std::string>(resp.paths().begin(), resp.paths().end());
}

absl::StatusOr<int32_t> Client::Impl::GetAllChildrenNumber(
    const std::string& path) {
  v1::GetAllChildrenNumberRequest req;
  req.set_path(path);
  v1::GetAllChildrenNumberResponse resp;
  absl::Status st = Call("GetAllChildrenNumber " + path,
                         &Stub::GetAllChildrenNumber, req, &resp, Retry::kYes);
  if (!st.ok()) return st;
  if (resp.header().err() != zk::kOk) {
    return ZkErrorStatus(resp.header().err(), path);
  }
  return resp.total_number();
}

absl::Status Client::Impl::AddAuth(const std::string& scheme,
                                   const std::string& auth) {
  v1::AddAuthRequest req;
  req.set_scheme(scheme);
  req.set_auth(auth);
  v1::AddAuthResponse resp;
  absl::Status st =
      Call("AddAuth " + scheme, &Stub::AddAuth, req, &resp, Retry::kYes);
  if (!st.ok()) return st;
  if (resp.header().err() != zk::kOk) {
    return ZkErrorStatus(resp.header().err(), "AddAuth " + scheme);
  }
  absl::MutexLock l(&mu_);
  auths_.emplace_back(scheme, auth);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AuthInfo>> Client::Impl::WhoAmI() {
  v1::WhoAmIRequest req;
  v1::WhoAmIResponse resp;
  absl::Status st = Call("WhoAmI", &Stub::WhoAmI, req, &resp, Retry::kYes);
  if (!st.ok()) return st;
  if (resp.header().err() != zk::kOk) {
    return ZkErrorStatus(resp.header().err(), "WhoAmI");
  }
  std::vector<AuthInfo> out;
  for (const auto& c : resp.client_info()) {
    out.push_back(AuthInfo{c.auth_scheme(), c.user()});
  }
  return out;
}

absl::Status Client::Impl::AddWatch(const std::string& path, AddWatchMode mode,
                                    Watcher watcher) {
  if (!watcher) watcher = options_.default_watcher;
  if (!watcher) {
    return ZkErrorStatus(zk::kBadArguments,
                         "AddWatch " + path + ": no watcher and no default");
  }
  v1::AddWatchRequest req;
  req.set_path(path);
  req.set_mode(mode == AddWatchMode::kPersistentRecursive
                   ? v1::PERSISTENT_RECURSIVE_WATCH
                   : v1::PERSISTENT_WATCH);
  EntryPtr e = AddPendingWatch(mode == AddWatchMode::kPersistentRecursive
                                   ? Kind::kRecursive
                                   : Kind::kPersistent,
                               path, std::move(watcher));
  v1::AddWatchResponse resp;
  SeqPos pos;
  absl::Status st =
      Call("AddWatch " + path, &Stub::AddWatch, req, &resp, Retry::kYes, &pos);
  const int32_t err = st.ok() ? resp.header().err() : zk::kConnectionLoss;
  ResolveWatch(e, err == zk::kOk, true, pos);
  if (!st.ok()) return st;
  return ZkErrorStatus(err, path);
}

absl::Status Client::Impl::RemoveWatches(const std::string& path,
                                         WatcherType type) {
  std::vector<Kind> kinds;
  v1::WatcherType api_type = v1::WATCHER_ANY;
  switch (type) {
    case WatcherType::kChildren:
      kinds = {Kind::kChild};
      api_type = v1::WATCHER_CHILDREN;
      break;
    case WatcherType::kData:
      kinds = {Kind::kData, Kind::kExist};
      api_type = v1::WATCHER_DATA;
      break;
    case WatcherType::kAny:
      kinds = {Kind::kData, Kind::kExist, Kind::kChild, Kind::kPersistent,
               Kind::kRecursive};
      api_type = v1::WATCHER_ANY;
      break;
    case WatcherType::kPersistent:
      kinds = {Kind::kPersistent};
      api_type = v1::WATCHER_PERSISTENT;
      break;
    case WatcherType::kPersistentRecursive:
      kinds = {Kind::kRecursive};
      api_type = v1::WATCHER_PERSISTENT_RECURSIVE;
      break;
  }
  v1::RemoveWatchesRequest req;
  req.set_path(path);
  req.set_type(api_type);
  v1::RemoveWatchesResponse resp;
  absl::Status st = Call("RemoveWatches " + path, &Stub::RemoveWatches, req,
                         &resp, Retry::kYes);
  if (!st.ok()) return st;
  const int32_t err = resp.header().err();
  if (err != zk::kOk && err != zk::kNoWatcher) return ZkErrorStatus(err, path);
  // The server no longer fires them: drop them here too and tell them.
  bool removed_any = false;
  absl::MutexLock l(&mu_);
  for (Kind kind : kinds) {
    auto& table = watches_[static_cast<int>(kind)];
    auto it = table.find(path);
    if (it == table.end()) continue;
    for (const EntryPtr& e : it->second) {
      if (e->pending) continue;
      e->removed = true;
      removed_any = true;
      WatchEvent ev;
      ev.type = kind == Kind::kChild ? EventType::kChildWatchRemoved
                : IsOneShot(kind)    ? EventType::kDataWatchRemoved
                                     : EventType::kPersistentWatchRemoved;
      ev.path = path;
      if (!dispatcher_stop_) {
        DispatchItem item;
        item.task = [fn = e->fn, ev] { fn(ev); };
        dispatch_.push_back(std::move(item));
      }
    }
    auto& v = it->second;
    v.erase(std::remove_if(v.begin(), v.end(),
                           [](const EntryPtr& e) { return e->removed; }),
            v.end());
    if (v.empty()) table.erase(it);
  }
  if (err == zk::kOk || removed_any) return absl::OkStatus();
  return ZkErrorStatus(zk::kNoWatcher, path);
}

// --- Client
// -------------------------------------------------------------------

namespace {

// "h1:p1,h2:p2" entries -> trimmed, non-empty targets.
absl::StatusOr<std::vector<std::string>> ParseServers(
    const std::vector<std::string>& entries) {
  std::vector<std::string> out;
  for (const std::string& entry : entries) {
    for (absl::string_view part : absl::StrSplit(entry, ',')) {
      part = absl::StripAsciiWhitespace(part);
      if (part.empty()) continue;
      if (part.find('/') != absl::string_view::npos) {
        return ZkErrorStatus(
            zk::kBadArguments,
            absl::StrCat("server \"", part, "\": chroot is not supported"));
      }
      if (part.rfind(':') == absl::string_view::npos) {
        return ZkErrorStatus(
            zk::kBadArguments,
            absl::StrCat("server \"", part, "\": expected host:port"));
      }
      out.emplace_back(part);
    }
  }
  if (out.empty()) {
    return ZkErrorStatus(zk::kBadArguments, "ClientOptions.servers is empty");
  }
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(
    const ClientOptions& options) {
  absl::StatusOr<std::vector<std::string>> servers =
      ParseServers(options.servers);
  if (!servers.ok()) return servers.status();
  if (options.session_timeout_ms <= 0 || options.connect_timeout_ms <= 0 ||
      options.request_timeout_ms <= 0) {
    return ZkErrorStatus(zk::kBadArguments,
                         "timeouts in ClientOptions must be positive");
  }
  if (options.shuffle_servers) {
    std::shuffle(servers->begin(), servers->end(),
                 std::mt19937(std::random_device()()));
  }
  auto impl = std::make_shared<Impl>(options, *std::move(servers));
  absl::Status st = impl->Start();
  if (!st.ok()) return st;
  return std::make_unique<Client>(Key(), std::move(impl));
}

Client::Client(Key, std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Client::~Client() {
  impl_->Close().IgnoreError();
  impl_.reset();  // may outlive us on the dispatcher thread (see ~Impl)
}

int64_t Client::session_id() const { return impl_->session_id(); }
std::string Client::session_password() const {
  return impl_->session_password();
}
int32_t Client::session_timeout_ms() const {
  return impl_->session_timeout_ms();
}
SessionState Client::state() const { return impl_->state(); }
int64_t Client::last_zxid_seen() const { return impl_->last_zxid_seen(); }
std::string Client::current_server() const { return impl_->current_server(); }

absl::StatusOr<CreateResult> Client::Create(const std::string& path,
                                            const std::string& data,
                                            const std::vector<Acl>& acl,
                                            CreateMode mode, int64_t ttl_ms,
                                            bool data_null) {
  return impl_->Create(path, data, acl, mode, ttl_ms, data_null);
}
absl::Status Client::Delete(const std::string& path, int32_t version) {
  return impl_->Delete(path, version);
}
absl::StatusOr<Stat> Client::SetData(const std::string& path,
                                     const std::string& data, int32_t version) {
  return impl_->SetData(path, data, version);
}
absl::StatusOr<Stat> Client::SetAcl(const std::string& path,
                                    const std::vector<Acl>& acl,
                                    int32_t aversion) {
  return impl_->SetAcl(path, acl, aversion);
}
MultiResult Client::Multi(const std::vector<Op>& ops) {
  return impl_->Multi(ops);
}
absl::StatusOr<std::optional<Stat>> Client::Exists(const std::string& path,
                                                   Watcher watcher) {
  return impl_->Exists(path, std::move(watcher));
}
absl::StatusOr<DataResult> Client::GetData(const std::string& path,
                                           Watcher watcher) {
  return impl_->GetData(path, std::move(watcher));
}
absl::StatusOr<ChildrenResult> Client::GetChildren(const std::string& path,
                                                   Watcher watcher) {
  return impl_->GetChildren(path, std::move(watcher));
}
absl::StatusOr<AclResult> Client::GetAcl(const std::string& path) {
  return impl_->GetAcl(path);
}
absl::StatusOr<std::vector<ReadOpResult>> Client::MultiRead(
    const std::vector<ReadOp>& ops) {
  return impl_->MultiRead(ops);
}
absl::Status Client::Sync(const std::string& path) { return impl_->Sync(path); }
absl::StatusOr<std::vector<std::string>> Client::GetEphemerals(
    const std::string& prefix) {
  return impl_->GetEphemerals(prefix);
}
absl::StatusOr<int32_t> Client::GetAllChildrenNumber(const std::string& path) {
  return impl_->GetAllChildrenNumber(path);
}
absl::Status Client::AddAuth(const std::string& scheme,
                             const std::string& auth) {
  return impl_->AddAuth(scheme, auth);
}
absl::StatusOr<std::vector<AuthInfo>> Client::WhoAmI() {
  return impl_->WhoAmI();
}
absl::Status Client::AddWatch(const std::string& path, AddWatchMode mode,
                              Watcher watcher) {
  return impl_->AddWatch(path, mode, std::move(watcher));
}
absl::Status Client::RemoveWatches(const std::string& path, WatcherType type) {
  return impl_->RemoveWatches(path, type);
}
absl::Status Client::Close() { return impl_->Close(); }
void Client::PausePingsForTesting(bool paused) { impl_->PausePings(paused); }

// Async: the calls capture the Impl pointer; the worker thread that runs
// them is joined before the Impl is destroyed.

std::future<absl::StatusOr<CreateResult>> Client::CreateAsync(
    const std::string& path, const std::string& data,
    const std::vector<Acl>& acl, CreateMode mode, int64_t ttl_ms) {
  Impl* impl = impl_.get();
  return impl_->Submit<absl::StatusOr<CreateResult>>(
      [impl, path, data, acl, mode, ttl_ms] {
        return impl->Create(path, data, acl, mode, ttl_ms);
      });
}
std::future<absl::Status> Client::DeleteAsync(const std::string& path,
                                              int32_t version) {
  Impl* impl = impl_.get();
  return impl_->Submit<absl::Status>(
      [impl, path, version] { return impl->Delete(path, version); });
}
std::future<absl::StatusOr<Stat>> Client::SetDataAsync(const std::string& path,
                                                       const std::string& data,
                                                       int32_t version) {
  Impl* impl = impl_.get();
  return impl_->Submit<absl::StatusOr<Stat>>([impl, path, data, version] {
    return impl->SetData(path, data, version);
  });
}
std::future<absl::StatusOr<std::optional<Stat>>> Client::ExistsAsync(
    const std::string& path, Watcher watcher) {
  Impl* impl = impl_.get();
  return impl_->Submit<absl::StatusOr<std::optional<Stat>>>(
      [impl, path, watcher] { return impl->Exists(path, watcher); });
}
std::future<absl::StatusOr<DataResult>> Client::GetDataAsync(
    const std::string& path, Watcher watcher) {
  Impl* impl = impl_.get();
  return impl_->Submit<absl::StatusOr<DataResult>>(
      [impl, path, watcher] { return impl->GetData(path, watcher); });
}
std::future<absl::StatusOr<ChildrenResult>> Client::GetChildrenAsync(
    const std::string& path, Watcher watcher) {
  Impl* impl = impl_.get();
  return impl_->Submit<absl::StatusOr<ChildrenResult>>(
      [impl, path, watcher] { return impl->GetChildren(path, watcher); });
}
std::future<MultiResult> Client::MultiAsync(const std::vector<Op>& ops) {
  Impl* impl = impl_.get();
  return impl_->Submit<MultiResult>([impl, ops] { return impl->Multi(ops); });
}

void Client::CreateAsync(const std::string& path, const std::string& data,
                         const std::vector<Acl>& acl, CreateMode mode,
                         int64_t ttl_ms, Callback<CreateResult> done) {
  Impl* impl = impl_.get();
  impl_->SubmitWithCallback<absl::StatusOr<CreateResult>>(
      [impl, path, data, acl, mode, ttl_ms] {
        return impl->Create(path, data, acl, mode, ttl_ms);
      },
      std::move(done));
}
void Client::DeleteAsync(const std::string& path, int32_t version,
                         StatusCallback done) {
  Impl* impl = impl_.get();
  impl_->SubmitWithCallback<absl::Status>(
      [impl, path, version] { return impl->Delete(path, version); },
      std::move(done));
}
void Client::SetDataAsync(const std::string& path, const std::string& data,
                          int32_t version, Callback<Stat> done) {
  Impl* impl = impl_.get();
  impl_->SubmitWithCallback<absl::StatusOr<Stat>>(
      [impl, path, data, version] {
        return impl->SetData(path, data, version);
      },
      std::move(done));
}
void Client::ExistsAsync(const std::string& path, Watcher watcher,
                         Callback<std::optional<Stat>> done) {
  Impl* impl = impl_.get();
  impl_->SubmitWithCallback<absl::StatusOr<std::optional<Stat>>>(
      [impl, path, watcher] { return impl->Exists(path, watcher); },
      std::move(done));
}
void Client::GetDataAsync(const std::string& path, Watcher watcher,
                          Callback<DataResult> done) {
  Impl* impl = impl_.get();
  impl_->SubmitWithCallback<absl::StatusOr<DataResult>>(
      [impl, path, watcher] { return impl->GetData(path, watcher); },
      std::move(done));
}
void Client::GetChildrenAsync(const std::string& path, Watcher watcher,
                              Callback<ChildrenResult> done) {
  Impl* impl = impl_.get();
  impl_->SubmitWithCallback<absl::StatusOr<ChildrenResult>>(
      [impl, path, watcher] { return impl->GetChildren(path, watcher); },
      std::move(done));
}
void Client::MultiAsync(const std::vector<Op>& ops, MultiCallback done) {
  Impl* impl = impl_.get();
  impl_->SubmitWithCallback<MultiResult>(
      [impl, ops] { return impl->Multi(ops); }, std::move(done));
}

}  // namespace rockeeper::client
