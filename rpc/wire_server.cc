#include "rpc/wire_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <functional>
#include <type_traits>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "grpcpp/grpcpp.h"
#include "rockeeper/v1/rockeeper.grpc.pb.h"
#include "rpc/jute.h"

namespace rockeeper::rpc {
namespace {

// ZooKeeper opcodes (ZooDefs.OpCode).
enum Op : int32_t {
  kCreate = 1,
  kDelete = 2,
  kExists = 3,
  kGetData = 4,
  kSetData = 5,
  kGetAcl = 6,
  kSetAcl = 7,
  kGetChildren = 8,
  kSync = 9,
  kPing = 11,
  kGetChildren2 = 12,
  kCheck = 13,
  kMulti = 14,
  kCreate2 = 15,
  kCheckWatches = 17,
  kRemoveWatches = 18,
  kCreateContainer = 19,
  kCreateTtl = 21,
  kMultiRead = 22,
  kAuth = 100,
  kSetWatches = 101,
  kGetEphemerals = 103,
  kGetAllChildrenNumber = 104,
  kSetWatches2 = 105,
  kAddWatch = 106,
  kWhoAmI = 107,
  kCloseSession = -11,
  kError = -1,
};
constexpr int32_t kMarshallingError = -5;
constexpr int32_t kUnimplemented = -6;
constexpr int32_t kBadArguments = -8;
constexpr int32_t kThrottled = -127;
constexpr int32_t kSystemError = -1;

// Monotonic milliseconds (ZooKeeper's Time.currentElapsedTime).
int64_t MonotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// ZooKeeper's short operation names (FinalRequestProcessor's lastOp).
const char* LastOpName(int32_t type) {
  switch (type) {
    case kPing:
      return "PING";
    case kMulti:
      return "MULT";
    case kMultiRead:
      return "MLTR";
    case kCreate:
    case kCreate2:
    case kCreateContainer:
    case kCreateTtl:
      return "CREA";
    case kDelete:
      return "DELE";
    case kSetData:
      return "SETD";
    case kSetAcl:
      return "SETA";
    case kCloseSession:
      return "CLOS";
    case kSync:
      return "SYNC";
    case kCheck:
      return "CHEC";
    case kExists:
      return "EXIS";
    case kGetData:
      return "GETD";
    case kSetWatches:
      return "SETW";
    case kSetWatches2:
      return "STW2";
    case kAddWatch:
      return "ADDW";
    case kGetAcl:
      return "GETA";
    case kGetChildren:
    case kGetChildren2:
      return "GETC";
    case kGetAllChildrenNumber:
      return "GETACN";
    case kCheckWatches:
      return "CHKW";
    case kRemoveWatches:
      return "REMW";
    case kGetEphemerals:
      return "GETE";
    case kWhoAmI:
      return "HOMI";
    case kAuth:
      return "AUTH";
    default:
      return "UNKN";
  }
}

jute::Stat ToJute(const v1::Stat& s) {
  return jute::Stat{
      s.czxid(),       s.mzxid(),        s.ctime_ms(), s.mtime_ms(),
      s.version(),     s.cversion(),     s.aversion(), s.ephemeral_owner(),
      s.data_length(), s.num_children(), s.pzxid()};
}

void ToApiAcls(const std::vector<jute::Acl>& in,
               google::protobuf::RepeatedPtrField<v1::Acl>* out) {
  for (const jute::Acl& a : in) {
    v1::Acl* acl = out->Add();
    acl->set_perms(a.perms);
    acl->set_scheme(a.id.scheme);
    acl->set_id(a.id.id);
  }
}

void FillCreate(const jute::CreateRequest& c, v1::CreateRequest* out) {
  out->set_path(c.path);
  out->set_data(c.data);
  ToApiAcls(c.acl, out->mutable_acl());
  out->set_mode(static_cast<v1::CreateMode>(c.flags));
  if (c.ttl >= 0) out->set_ttl_ms(c.ttl);
}

// UNAVAILABLE: the server has no quorum. As ZooKeeper, drop the connection
// (the client sees ConnectionLoss and tries another server) instead of
// answering.
bool DropConnection(const grpc::Status& s) {
  return s.error_code() == grpc::StatusCode::UNAVAILABLE;
}

int32_t GrpcToZk(const grpc::Status& s) {
  switch (s.error_code()) {
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::FAILED_PRECONDITION:
      return kBadArguments;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return kThrottled;
    case grpc::StatusCode::UNIMPLEMENTED:
      return kUnimplemented;
    default:
      return kSystemError;
  }
}

}  // namespace

class Connection;

class WireServer::Impl {
 public:
  Impl(WireServerOptions options, std::shared_ptr<grpc::Channel> channel)
      : options_(std::move(options)), stub_(v1::Rockeeper::NewStub(channel)) {
    if (options_.metrics == nullptr)
      own_metrics_ = std::make_unique<ServerMetrics>();
    metrics_ =
        options_.metrics != nullptr ? options_.metrics : own_metrics_.get();
  }
  ~Impl();

  absl::Status Listen();
  void Loop();
  void Stop();

  const WireServerOptions options_;
  std::unique_ptr<v1::Rockeeper::Stub> stub_;
  std::unique_ptr<ServerMetrics> own_metrics_;
  ServerMetrics* metrics_ = nullptr;
  int listen_fd_ = -1;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> connections_open_{0};
  uint64_t next_conn_id_ = 0;  // loop thread only
  std::atomic<int64_t> received_{0};
  std::atomic<int64_t> sent_{0};
  std::thread thread_;
  // Changed by the loop thread only, under conns_mu_ (read by cons/crst).
  mutable absl::Mutex conns_mu_;
  absl::flat_hash_map<int, std::shared_ptr<Connection>> connections_;
};

// One client connection. The loop thread reads and parses; completions of
// gRPC calls (other threads) queue replies; writes happen from whichever
// thread has output, under `mu_`.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(WireServer::Impl* server, int fd, std::string ip,
             std::string remote, uint64_t conn_id)
      : server_(server),
        conn_id_(conn_id),
        fd_(fd),
        ip_(std::move(ip)),
        remote_(std::move(remote)),
        established_ms_(absl::ToUnixMillis(absl::Now())) {}

  // Loop thread: new bytes arrived. False: close the connection.
  bool OnReadable();
  // Any thread: writes pending output. False if the socket failed.
  void Flush();
  void Close();
  bool closed() {
    absl::MutexLock lock(&mu_);
    return closed_;
  }
  int fd() const { return fd_; }

  // Events from the Session stream.
  void DeliverEvent(const v1::WatchEvent& e);
  void SessionEnded();

  ConnectionInfo Info();
  void ResetStats();
  // Once closed with no call in flight: tells on_connection_closed.
  void MaybeForget();

 private:
  class EventReader;
  struct Reply {
    bool ready = false;
    uint64_t event_seq = 0;
    std::string frame;
    bool close_after = false;
    // For the connection's statistics.
    const char* op = "NA";
    int32_t xid = 0;
    bool is_connect = false;
    int64_t start_ms = 0;
  };
  using ReplySlot = std::shared_ptr<Reply>;

  bool HandleFrame(absl::string_view payload);
  bool HandleConnect(absl::string_view payload);
  bool HandleRequest(absl::string_view payload);
  ReplySlot NewSlot();
  void Complete(const ReplySlot& slot, std::string frame, uint64_t event_seq,
                bool close_after = false);
  void SetupContext(grpc::ClientContext* ctx);

  // Sends `req` with `fn` and calls `done(status, resp)`.
  template <typename Req, typename Resp, typename Fn, typename Done>
  void Call(Fn fn, Req req, Done done);
  // A reply of header + body (body only when err == 0, as ZooKeeper).
  std::string Frame(int32_t xid, const v1::ResponseHeader& h,
                    const std::function<void(jute::JuteWriter&)>& body);
  std::string ErrorFrame(int32_t xid, int64_t zxid, int32_t err);

  bool HandleMulti(int32_t xid, jute::JuteReader& r);
  bool HandleMultiRead(int32_t xid, jute::JuteReader& r);

  WireServer::Impl* const server_;
  const uint64_t conn_id_;
  uint64_t next_seq_ = 0;         // loop thread only
  bool check_only_next_ = false;  // loop thread only: next call is checkWatches
  std::atomic<int64_t> in_flight_calls_{0};
  const int fd_;
  const std::string ip_;
  const std::string remote_;  // ip:port
  const int64_t established_ms_;
  std::string in_;               // loop thread only
  bool handshake_done_ = false;  // loop thread only
  // Loop thread only: the connection is closing (closeSession, unknown
  // opcode); later frames are ignored, as ZooKeeper does.
  bool stop_reading_ = false;
  // The request being parsed (loop thread only), for NewSlot.
  const char* current_op_ = "NA";
  int32_t current_xid_ = 0;
  bool current_is_connect_ = false;

  absl::Mutex mu_;
  std::string out_ ABSL_GUARDED_BY(mu_);
  std::deque<ReplySlot> replies_ ABSL_GUARDED_BY(mu_);
  uint64_t events_written_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool forgotten_ ABSL_GUARDED_BY(mu_) = false;
  bool close_when_flushed_ ABSL_GUARDED_BY(mu_) = false;
  bool want_write_ ABSL_GUARDED_BY(mu_) = false;
  int64_t session_id_ ABSL_GUARDED_BY(mu_) = 0;
  std::shared_ptr<EventReader> reader_ ABSL_GUARDED_BY(mu_);
  // Statistics for cons (reset by crst).
  int interest_ ABSL_GUARDED_BY(mu_) = 0;
  int32_t timeout_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t stat_received_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t stat_sent_ ABSL_GUARDED_BY(mu_) = 0;
  const char* last_op_ ABSL_GUARDED_BY(mu_) = "NA";
  int64_t last_cxid_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t last_zxid_ ABSL_GUARDED_BY(mu_) = -1;
  int64_t last_response_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t last_latency_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t min_latency_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t max_latency_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t sum_latency_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t count_latency_ ABSL_GUARDED_BY(mu_) = 0;
  // Caller holds mu_: a reply left.
  void CountReply(const Reply& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
};

// The session's event stream over the in-process channel. Owned by itself
// (from Start until OnDone) and by its connection's `reader_`, so Close can
// cancel it while gRPC ends it on another thread: whoever drops the last
// reference frees it, never before OnDone.
class Connection::EventReader
    : public grpc::ClientBidiReactor<v1::SessionRequest, v1::SessionMessage> {
 public:
  EventReader(std::shared_ptr<Connection> conn, int64_t session_id,
              std::string password)
      : conn_(std::move(conn)) {
    attach_.set_session_id(session_id);
    attach_.set_password(std::move(password));
  }
  // Starts the call; call without holding the connection's mutex (a
  // reaction may run before this returns).
  void Start(const std::shared_ptr<EventReader>& self,
             v1::Rockeeper::Stub* stub) {
    self_ = self;
    stub->async()->Session(&ctx_, this);
    StartWrite(&attach_);
    StartRead(&msg_);
    StartCall();
  }
  // Any thread, any time while a reference is held.
  void Cancel() { ctx_.TryCancel(); }
  void OnWriteDone(bool) override {}
  void OnReadDone(bool ok) override {
    if (!ok) return;  // OnDone follows
    if (msg_.has_event()) {
      conn_->DeliverEvent(msg_.event());
    } else if (msg_.has_state() &&
               msg_.state() != v1::SessionMessage::CONNECTED) {
      conn_->SessionEnded();
    }
    StartRead(&msg_);
  }
  void OnDone(const grpc::Status&) override {
    std::shared_ptr<EventReader> keep = std::move(self_);
    std::shared_ptr<EventReader> mine;
    {
      absl::MutexLock lock(&conn_->mu_);
      if (conn_->reader_.get() == this) mine = std::move(conn_->reader_);
    }
    // `keep` and `mine` go out of scope last: this may be freed here.
  }

 private:
  std::shared_ptr<Connection> conn_;
  std::shared_ptr<EventReader> self_;  // set by Start, dropped by OnDone
  grpc::ClientContext ctx_;
  v1::SessionRequest attach_;
  v1::SessionMessage msg_;
};

template <typename Req, typename Resp, typename Fn, typename Done>
void Connection::Call(Fn fn, Req req, Done done) {
  struct State {
    grpc::ClientContext ctx;
    Req req;
    Resp resp;
  };
  auto state = std::make_shared<State>();
  state->req = std::move(req);
  SetupContext(&state->ctx);
  if constexpr (!std::is_same_v<Req, v1::ConnectRequest>) {
    // The service admits a connection's calls in this order (ZooKeeper's
    // per-session FIFO), whatever order gRPC starts them in.
    state->ctx.AddMetadata("rk-order",
                           absl::StrCat(conn_id_, ":", ++next_seq_));
  }
  if (check_only_next_) {
    state->ctx.AddMetadata("rk-check-only", "1");
    check_only_next_ = false;
  }
  in_flight_calls_.fetch_add(1);
  auto self = shared_from_this();
  fn(server_->stub_->async(), &state->ctx, &state->req, &state->resp,
     [self, state, done = std::move(done)](grpc::Status s) {
       done(s, state->resp);
       if (self->in_flight_calls_.fetch_sub(1) == 1) self->MaybeForget();
     });
}

void Connection::MaybeForget() {
  {
    absl::MutexLock lock(&mu_);
    if (!closed_ || forgotten_ || in_flight_calls_.load() != 0) return;
    forgotten_ = true;
  }
  if (server_->options_.on_connection_closed) {
    server_->options_.on_connection_closed(conn_id_);
  }
}

void Connection::SetupContext(grpc::ClientContext* ctx) {
  ctx->AddMetadata("rk-client-ip", ip_);
  absl::MutexLock lock(&mu_);
  if (session_id_ != 0) {
    ctx->AddMetadata("rk-session-id", absl::StrCat(session_id_));
  }
}

Connection::ReplySlot Connection::NewSlot() {
  auto slot = std::make_shared<Reply>();
  slot->op = current_op_;
  slot->xid = current_xid_;
  slot->is_connect = current_is_connect_;
  slot->start_ms = MonotonicMs();
  absl::MutexLock lock(&mu_);
  replies_.push_back(slot);
  return slot;
}

void Connection::Complete(const ReplySlot& slot, std::string frame,
                          uint64_t event_seq, bool close_after) {
  {
    absl::MutexLock lock(&mu_);
    slot->frame = std::move(frame);
    slot->event_seq = event_seq;
    slot->close_after = close_after;
    slot->ready = true;
  }
  Flush();
}

std::string Connection::ErrorFrame(int32_t xid, int64_t zxid, int32_t err) {
  jute::JuteWriter w;
  jute::Write(w, jute::ReplyHeader{xid, zxid, err});
  return w.Framed();
}

std::string Connection::Frame(
    int32_t xid, const v1::ResponseHeader& h,
    const std::function<void(jute::JuteWriter&)>& body) {
  jute::JuteWriter w;
  jute::Write(w, jute::ReplyHeader{xid, h.zxid(), h.err()});
  if (h.err() == 0 && body) body(w);
  return w.Framed();
}

void Connection::DeliverEvent(const v1::WatchEvent& e) {
  jute::JuteWriter w;
  // ZooKeeper 3.8 sends zxid -1 in notification headers.
  jute::Write(w, jute::ReplyHeader{-1, -1, 0});
  jute::Write(w,
              jute::WatcherEvent{static_cast<int32_t>(e.type()), 3, e.path()});
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    out_ += w.Framed();
    server_->sent_.fetch_add(1, std::memory_order_relaxed);
    server_->metrics_->wire_packets_sent.Add();
    server_->metrics_->wire_watch_events_sent.Add();
    ++stat_sent_;
    events_written_ = std::max(events_written_, e.seq());
  }
  Flush();
}

void Connection::CountReply(const Reply& r) {
  ++stat_sent_;
  last_op_ = r.op;
  if (r.xid >= 0) last_cxid_ = r.xid;
  if (!r.is_connect && r.frame.size() >= 16) {
    // Frame: length(4) xid(4) zxid(8) err(4).
    uint64_t z = 0;
    for (size_t i = 8; i < 16; ++i) {
      z = (z << 8) | static_cast<unsigned char>(r.frame[i]);
    }
    last_zxid_ = static_cast<int64_t>(z);
  }
  const int64_t now = MonotonicMs();
  const int64_t lat = std::max<int64_t>(0, now - r.start_ms);
  last_response_ms_ = now;
  last_latency_ms_ = lat;
  if (count_latency_ == 0 || lat < min_latency_ms_) min_latency_ms_ = lat;
  max_latency_ms_ = std::max(max_latency_ms_, lat);
  sum_latency_ms_ += lat;
  ++count_latency_;
}

ConnectionInfo Connection::Info() {
  absl::MutexLock lock(&mu_);
  ConnectionInfo c;
  c.remote = remote_;
  c.interest_ops = interest_;
  c.queued = static_cast<int64_t>(replies_.size());
  c.received = stat_received_;
  c.sent = stat_sent_;
  c.session_id = session_id_;
  c.last_op = last_op_;
  c.established_ms = established_ms_;
  c.timeout_ms = timeout_ms_;
  c.last_cxid = last_cxid_;
  c.last_zxid = last_zxid_;
  c.last_response_ms = last_response_ms_;
  c.last_latency_ms = last_latency_ms_;
  c.min_latency_ms = min_latency_ms_;
  c.max_latency_ms = max_latency_ms_;
  c.avg_latency_ms = count_latency_ == 0 ? 0 : sum_latency_ms_ / count_latency_;
  return c;
}

void Connection::ResetStats() {
  absl::MutexLock lock(&mu_);
  stat_received_ = stat_sent_ = 0;
  last_op_ = "NA";
  last_cxid_ = last_zxid_ = -1;
  last_response_ms_ = last_latency_ms_ = 0;
  min_latency_ms_ = max_latency_ms_ = sum_latency_ms_ = count_latency_ = 0;
}

void Connection::SessionEnded() {
  {
    absl::MutexLock lock(&mu_);
    close_when_flushed_ = true;
  }
  Flush();
}

void Connection::Flush() {
  bool close_now = false;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    // Replies in request order, each after the events it may reflect.
    while (!replies_.empty() && replies_.front()->ready &&
           replies_.front()->event_seq <= events_written_) {
      out_ += replies_.front()->frame;
      if (!replies_.front()->frame.empty()) {
        server_->sent_.fetch_add(1, std::memory_order_relaxed);
        server_->metrics_->wire_packets_sent.Add();
        CountReply(*replies_.front());
      }
      if (replies_.front()->close_after) close_when_flushed_ = true;
      replies_.pop_front();
    }
    while (!out_.empty()) {
      const ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n > 0) {
        server_->metrics_->wire_bytes_sent.Add(static_cast<uint64_t>(n));
        out_.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0 && errno == EINTR) continue;
      close_now = true;
      break;
    }
    if (!close_now && out_.size() > server_->options_.max_output_bytes) {
      close_now = true;  // a client that does not read
      server_->metrics_->wire_slow_clients_closed.Add();
    }
    if (!close_now) {
      const bool want = !out_.empty();
      if (want != want_write_) {
        want_write_ = want;
        epoll_event ev{};
        ev.events = EPOLLIN | (want ? static_cast<uint32_t>(EPOLLOUT) : 0u);
        ev.data.fd = fd_;
        epoll_ctl(server_->epoll_fd_, EPOLL_CTL_MOD, fd_, &ev);
      }
      // Replies still owed (e.g. closeSession's, whose session stream ends
      // first) go out before the socket closes.
      if (out_.empty() && replies_.empty() && close_when_flushed_) {
        close_now = true;
      }
    }
  }
  if (close_now) Close();
}

void Connection::Close() {
  std::shared_ptr<EventReader> reader;  // kept alive across Cancel
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    reader = reader_;
  }
  if (reader != nullptr) reader->Cancel();
  // The loop thread closes the fd when it sees the hang-up.
  ::shutdown(fd_, SHUT_RDWR);
  MaybeForget();
}

bool Connection::OnReadable() {
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n > 0) {
      server_->metrics_->wire_bytes_received.Add(static_cast<uint64_t>(n));
      in_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return false;  // peer closed
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno == EINTR) continue;
    return false;
  }
  if (!handshake_done_ && in_.size() >= 4 &&
      IsFourLetterWord(absl::string_view(in_).substr(0, 4))) {
    {
      absl::MutexLock lock(&mu_);
      ++stat_received_;
    }
    server_->metrics_->four_letter_words.Add();
    const std::string out =
        RunFourLetterWord(absl::string_view(in_).substr(0, 4),
                          server_->options_.four_letter_words);
    in_.clear();
    {
      absl::MutexLock lock(&mu_);
      out_ += out;
      close_when_flushed_ = true;
    }
    Flush();
    return true;
  }
  size_t offset = 0;
  for (;;) {
    size_t consumed = 0;
    bool bad = false;
    auto frame = jute::NextFrame(absl::string_view(in_).substr(offset),
                                 server_->options_.max_frame_bytes + 64,
                                 &consumed, &bad);
    if (bad) {
      server_->metrics_->wire_bad_frames.Add();
      return false;
    }
    if (!frame) break;
    if (stop_reading_) {  // after closeSession or an unknown opcode
      offset = in_.size();
      break;
    }
    server_->received_.fetch_add(1, std::memory_order_relaxed);
    server_->metrics_->wire_packets_received.Add();
    {
      absl::MutexLock lock(&mu_);
      ++stat_received_;
      interest_ = 1;
    }
    if (!HandleFrame(*frame)) {
      server_->metrics_->wire_bad_frames.Add();
      return false;
    }
    offset += consumed;
  }
  in_.erase(0, offset);
  return true;
}

bool Connection::HandleFrame(absl::string_view payload) {
  if (!handshake_done_) {
    handshake_done_ = true;
    current_op_ = "SESS";
    current_xid_ = -1;
    current_is_connect_ = true;
    return HandleConnect(payload);
  }
  current_is_connect_ = false;
  return HandleRequest(payload);
}

bool Connection::HandleConnect(absl::string_view payload) {
  jute::JuteReader r(payload, server_->options_.max_frame_bytes);
  jute::ConnectRequest req;
  if (!jute::Read(r, &req)) return false;
  v1::ConnectRequest c;
  c.set_timeout_ms(req.timeout_ms);
  c.set_session_id(req.session_id);
  c.set_password(req.password);
  c.set_last_zxid_seen(req.last_zxid_seen);
  const std::optional<bool> read_only = req.read_only;
  ReplySlot slot = NewSlot();
  auto self = shared_from_this();
  Call<v1::ConnectRequest, v1::ConnectResponse>(
      [](auto* async, auto* ctx, auto* rq, auto* rs, auto cb) {
        async->Connect(ctx, rq, rs, std::move(cb));
      },
      std::move(c),
      [self, slot, read_only](const grpc::Status& s,
                              const v1::ConnectResponse& resp) {
        jute::ConnectResponse out;
        if (read_only) out.read_only = false;
        const bool ok = s.ok() && resp.header().err() == 0;
        if (!s.ok() &&
            (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
             DropConnection(s))) {
          // The client has seen a newer zxid, or this server has no quorum:
          // close without replying.
          self->Complete(slot, "", 0, /*close_after=*/true);
          return;
        }
        out.password = std::string(16, '\0');
        if (ok) {
          out.timeout_ms = resp.timeout_ms();
          out.session_id = resp.session_id();
          out.password = resp.password();
          std::shared_ptr<EventReader> reader;
          {
            absl::MutexLock lock(&self->mu_);
            self->session_id_ = resp.session_id();
            self->timeout_ms_ = resp.timeout_ms();
            if (!self->closed_) {
              reader = std::make_shared<EventReader>(self, resp.session_id(),
                                                     resp.password());
              self->reader_ = reader;
            }
          }
          if (reader) reader->Start(reader, self->server_->stub_.get());
        }
        jute::JuteWriter w;
        jute::Write(w, out);
        self->Complete(slot, w.Framed(), 0, /*close_after=*/!ok);
      });
  return true;
}

bool Connection::HandleRequest(absl::string_view payload) {
  jute::JuteReader r(payload, server_->options_.max_frame_bytes);
  jute::RequestHeader h;
  if (!jute::Read(r, &h)) return false;
  const int32_t xid = h.xid;
  current_op_ = LastOpName(h.type);
  current_xid_ = xid;
  auto self = shared_from_this();
  // Completes a reply from a v1 response with a `header`.
  auto reply = [self](ReplySlot slot, int32_t xid, const grpc::Status& s,
                      const v1::ResponseHeader& header,
                      std::function<void(jute::JuteWriter&)> body,
                      bool close_after = false) {
    if (DropConnection(s)) {
      self->Complete(slot, "", 0, /*close_after=*/true);
      return;
    }
    if (!s.ok()) {
      self->Complete(slot, self->ErrorFrame(xid, header.zxid(), GrpcToZk(s)), 0,
                     close_after);
      return;
    }
    self->Complete(slot, self->Frame(xid, header, body), header.event_seq(),
                   close_after);
  };
#define RK_ASYNC(Method)                                    \
  [](auto* async, auto* ctx, auto* rq, auto* rs, auto cb) { \
    async->Method(ctx, rq, rs, std::move(cb));              \
  }
  switch (h.type) {
    case kPing: {
      ReplySlot slot = NewSlot();
      Call<v1::HeartbeatRequest, v1::HeartbeatResponse>(
          RK_ASYNC(Heartbeat), {},
          [reply, slot, xid](const grpc::Status& s, const auto& resp) {
            reply(slot, xid, s, resp.header(), nullptr,
                  resp.header().err() != 0);
          });
      return true;
    }
    case kCloseSession: {
      stop_reading_ = true;
      ReplySlot slot = NewSlot();
      Call<v1::CloseRequest, v1::CloseResponse>(
          RK_ASYNC(Close), {},
          [reply, slot, xid](const grpc::Status& s, const auto& resp) {
            reply(slot, xid, s, resp.header(), nullptr, /*close_after=*/true);
          });
      return true;
    }
    case kAuth: {
      jute::AuthPacket a;
      if (!jute::Read(r, &a)) return false;
      v1::AddAuthRequest req;
      req.set_scheme(a.scheme);
      req.set_auth(a.auth);
      ReplySlot slot = NewSlot();
      Call<v1::AddAuthRequest, v1::AddAuthResponse>(
          RK_ASYNC(AddAuth), std::move(req),
          [self, slot, xid](const grpc::Status& s, const auto& resp) {
            if (DropConnection(s)) {
              self->Complete(slot, "", 0, /*close_after=*/true);
              return;
            }
            const int32_t err = s.ok() ? resp.header().err() : GrpcToZk(s);
            // ZooKeeper answers {-4, 0, err} and closes on failure.
            self->Complete(slot, self->ErrorFrame(xid, 0, err),
                           s.ok() ? resp.header().event_seq() : 0, err != 0);
          });
      return true;
    }
    case kCreate:
    case kCreate2:
    case kCreateContainer:
    case kCreateTtl: {
      jute::CreateRequest c;
      if (!jute::Read(r, &c, h.type == kCreateTtl)) return false;
      v1::CreateRequest req;
      FillCreate(c, &req);
      const bool with_stat = h.type != kCreate;
      ReplySlot slot = NewSlot();
      Call<v1::CreateRequest, v1::CreateResponse>(
          RK_ASYNC(Create), std::move(req),
          [reply, slot, xid, with_stat](const grpc::Status& s,
                                        const v1::CreateResponse& resp) {
            reply(slot, xid, s, resp.header(), [&](jute::JuteWriter& w) {
              w.WriteString(resp.path());
              if (with_stat) jute::Write(w, ToJute(resp.stat()));
            });
          });
      return true;
    }
    case kDelete: {
      jute::PathVersionRequest d;
      if (!jute::Read(r, &d)) return false;
      v1::DeleteRequest req;
      req.set_path(d.path);
      if (d.version != -1) req.set_version(d.version);
      ReplySlot slot = NewSlot();
      Call<v1::DeleteRequest, v1::DeleteResponse>(
          RK_ASYNC(Delete), std::move(req),
          [reply, slot, xid](const grpc::Status& s, const auto& resp) {
            reply(slot, xid, s, resp.header(), nullptr);
          });
      return true;
    }
    case kExists: {
      jute::PathWatchRequest e;
      if (!jute::Read(r, &e)) return false;
      v1::ExistsRequest req;
      req.set_path(e.path);
      req.set_watch(e.watch);
      ReplySlot slot = NewSlot();
      Call<v1::ExistsRequest, v1::ExistsResponse>(
          RK_ASYNC(Exists), std::move(req),
          [reply, slot, xid](const grpc::Status& s,
                             const v1::ExistsResponse& resp) {
            reply(slot, xid, s, resp.header(), [&](jute::JuteWriter& w) {
              jute::Write(w, ToJute(resp.stat()));
            });
          });
      return true;
    }
    case kGetData: {
      jute::PathWatchRequest g;
      if (!jute::Read(r, &g)) return false;
      v1::GetDataRequest req;
      req.set_path(g.path);
      req.set_watch(g.watch);
      ReplySlot slot = NewSlot();
      Call<v1::GetDataRequest, v1::GetDataResponse>(
          RK_ASYNC(GetData), std::move(req),
          [reply, slot, xid](const grpc::Status& s,
                             const v1::GetDataResponse& resp) {
            reply(slot, xid, s, resp.header(), [&](jute::JuteWriter& w) {
              w.WriteBuffer(resp.data());
              jute::Write(w, ToJute(resp.stat()));
            });
          });
      return true;
    }
    case kSetData: {
      jute::SetDataRequest sd;
      if (!jute::Read(r, &sd)) return false;
      v1::SetDataRequest req;
      req.set_path(sd.path);
      req.set_data(sd.data);
      if (sd.version != -1) req.set_version(sd.version);
      ReplySlot slot = NewSlot();
      Call<v1::SetDataRequest, v1::SetDataResponse>(
          RK_ASYNC(SetData), std::move(req),
          [reply, slot, xid](const grpc::Status& s,
                             const v1::SetDataResponse& resp) {
            reply(slot, xid, s, resp.header(), [&](jute::JuteWriter& w) {
              jute::Write(w, ToJute(resp.stat()));
            });
          });
      return true;
    }
    case kGetAcl: {
      std::string path;
      if (!r.ReadString(&path)) return false;
      v1::GetAclRequest req;
      req.set_path(path);
      ReplySlot slot = NewSlot();
      Call<v1::GetAclRequest, v1::GetAclResponse>(
          RK_ASYNC(GetAcl), std::move(req),
          [reply, slot, xid](const grpc::Status& s,
                             const v1::GetAclResponse& resp) {
            reply(slot, xid, s, resp.header(), [&](jute::JuteWriter& w) {
              std::vector<jute::Acl> acl;
              for (const auto& a : resp.acl()) {
                acl.push_back({a.perms(), {a.scheme(), a.id()}});
              }
              jute::Write(w, acl);
              jute::Write(w, ToJute(resp.stat()));
            });
          });
      return true;
    }
    case kSetAcl: {
      jute::SetAclRequest sa;
      if (!jute::Read(r, &sa)) return false;
      v1::SetAclRequest req;
      req.set_path(sa.path);
      ToApiAcls(sa.acl, req.mutable_acl());
      if (sa.version != -1) req.set_version(sa.version);
      ReplySlot slot = NewSlot();
      Call<v1::SetAclRequest, v1::SetAclResponse>(
          RK_ASYNC(SetAcl), std::move(req),
          [reply, slot, xid](const grpc::Status& s,
                             const v1::SetAclResponse& resp) {
            reply(slot, xid, s, resp.header(), [&](jute::JuteWriter& w) {
              jute::Write(w, ToJute(resp.stat()));
            });
          });
      return true;
    }
    case kGetChildren:
    case kGetChildren2: {
      jute::PathWatchRequest g;
      if (!jute::Read(r, &g)) return false;
      v1::GetChildrenRequest req;
      req.set_path(g.path);
      req.set_watch(g.watch);
      const bool with_stat = h.type == kGetChildren2;
      ReplySlot slot = NewSlot();
      Call<v1::GetChildrenRequest, v1::GetChildrenResponse>(
          RK_ASYNC(GetChildren), std::move(req),
          [reply, slot, xid, with_stat](const grpc::Status& s,
                                        const v1::GetChildrenResponse& resp) {
            reply(slot, xid, s, resp.header(), [&](jute::JuteWriter& w) {
              jute::Write(w, std::vector<std::string>(resp.children().begin(),
                                                      resp.children().end()));
              if (with_stat) jute::Write(w, ToJute(resp.stat()));
            });
          });
      return true;
    }
    case kSync: {
      std::string path;
      if (!r.ReadString(&path)) return false;
      v1::SyncRequest req;
      req.set_path(path);
      ReplySlot slot = NewSlot();
      Call<v1::SyncRequest, v1::SyncResponse>(
          RK_ASYNC(Sync), std::move(req),
          [reply, slot, xid](const grpc::Status& s,
                             const v1::SyncResponse& resp) {
            reply(slot, xid, s, resp.header(),
                  [&](jute::JuteWriter& w) { w.WriteString(resp.path()); });
          });
      return true;
    }
    case kMulti:
      return HandleMulti(xid, r);
    case kMultiRead:
      return HandleMultiRead(xid, r);
    case kSetWatches:
    case kSetWatches2: {
      jute::SetWatches sw;
      if (!jute::Read(r, &sw, h.type == kSetWatches2)) return false;
      v1::SetWatchesRequest req;
      req.set_relative_zxid(sw.relative_zxid);
      for (auto& p : sw.data) req.add_data_watches(p);
      for (auto& p : sw.exist) req.add_exist_watches(p);
      for (auto& p : sw.child) req.add_child_watches(p);
      for (auto& p : sw.persistent) req.add_persistent_watches(p);
      for (auto& p : sw.persistent_recursive) {
        req.add_persistent_recursive_watches(p);
      }
      ReplySlot slot = NewSlot();
      Call<v1::SetWatchesRequest, v1::SetWatchesResponse>(
          RK_ASYNC(SetWatches), std::move(req),
          [reply, slot, xid](const grpc::Status& s, const auto& resp) {
            reply(slot, xid, s, resp.header(), nullptr);
          });
      return true;
    }
    case kAddWatch: {
      std::string path;
      int32_t mode = 0;
      if (!r.ReadString(&path) || !r.ReadInt(&mode)) return false;
      v1::AddWatchRequest req;
      req.set_path(path);
      req.set_mode(mode == 1 ? v1::PERSISTENT_RECURSIVE_WATCH
                             : v1::PERSISTENT_WATCH);
      ReplySlot slot = NewSlot();
      Call<v1::AddWatchRequest, v1::AddWatchResponse>(
          RK_ASYNC(AddWatch), std::move(req),
          [reply, slot, xid](const grpc::Status& s, const auto& resp) {
            // ZooKeeper answers an ErrorResponse{0}: the Java client reads
            // (and needs) that 4-byte body.
            reply(slot, xid, s, resp.header(),
                  [](jute::JuteWriter& w) { w.WriteInt(0); });
          });
      return true;
    }
    case kCheckWatches:
    case kRemoveWatches: {
      std::string path;
      int32_t type = 0;
      if (!r.ReadString(&path) || !r.ReadInt(&type)) return false;
      if (type < 1 || type > 3) {  // 3.8 knows Children, Data, Any
        ReplySlot slot = NewSlot();
        Complete(slot, ErrorFrame(xid, 0, kMarshallingError), 0);
        return true;
      }
      v1::RemoveWatchesRequest req;
      req.set_path(path);
      req.set_type(static_cast<v1::WatcherType>(type));
      // checkWatches: the same request, but the watch stays.
      check_only_next_ = h.type == kCheckWatches;
      ReplySlot slot = NewSlot();
      Call<v1::RemoveWatchesRequest, v1::RemoveWatchesResponse>(
          RK_ASYNC(RemoveWatches), std::move(req),
          [reply, slot, xid](const grpc::Status& s, const auto& resp) {
            reply(slot, xid, s, resp.header(), nullptr);
          });
      return true;
    }
    case kGetEphemerals: {
      std::string prefix;
      if (!r.ReadString(&prefix)) return false;
      v1::GetEphemeralsRequest req;
      req.set_prefix_path(prefix);
      ReplySlot slot = NewSlot();
      Call<v1::GetEphemeralsRequest, v1::GetEphemeralsResponse>(
          RK_ASYNC(GetEphemerals), std::move(req),
          [reply, slot, xid](const grpc::Status& s,
                             const v1::GetEphemeralsResponse& resp) {
            reply(slot, xid, s, resp.header(), [&](jute::JuteWriter& w) {
              jute::Write(w, std::vector<std::string>(resp.paths().begin(),
                                                      resp.paths().end()));
            });
          });
      return true;
    }
    case kGetAllChildrenNumber: {
      std::string path;
      if (!r.ReadString(&path)) return false;
      v1::GetAllChildrenNumberRequest req;
      req.set_path(path);
      ReplySlot slot = NewSlot();
      Call<v1::GetAllChildrenNumberRequest, v1::GetAllChildrenNumberResponse>(
          RK_ASYNC(GetAllChildrenNumber), std::move(req),
          [reply, slot, xid](const grpc::Status& s,
                             const v1::GetAllChildrenNumberResponse& resp) {
            reply(slot, xid, s, resp.header(), [&](jute::JuteWriter& w) {
              w.WriteInt(resp.total_number());
            });
          });
      return true;
    }
    case kWhoAmI: {
      ReplySlot slot = NewSlot();
      Call<v1::WhoAmIRequest, v1::WhoAmIResponse>(
          RK_ASYNC(WhoAmI), {},
          [reply, slot, xid](const grpc::Status& s,
                             const v1::WhoAmIResponse& resp) {
            reply(slot, xid, s, resp.header(), [&](jute::JuteWriter& w) {
              w.WriteCount(resp.client_info_size());
              for (const auto& c : resp.client_info()) {
                w.WriteString(c.auth_scheme());
                w.WriteString(c.user());
              }
            });
          });
      return true;
    }
    default: {
      // Unknown or unsupported opcode: ZooKeeper's error reply (zxid -1),
      // then it closes the connection.
      stop_reading_ = true;
      ReplySlot slot = NewSlot();
      Complete(slot, ErrorFrame(xid, -1, kUnimplemented), 0,
               /*close_after=*/true);
      return true;
    }
  }
#undef RK_ASYNC
}

bool Connection::HandleMulti(int32_t xid, jute::JuteReader& r) {
  v1::MultiRequest req;
  std::vector<int32_t> types;
  for (int i = 0; i < 10000; ++i) {
    jute::MultiHeader mh;
    if (!jute::Read(r, &mh)) return false;
    if (mh.done) break;
    types.push_back(mh.type);
    auto* op = req.add_ops();
    switch (mh.type) {
      case kCreate:
      case kCreate2:
      case kCreateContainer:
      case kCreateTtl: {
        jute::CreateRequest c;
        if (!jute::Read(r, &c, mh.type == kCreateTtl)) return false;
        FillCreate(c, op->mutable_create());
        break;
      }
      case kDelete: {
        jute::PathVersionRequest d;
        if (!jute::Read(r, &d)) return false;
        op->mutable_delete_()->set_path(d.path);
        if (d.version != -1) op->mutable_delete_()->set_version(d.version);
        break;
      }
      case kSetData: {
        jute::SetDataRequest sd;
        if (!jute::Read(r, &sd)) return false;
        op->mutable_set_data()->set_path(sd.path);
        op->mutable_set_data()->set_data(sd.data);
        if (sd.version != -1) op->mutable_set_data()->set_version(sd.version);
        break;
      }
      case kCheck: {
        jute::PathVersionRequest c;
        if (!jute::Read(r, &c)) return false;
        op->mutable_check()->set_path(c.path);
        if (c.version != -1) op->mutable_check()->set_version(c.version);
        break;
      }
      default: {  // reads or unknown ops inside multi
        ReplySlot slot = NewSlot();
        Complete(slot, ErrorFrame(xid, 0, kMarshallingError), 0);
        return true;
      }
    }
  }
  auto self = shared_from_this();
  ReplySlot slot = NewSlot();
  Call<v1::MultiRequest, v1::MultiResponse>(
      [](auto* async, auto* ctx, auto* rq, auto* rs, auto cb) {
        async->Multi(ctx, rq, rs, std::move(cb));
      },
      std::move(req),
      [self, slot, xid, types](const grpc::Status& s,
                               const v1::MultiResponse& resp) {
        if (!s.ok()) {
          if (DropConnection(s)) {
            self->Complete(slot, "", 0, /*close_after=*/true);
            return;
          }
          self->Complete(slot, self->ErrorFrame(xid, 0, GrpcToZk(s)), 0);
          return;
        }
        jute::JuteWriter w;
        // A failed multi is err 0 in the header, errors per op.
        jute::Write(w, jute::ReplyHeader{xid, resp.header().zxid(), 0});
        const bool failed = resp.header().err() != 0;
        for (int i = 0; i < resp.results_size(); ++i) {
          const auto& res = resp.results(i);
          const int32_t type =
              i < static_cast<int>(types.size()) ? types[i] : 0;
          if (failed) {
            jute::Write(w, jute::MultiHeader{kError, false, res.err()});
            w.WriteInt(res.err());
            continue;
          }
          const bool create2 = type == kCreate2 || type == kCreateContainer ||
                               type == kCreateTtl;
          jute::Write(w,
                      jute::MultiHeader{create2 ? kCreate2 : type, false, 0});
          if (type == kCreate) w.WriteString(res.path());
          if (create2) {
            w.WriteString(res.path());
            jute::Write(w, ToJute(res.stat()));
          }
          if (type == kSetData) jute::Write(w, ToJute(res.stat()));
        }
        jute::Write(w, jute::MultiHeader{-1, true, -1});
        self->Complete(slot, w.Framed(), resp.header().event_seq());
      });
  return true;
}

bool Connection::HandleMultiRead(int32_t xid, jute::JuteReader& r) {
  v1::MultiReadRequest req;
  for (int i = 0; i < 10000; ++i) {
    jute::MultiHeader mh;
    if (!jute::Read(r, &mh)) return false;
    if (mh.done) break;
    jute::PathWatchRequest p;
    if (!jute::Read(r, &p)) return false;
    auto* op = req.add_ops();
    if (mh.type == kGetChildren) {
      op->mutable_get_children()->set_path(p.path);  // watch ignored
    } else if (mh.type == kGetData) {
      op->mutable_get_data()->set_path(p.path);
    } else {
      ReplySlot slot = NewSlot();
      Complete(slot, ErrorFrame(xid, 0, kMarshallingError), 0);
      return true;
    }
  }
  auto self = shared_from_this();
  ReplySlot slot = NewSlot();
  auto ops = std::make_shared<v1::MultiReadRequest>(req);
  Call<v1::MultiReadRequest, v1::MultiReadResponse>(
      [](auto* async, auto* ctx, auto* rq, auto* rs, auto cb) {
        async->MultiRead(ctx, rq, rs, std::move(cb));
      },
      std::move(req),
      [self, slot, xid, ops](const grpc::Status& s,
                             const v1::MultiReadResponse& resp) {
        if (!s.ok()) {
          if (DropConnection(s)) {
            self->Complete(slot, "", 0, /*close_after=*/true);
            return;
          }
          self->Complete(slot, self->ErrorFrame(xid, 0, GrpcToZk(s)), 0);
          return;
        }
        jute::JuteWriter w;
        jute::Write(w, jute::ReplyHeader{xid, resp.header().zxid(), 0});
        for (int i = 0; i < resp.results_size(); ++i) {
          const auto& res = resp.results(i);
          if (res.err() != 0) {
            jute::Write(w, jute::MultiHeader{kError, false, res.err()});
            w.WriteInt(res.err());
          } else if (ops->ops(i).has_get_children()) {
            jute::Write(w, jute::MultiHeader{kGetChildren, false, 0});
            jute::Write(w, std::vector<std::string>(res.children().begin(),
                                                    res.children().end()));
          } else {
            jute::Write(w, jute::MultiHeader{kGetData, false, 0});
            w.WriteBuffer(res.data());
            jute::Write(w, ToJute(res.stat()));
          }
        }
        jute::Write(w, jute::MultiHeader{-1, true, -1});
        self->Complete(slot, w.Framed(), resp.header().event_seq());
      });
  return true;
}

// --- The server
// ---------------------------------------------------------------

absl::Status WireServer::Impl::Listen() {
  listen_fd_ =
      ::socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  bool v6 = listen_fd_ >= 0 && options_.address.find(':') != std::string::npos;
  if (!v6) {
    if (listen_fd_ >= 0) ::close(listen_fd_);
    listen_fd_ =
        ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  }
  if (listen_fd_ < 0) return absl::InternalError("socket failed");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage addr{};
  socklen_t len = 0;
  if (v6) {
    auto* a = reinterpret_cast<sockaddr_in6*>(&addr);
    a->sin6_family = AF_INET6;
    a->sin6_port = htons(static_cast<uint16_t>(options_.port));
    if (inet_pton(AF_INET6, options_.address.c_str(), &a->sin6_addr) != 1) {
      return absl::InvalidArgumentError("bad clientPortAddress " +
                                        options_.address);
    }
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(options_.port));
    if (inet_pton(AF_INET, options_.address.c_str(), &a->sin_addr) != 1) {
      return absl::InvalidArgumentError("bad clientPortAddress " +
                                        options_.address);
    }
    len = sizeof(*a);
  }
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 1024) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.address, ":", options_.port,
                     ": ", std::strerror(errno)));
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &blen);
  port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                   : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = listen_fd_;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev);
  ev.data.fd = wake_fd_;
  epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
  return absl::OkStatus();
}

namespace {

std::string PeerIp(const sockaddr_storage& addr) {
  char buf[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&addr)->sin_addr,
              buf, sizeof(buf));
  } else {
    const auto* a6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    if (IN6_IS_ADDR_V4MAPPED(&a6->sin6_addr)) {
      inet_ntop(AF_INET, &a6->sin6_addr.s6_addr[12], buf, sizeof(buf));
    } else {
      inet_ntop(AF_INET6, &a6->sin6_addr, buf, sizeof(buf));
    }
  }
  return buf;
}

std::string PeerRemote(const sockaddr_storage& addr) {
  const uint16_t port =
      addr.ss_family == AF_INET
          ? ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port)
          : ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  return absl::StrCat(PeerIp(addr), ":", port);
}

}  // namespace

void WireServer::Impl::Loop() {
  epoll_event events[128];
  while (!stopping_) {
    const int n = epoll_wait(epoll_fd_, events, 128, 500);
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == wake_fd_) {
        uint64_t v = 0;
        (void)!::read(wake_fd_, &v, sizeof(v));
        continue;
      }
      if (fd == listen_fd_) {
        for (;;) {
          sockaddr_storage addr{};
          socklen_t len = sizeof(addr);
          const int cfd =
              ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len,
                        SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (cfd < 0) break;
          int one = 1;
          setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
          auto conn = std::make_shared<Connection>(
              this, cfd, PeerIp(addr), PeerRemote(addr), ++next_conn_id_);
          {
            absl::MutexLock lock(&conns_mu_);
            connections_[cfd] = conn;
          }
          connections_open_.fetch_add(1);
          metrics_->wire_connections_accepted.Add();
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.fd = cfd;
          epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, cfd, &ev);
        }
        continue;
      }
      auto it = connections_.find(fd);
      if (it == connections_.end()) continue;
      std::shared_ptr<Connection> conn = it->second;
      bool keep = !conn->closed();
      if (keep && (events[i].events & EPOLLOUT)) conn->Flush();
      if (keep && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        keep = conn->OnReadable() && !conn->closed();
      }
      if (!keep) {
        conn->Close();
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
        ::close(fd);
        {
          absl::MutexLock lock(&conns_mu_);
          connections_.erase(it);
        }
        connections_open_.fetch_sub(1);
      }
    }
  }
}

WireServer::Impl::~Impl() {
  stopping_ = true;
  if (wake_fd_ >= 0) {
    uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof(one));
  }
  if (thread_.joinable()) thread_.join();
  absl::MutexLock lock(&conns_mu_);
  for (auto& [fd, conn] : connections_) {
    conn->Close();
    ::close(fd);
  }
  connections_.clear();
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

absl::StatusOr<std::unique_ptr<WireServer>> WireServer::Start(
    const WireServerOptions& options, std::shared_ptr<grpc::Channel> channel) {
  auto impl = std::make_unique<Impl>(options, std::move(channel));
  if (absl::Status s = impl->Listen(); !s.ok()) return s;
  Impl* raw = impl.get();
  impl->thread_ = std::thread([raw] { raw->Loop(); });
  return std::unique_ptr<WireServer>(new WireServer(std::move(impl)));
}

WireServer::WireServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WireServer::~WireServer() = default;
int WireServer::port() const { return impl_->port_; }

WireServer::Stats WireServer::stats() const {
  return Stats{impl_->connections_open_.load(), impl_->received_.load(),
               impl_->sent_.load()};
}

void WireServer::ResetStats() {
  impl_->received_ = 0;
  impl_->sent_ = 0;
}

std::vector<ConnectionInfo> WireServer::connections() const {
  std::vector<std::shared_ptr<Connection>> conns;
  {
    absl::MutexLock lock(&impl_->conns_mu_);
    for (const auto& [fd, conn] : impl_->connections_) conns.push_back(conn);
  }
  std::vector<ConnectionInfo> out;
  out.reserve(conns.size());
  for (const auto& c : conns) out.push_back(c->Info());
  return out;
}

void WireServer::ResetConnectionStats() {
  std::vector<std::shared_ptr<Connection>> conns;
  {
    absl::MutexLock lock(&impl_->conns_mu_);
    for (const auto& [fd, conn] : impl_->connections_) conns.push_back(conn);
  }
  for (const auto& c : conns) c->ResetStats();
}

}  // namespace rockeeper::rpc
