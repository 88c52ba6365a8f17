#include "rpc/wire_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
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
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "google/protobuf/arena.h"
#include "grpcpp/support/status.h"
#include "rockeeper/v1/rockeeper.grpc.pb.h"
#include "rpc/event_hub.h"
#include "rpc/grpc_service.h"
#include "rpc/jute.h"
#include "rpc/serial_executor.h"

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

void FillCreate(jute::CreateRequest&& c, v1::CreateRequest* out) {
  out->set_path(std::move(c.path));
  out->set_data(std::move(c.data));
  ToApiAcls(c.acl, out->mutable_acl());
  out->set_mode(static_cast<v1::CreateMode>(c.flags));
  if (c.ttl >= 0) out->set_ttl_ms(c.ttl);
  if (c.data_null) out->set_data_null(true);
}

// A frame written in place: BeginFrame leaves room for the length, which
// EndFrame fills in (JuteWriter::Framed would copy the payload).
void BeginFrame(jute::JuteWriter& w) { w.WriteInt(0); }
std::string EndFrame(jute::JuteWriter& w) {
  std::string frame = w.Release();
  const auto n = static_cast<uint32_t>(frame.size() - 4);
  frame[0] = static_cast<char>(n >> 24);
  frame[1] = static_cast<char>(n >> 16);
  frame[2] = static_cast<char>(n >> 8);
  frame[3] = static_cast<char>(n);
  return frame;
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

// One event loop: a thread with its epoll set, owning the sockets of the
// connections assigned to it (round-robin at accept). Each loop reads,
// parses and runs its connections' reads, so reads of different
// connections use several cores.
struct WireLoop {
  // Closed by ~Impl once every connection is closed (a connection uses
  // them only while open, under its mutex).
  int epoll_fd = -1;
  int wake_fd = -1;
  // Set by the loop's thread as it starts; read by QueuePump on any thread.
  std::atomic<std::thread::id> loop_thread{};
  std::thread thread;
  // Connections that stopped reading while the service was saturated
  // (this loop's thread only); resumed once it is not.
  std::vector<std::weak_ptr<Connection>> paused;
  // Connections whose session has events to write (the loop writes them).
  absl::Mutex pump_mu;
  std::vector<std::weak_ptr<Connection>> pumps ABSL_GUARDED_BY(pump_mu);
  // This loop's connections by fd: added by the accepting loop (before the
  // fd joins this epoll set), removed by this loop; read by cons/crst.
  mutable absl::Mutex conns_mu;
  absl::flat_hash_map<int, std::shared_ptr<Connection>> connections
      ABSL_GUARDED_BY(conns_mu);

  void Wake() {
    uint64_t one = 1;
    (void)!::write(wake_fd, &one, sizeof(one));
  }
  // Any thread; the caller holds the connection's mutex with the
  // connection open (so the fds are open).
  void QueuePump(std::weak_ptr<Connection> conn) {
    bool wake = false;
    {
      absl::MutexLock lock(&pump_mu);
      wake = pumps.empty();
      pumps.push_back(std::move(conn));
    }
    if (wake && std::this_thread::get_id() !=
                    loop_thread.load(std::memory_order_relaxed)) {
      Wake();
    }
  }
};

// What connections use of their server. Shared: a completion of the
// service may hold a connection after the server is gone; it then finds
// the connection closed and touches nothing but this.
struct WireCore {
  WireServerOptions options;
  RockeeperService* service = nullptr;
  std::unique_ptr<ServerMetrics> own_metrics;
  ServerMetrics* metrics = nullptr;
  std::atomic<int64_t> received{0};
  std::atomic<int64_t> sent{0};
  // At least one; loops[0] also accepts.
  std::vector<std::unique_ptr<WireLoop>> loops;
};

class WireServer::Impl {
 public:
  Impl(WireServerOptions options, RockeeperService* service)
      : core_(std::make_shared<WireCore>()) {
    core_->options = std::move(options);
    core_->service = service;
    if (core_->options.metrics == nullptr) {
      core_->own_metrics = std::make_unique<ServerMetrics>();
    }
    core_->metrics = core_->options.metrics != nullptr
                         ? core_->options.metrics
                         : core_->own_metrics.get();
  }
  ~Impl();

  absl::Status Listen();
  // Creates the loops' epoll sets and starts their threads.
  absl::Status StartLoops();
  void Loop(WireLoop& loop);
  // loops[0]'s thread: accepts every pending connection, each into the
  // next loop in turn.
  void AcceptAll();
  // Loop thread: writes the events of the connections that asked.
  void RunPumps(WireLoop& loop);
  // Loop thread: once the service is not saturated, the paused connections
  // read again (their buffered requests first).
  void ResumePaused(WireLoop& loop);
  // Loop thread: closes `conn` and forgets it.
  void Drop(WireLoop& loop, const std::shared_ptr<Connection>& conn);
  // Every open connection (for cons/crst).
  std::vector<std::shared_ptr<Connection>> AllConnections() const;

  const std::shared_ptr<WireCore> core_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> connections_open_{0};
  size_t next_loop_ = 0;  // loops[0]'s thread only
};

// One client connection. The loop thread reads, parses and calls the
// service, in the order the requests arrived (the service runs a session's
// requests in the order of these calls). Replies are completed by the
// service's `done` on the loop thread (reads) or a completion thread
// (writes), into their slot in request order; writes to the socket happen
// from whichever thread has output, under `mu_`, once per batch of work
// (DeferScope). Watch events come from the session's EventHub queue
// (EventSubscription), written by the loop thread.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(std::shared_ptr<WireCore> core, WireLoop* loop, int fd,
             std::string ip, std::string remote)
      : core_(std::move(core)),
        loop_(loop),
        fd_(fd),
        remote_(std::move(remote)),
        established_ms_(absl::ToUnixMillis(absl::Now())) {
    call_.client_ip = std::move(ip);
    call_.paced = true;
  }

  // Loop thread: new bytes arrived. False: close the connection.
  bool OnReadable();
  // Loop thread: reading again after a pause (see ProcessInput). False:
  // close the connection.
  bool Resume();
  // Any thread: writes pending output.
  void Flush();
  void Close();
  bool closed() {
    absl::MutexLock lock(&mu_);
    return closed_;
  }
  int fd() const { return fd_; }

  // Loop thread: writes the session's new events (asked by RequestPump).
  void PumpEvents();

  ConnectionInfo Info();
  void ResetStats();

 private:
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
  template <typename Req, typename Resp>
  using Method = void (RockeeperService::*)(const CallInfo&, const Req&, Resp*,
                                            RockeeperService::Done);

  // Loop thread: handles the complete frames in in_. While the service is
  // saturated it stops before the next request and pauses: no reading (no
  // EPOLLIN) until Resume, so the client's requests wait in its socket, as
  // ZooKeeper throttles at globalOutstandingLimit, instead of failing.
  bool ProcessInput();
  void SetInterestLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool HandleFrame(absl::string_view payload);
  bool HandleConnect(absl::string_view payload);
  bool HandleRequest(absl::string_view payload);
  bool HandleMulti(int32_t xid, jute::JuteReader& r);
  bool HandleMultiRead(int32_t xid, jute::JuteReader& r);

  ReplySlot NewSlot();
  void Complete(const ReplySlot& slot, std::string frame, uint64_t event_seq,
                bool close_after = false);
  // Calls the service's `method` with `req` (loop thread, in request
  // order); `on_reply(conn, slot, status, resp)` completes the reply once
  // the service answers (any thread).
  template <typename Req, typename Resp, typename OnReply>
  void Send(Method<Req, Resp> method, Req req, OnReply on_reply);
  // Completes `slot` with a reply of header + body (body only when err ==
  // 0, as ZooKeeper), an error reply for a failed call, or a drop.
  template <typename Body>
  void Answer(const ReplySlot& slot, const grpc::Status& s,
              const v1::ResponseHeader& h, Body body, bool close_after = false);
  std::string ErrorFrame(int32_t xid, int64_t zxid, int32_t err);

  // After a successful connect: takes the session's events from now on.
  void Attach(int64_t session_id, const std::string& password);
  // Any thread (the EventHub's notify): asks the loop to PumpEvents.
  void RequestPump();
  // Flushes at the end of this thread's batch of work, or now.
  void ScheduleFlush();
  // Moves the replies that may leave into out_.
  void MoveReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A reply left: the statistics of cons.
  void CountReply(const Reply& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::shared_ptr<WireCore> core_;
  WireLoop* const loop_;  // owned by core_: the loop that owns fd_
  const int fd_;
  const std::string remote_;  // ip:port
  const int64_t established_ms_;
  // Loop thread only: the caller of the next service call.
  CallInfo call_;
  bool check_only_next_ = false;  // the next call is checkWatches
  std::string in_;
  bool handshake_done_ = false;
  // The connection is closing (closeSession, unknown opcode); later frames
  // are ignored, as ZooKeeper does.
  bool stop_reading_ = false;
  // The request being parsed, for NewSlot.
  const char* current_op_ = "NA";
  int32_t current_xid_ = 0;
  bool current_is_connect_ = false;
  // Seq of the last event put in out_.
  uint64_t events_queued_ = 0;

  // Set once the connect succeeded (a completion thread); read by the loop.
  std::atomic<int64_t> session_id_{0};

  absl::Mutex mu_;
  std::string out_ ABSL_GUARDED_BY(mu_);
  std::deque<ReplySlot> replies_ ABSL_GUARDED_BY(mu_);
  uint64_t events_written_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool close_when_flushed_ ABSL_GUARDED_BY(mu_) = false;
  bool want_write_ ABSL_GUARDED_BY(mu_) = false;
  bool paused_ ABSL_GUARDED_BY(mu_) = false;  // not reading: see ProcessInput
  bool flush_deferred_ ABSL_GUARDED_BY(mu_) = false;
  bool pump_requested_ ABSL_GUARDED_BY(mu_) = false;
  // The connect reply is in out_: events may follow it.
  bool handshake_sent_ ABSL_GUARDED_BY(mu_) = false;
  // The session's events, once connected; reset by Close (detached) or
  // when the session ended.
  std::shared_ptr<EventSubscription> events_ ABSL_GUARDED_BY(mu_);
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
};

// Options for an arena whose first block is `block` (owned by the caller).
google::protobuf::ArenaOptions ArenaStartingIn(char* block, size_t size) {
  google::protobuf::ArenaOptions o;
  o.initial_block = block;
  o.initial_block_size = size;
  return o;
}

// Where Send keeps a call's response. A protobuf response lives on an arena
// that starts in an inline block: its sub-messages and strings cost no
// malloc each. Anything else is a plain member.
template <typename Resp,
          bool kProto = std::is_base_of_v<google::protobuf::MessageLite, Resp>>
struct ResponseStorage {
  ResponseStorage()
      : arena(ArenaStartingIn(first_block, sizeof(first_block))),
        resp(google::protobuf::Arena::CreateMessage<Resp>(&arena)) {}
  alignas(8) char first_block[512];
  google::protobuf::Arena arena;
  Resp* const resp;
};
template <typename Resp>
struct ResponseStorage<Resp, false> {
  Resp value;
  Resp* const resp = &value;
};

template <typename Req, typename Resp, typename OnReply>
void Connection::Send(Method<Req, Resp> method, Req req, OnReply on_reply) {
  // Owns the request and response until the service is done with them; the
  // closure handed to the service is one pointer (no allocation).
  struct Pending {
    Pending(std::shared_ptr<Connection> c, ReplySlot s, Req r, OnReply o)
        : conn(std::move(c)),
          slot(std::move(s)),
          req(std::move(r)),
          on_reply(std::move(o)) {}
    std::shared_ptr<Connection> conn;
    ReplySlot slot;
    Req req;
    ResponseStorage<Resp> storage;
    OnReply on_reply;
  };
  auto* p = new Pending(shared_from_this(), NewSlot(), std::move(req),
                        std::move(on_reply));
  call_.session_id = session_id_.load(std::memory_order_acquire);
  call_.check_only = check_only_next_;
  check_only_next_ = false;
  RockeeperService* const service = core_->service;
  (service->*method)(call_, p->req, p->storage.resp,
                     [p](const grpc::Status& s) {
                       p->on_reply(*p->conn, p->slot, s, *p->storage.resp);
                       delete p;
                     });
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
  ScheduleFlush();
}

void Connection::ScheduleFlush() {
  if (DeferScope::Active()) {
    {
      absl::MutexLock lock(&mu_);
      // Already deferred (here or on another thread): that flush takes this
      // output too.
      if (closed_ || flush_deferred_) return;
      flush_deferred_ = true;
    }
    DeferScope::Defer([self = shared_from_this()] {
      {
        absl::MutexLock lock(&self->mu_);
        self->flush_deferred_ = false;
      }
      self->Flush();
    });
    return;
  }
  Flush();
}

std::string Connection::ErrorFrame(int32_t xid, int64_t zxid, int32_t err) {
  jute::JuteWriter w;
  BeginFrame(w);
  jute::Write(w, jute::ReplyHeader{xid, zxid, err});
  return EndFrame(w);
}

template <typename Body>
void Connection::Answer(const ReplySlot& slot, const grpc::Status& s,
                        const v1::ResponseHeader& h, Body body,
                        bool close_after) {
  if (DropConnection(s)) {
    Complete(slot, "", 0, /*close_after=*/true);
    return;
  }
  if (!s.ok()) {
    Complete(slot, ErrorFrame(slot->xid, h.zxid(), GrpcToZk(s)), 0,
             close_after);
    return;
  }
  jute::JuteWriter w;
  BeginFrame(w);
  jute::Write(w, jute::ReplyHeader{slot->xid, h.zxid(), h.err()});
  if (h.err() == 0) body(w);
  Complete(slot, EndFrame(w), h.event_seq(), close_after);
}

// A reply without a body.
constexpr auto kNoBody = [](jute::JuteWriter&) {};

void Connection::Attach(int64_t session_id, const std::string& password) {
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
  }
  std::weak_ptr<Connection> weak = weak_from_this();
  std::shared_ptr<EventSubscription> sub =
      core_->service->AttachEvents(session_id, password, [weak] {
        if (std::shared_ptr<Connection> conn = weak.lock()) {
          conn->RequestPump();
        }
      });
  bool detach = false;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) {
      detach = true;
    } else if (sub != nullptr) {
      events_ = sub;
    } else {
      // The session ended before its events could be attached: the
      // connection ends after the connect reply.
      close_when_flushed_ = true;
    }
  }
  if (detach) {
    if (sub != nullptr) sub->Detach();
    return;
  }
  if (sub != nullptr) {
    RequestPump();  // events queued before this connection
  } else {
    ScheduleFlush();
  }
}

void Connection::RequestPump() {
  absl::MutexLock lock(&mu_);
  if (closed_ || pump_requested_) return;
  pump_requested_ = true;
  loop_->QueuePump(weak_from_this());
}

void Connection::PumpEvents() {
  std::shared_ptr<EventSubscription> sub;
  {
    absl::MutexLock lock(&mu_);
    pump_requested_ = false;
    if (closed_) return;
    // The connect reply goes first (it is ready before events attach).
    MoveReadyLocked();
    if (handshake_sent_) sub = events_;
  }
  if (sub == nullptr) {
    ScheduleFlush();
    return;
  }
  EventHub::Batch batch = sub->Take();
  std::string frames;
  uint64_t last = 0;
  int64_t count = 0;
  for (const QueuedEvent& e : batch.events) {
    if (e.seq <= events_queued_) continue;  // already written
    jute::JuteWriter w;
    BeginFrame(w);
    // ZooKeeper 3.8 sends zxid -1 in notification headers.
    jute::Write(w, jute::ReplyHeader{-1, -1, 0});
    jute::Write(w, jute::WatcherEvent{static_cast<int32_t>(e.type), 3, e.path});
    frames += EndFrame(w);
    last = e.seq;
    ++count;
  }
  // The session was closed or expired, or another connection took it over:
  // this one ends after the replies it owes.
  const bool ended = batch.end != EventHub::End::kNone;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    // Events a previous connection of the session wrote (or the hub
    // dropped) are not waited for: replies carry the session's event seq.
    events_written_ = std::max(events_written_, batch.done_through);
    if (count > 0) {
      out_ += frames;
      core_->sent.fetch_add(count, std::memory_order_relaxed);
      core_->metrics->wire_packets_sent.Add(static_cast<uint64_t>(count));
      core_->metrics->wire_watch_events_sent.Add(static_cast<uint64_t>(count));
      stat_sent_ += count;
      events_written_ = std::max(events_written_, last);
    }
    if (ended) {
      close_when_flushed_ = true;
      if (events_ == sub) events_.reset();
    }
  }
  if (last != 0) {
    events_queued_ = last;
    sub->Ack(last);
  }
  ScheduleFlush();
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
  c.session_id = session_id_.load(std::memory_order_relaxed);
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

void Connection::MoveReadyLocked() {
  // Replies in request order, each after the events it may reflect.
  while (!replies_.empty() && replies_.front()->ready &&
         replies_.front()->event_seq <= events_written_) {
    const Reply& r = *replies_.front();
    out_ += r.frame;
    if (!r.frame.empty()) {
      core_->sent.fetch_add(1, std::memory_order_relaxed);
      core_->metrics->wire_packets_sent.Add();
      CountReply(r);
    }
    if (r.is_connect) handshake_sent_ = true;
    if (r.close_after) close_when_flushed_ = true;
    replies_.pop_front();
  }
}

void Connection::Flush() {
  bool close_now = false;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    MoveReadyLocked();
    while (!out_.empty()) {
      const ssize_t n = ::send(fd_, out_.data(), out_.size(), MSG_NOSIGNAL);
      if (n > 0) {
        core_->metrics->wire_bytes_sent.Add(static_cast<uint64_t>(n));
        out_.erase(0, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (n < 0 && errno == EINTR) continue;
      close_now = true;
      break;
    }
    if (!close_now && out_.size() > core_->options.max_output_bytes) {
      close_now = true;  // a client that does not read
      core_->metrics->wire_slow_clients_closed.Add();
    }
    if (!close_now) {
      const bool want = !out_.empty();
      if (want != want_write_) {
        want_write_ = want;
        SetInterestLocked();
      }
      // Replies still owed (e.g. closeSession's, whose session ends first)
      // go out before the socket closes.
      if (out_.empty() && replies_.empty() && close_when_flushed_) {
        close_now = true;
      }
    }
  }
  if (close_now) Close();
}

void Connection::Close() {
  std::shared_ptr<EventSubscription> sub;
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return;
    closed_ = true;
    sub = std::move(events_);
    // Under the mutex: the loop thread closes the fd only after its own
    // Close, so this cannot hit a reused descriptor.
    ::shutdown(fd_, SHUT_RDWR);
  }
  if (sub != nullptr) sub->Detach();
}

void Connection::SetInterestLocked() {
  epoll_event ev{};
  ev.events = (paused_ ? 0u : static_cast<uint32_t>(EPOLLIN)) |
              (want_write_ ? static_cast<uint32_t>(EPOLLOUT) : 0u);
  ev.data.fd = fd_;
  epoll_ctl(loop_->epoll_fd, EPOLL_CTL_MOD, fd_, &ev);
}

bool Connection::Resume() {
  {
    absl::MutexLock lock(&mu_);
    if (closed_) return false;
    paused_ = false;
    SetInterestLocked();
  }
  return ProcessInput();
}

bool Connection::OnReadable() {
  char buf[64 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n > 0) {
      core_->metrics->wire_bytes_received.Add(static_cast<uint64_t>(n));
      in_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return false;  // peer closed
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (errno == EINTR) continue;
    return false;
  }
  return ProcessInput();
}

bool Connection::ProcessInput() {
  if (!handshake_done_ && in_.size() >= 4 &&
      IsFourLetterWord(absl::string_view(in_).substr(0, 4))) {
    {
      absl::MutexLock lock(&mu_);
      ++stat_received_;
    }
    core_->metrics->four_letter_words.Add();
    const std::string out = RunFourLetterWord(
        absl::string_view(in_).substr(0, 4), core_->options.four_letter_words);
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
  int64_t frames = 0;
  for (;;) {
    size_t consumed = 0;
    bool bad = false;
    auto frame =
        jute::NextFrame(absl::string_view(in_).substr(offset),
                        core_->options.max_frame_bytes + 64, &consumed, &bad);
    if (bad) {
      core_->metrics->wire_bad_frames.Add();
      return false;
    }
    if (!frame) break;
    if (stop_reading_) {  // after closeSession or an unknown opcode
      offset = in_.size();
      break;
    }
    if (handshake_done_ && core_->service->saturated()) {
      absl::MutexLock lock(&mu_);
      if (!paused_) {
        paused_ = true;
        SetInterestLocked();
        loop_->paused.push_back(weak_from_this());
        core_->metrics->wire_reads_paused.Add();
      }
      break;
    }
    core_->received.fetch_add(1, std::memory_order_relaxed);
    core_->metrics->wire_packets_received.Add();
    ++frames;
    if (!HandleFrame(*frame)) {
      core_->metrics->wire_bad_frames.Add();
      return false;
    }
    offset += consumed;
  }
  if (frames > 0) {
    absl::MutexLock lock(&mu_);
    stat_received_ += frames;
    interest_ = 1;
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
  jute::JuteReader r(payload, core_->options.max_frame_bytes);
  jute::ConnectRequest req;
  if (!jute::Read(r, &req)) return false;
  v1::ConnectRequest c;
  c.set_timeout_ms(req.timeout_ms);
  c.set_session_id(req.session_id);
  c.set_password(req.password);
  c.set_last_zxid_seen(req.last_zxid_seen);
  const std::optional<bool> read_only = req.read_only;
  Send<v1::ConnectRequest, v1::ConnectResponse>(
      &RockeeperService::Connect, std::move(c),
      [read_only](Connection& conn, const ReplySlot& slot,
                  const grpc::Status& s, const v1::ConnectResponse& resp) {
        if (!s.ok() &&
            (s.error_code() == grpc::StatusCode::FAILED_PRECONDITION ||
             DropConnection(s))) {
          // The client has seen a newer zxid, or this server has no quorum:
          // close without replying.
          conn.Complete(slot, "", 0, /*close_after=*/true);
          return;
        }
        jute::ConnectResponse out;
        if (read_only) out.read_only = false;
        const bool ok = s.ok() && resp.header().err() == 0;
        out.password = std::string(16, '\0');
        if (ok) {
          out.timeout_ms = resp.timeout_ms();
          out.session_id = resp.session_id();
          out.password = resp.password();
          conn.session_id_.store(resp.session_id(), std::memory_order_release);
          absl::MutexLock lock(&conn.mu_);
          conn.timeout_ms_ = resp.timeout_ms();
        }
        jute::JuteWriter w;
        BeginFrame(w);
        jute::Write(w, out);
        // The connect reply is ready before the events attach: it is the
        // first frame the client reads.
        conn.Complete(slot, EndFrame(w), 0, /*close_after=*/!ok);
        if (ok) conn.Attach(resp.session_id(), resp.password());
      });
  return true;
}

bool Connection::HandleRequest(absl::string_view payload) {
  jute::JuteReader r(payload, core_->options.max_frame_bytes);
  jute::RequestHeader h;
  if (!jute::Read(r, &h)) return false;
  const int32_t xid = h.xid;
  current_op_ = LastOpName(h.type);
  current_xid_ = xid;
  switch (h.type) {
    case kPing: {
      Send<v1::HeartbeatRequest, v1::HeartbeatResponse>(
          &RockeeperService::Heartbeat, {},
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::HeartbeatResponse& resp) {
            conn.Answer(slot, s, resp.header(), kNoBody,
                        resp.header().err() != 0);
          });
      return true;
    }
    case kCloseSession: {
      stop_reading_ = true;
      Send<v1::CloseRequest, v1::CloseResponse>(
          &RockeeperService::Close, {},
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::CloseResponse& resp) {
            conn.Answer(slot, s, resp.header(), kNoBody, /*close_after=*/true);
          });
      return true;
    }
    case kAuth: {
      jute::AuthPacket a;
      if (!jute::Read(r, &a)) return false;
      v1::AddAuthRequest req;
      req.set_scheme(a.scheme);
      req.set_auth(a.auth);
      Send<v1::AddAuthRequest, v1::AddAuthResponse>(
          &RockeeperService::AddAuth, std::move(req),
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::AddAuthResponse& resp) {
            if (DropConnection(s)) {
              conn.Complete(slot, "", 0, /*close_after=*/true);
              return;
            }
            const int32_t err = s.ok() ? resp.header().err() : GrpcToZk(s);
            // ZooKeeper answers {-4, 0, err} and closes on failure.
            conn.Complete(slot, conn.ErrorFrame(slot->xid, 0, err),
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
      FillCreate(std::move(c), &req);
      const bool with_stat = h.type != kCreate;
      Send<v1::CreateRequest, v1::CreateResponse>(
          &RockeeperService::Create, std::move(req),
          [with_stat](Connection& conn, const ReplySlot& slot,
                      const grpc::Status& s, const v1::CreateResponse& resp) {
            conn.Answer(slot, s, resp.header(), [&](jute::JuteWriter& w) {
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
      req.set_path(std::move(d.path));
      if (d.version != -1) req.set_version(d.version);
      Send<v1::DeleteRequest, v1::DeleteResponse>(
          &RockeeperService::Delete, std::move(req),
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::DeleteResponse& resp) {
            conn.Answer(slot, s, resp.header(), kNoBody);
          });
      return true;
    }
    case kExists: {
      jute::PathWatchRequest e;
      if (!jute::Read(r, &e)) return false;
      v1::ExistsRequest req;
      req.set_path(std::move(e.path));
      req.set_watch(e.watch);
      Send<v1::ExistsRequest, v1::ExistsResponse>(
          &RockeeperService::Exists, std::move(req),
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::ExistsResponse& resp) {
            conn.Answer(slot, s, resp.header(), [&](jute::JuteWriter& w) {
              jute::Write(w, ToJute(resp.stat()));
            });
          });
      return true;
    }
    case kGetData: {
      jute::PathWatchRequest g;
      if (!jute::Read(r, &g)) return false;
      v1::GetDataRequest req;
      req.set_path(std::move(g.path));
      req.set_watch(g.watch);
      Send<v1::GetDataRequest, v1::GetDataResponse>(
          &RockeeperService::GetData, std::move(req),
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::GetDataResponse& resp) {
            conn.Answer(slot, s, resp.header(), [&](jute::JuteWriter& w) {
              if (resp.data_null()) {
                w.WriteNullBuffer();  // ZooKeeper's null byte array
              } else {
                w.WriteBuffer(resp.data());
              }
              jute::Write(w, ToJute(resp.stat()));
            });
          });
      return true;
    }
    case kSetData: {
      jute::SetDataRequest sd;
      if (!jute::Read(r, &sd)) return false;
      v1::SetDataRequest req;
      req.set_path(std::move(sd.path));
      req.set_data(std::move(sd.data));
      if (sd.data_null) req.set_data_null(true);
      if (sd.version != -1) req.set_version(sd.version);
      Send<v1::SetDataRequest, v1::SetDataResponse>(
          &RockeeperService::SetData, std::move(req),
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::SetDataResponse& resp) {
            conn.Answer(slot, s, resp.header(), [&](jute::JuteWriter& w) {
              jute::Write(w, ToJute(resp.stat()));
            });
          });
      return true;
    }
    case kGetAcl: {
      std::string path;
      if (!r.ReadString(&path)) return false;
      v1::GetAclRequest req;
      req.set_path(std::move(path));
      Send<v1::GetAclRequest, v1::GetAclResponse>(
          &RockeeperService::GetAcl, std::move(req),
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::GetAclResponse& resp) {
            conn.Answer(slot, s, resp.header(), [&](jute::JuteWriter& w) {
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
      req.set_path(std::move(sa.path));
      ToApiAcls(sa.acl, req.mutable_acl());
      if (sa.version != -1) req.set_version(sa.version);
      Send<v1::SetAclRequest, v1::SetAclResponse>(
          &RockeeperService::SetAcl, std::move(req),
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::SetAclResponse& resp) {
            conn.Answer(slot, s, resp.header(), [&](jute::JuteWriter& w) {
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
      req.set_path(std::move(g.path));
      req.set_watch(g.watch);
      const bool with_stat = h.type == kGetChildren2;
      using Packed = RockeeperService::PackedChildrenResponse;
      Send<v1::GetChildrenRequest, Packed>(
          &RockeeperService::GetChildrenPacked, std::move(req),
          [with_stat](Connection& conn, const ReplySlot& slot,
                      const grpc::Status& s, const Packed& resp) {
            conn.Answer(slot, s, resp.header, [&](jute::JuteWriter& w) {
              // The names as the cache packed them: one copy in all.
              if (resp.children == nullptr) {
                w.WriteCount(0);
              } else {
                w.Reserve(resp.children->size() + 80);
                w.WriteEncoded(*resp.children);
              }
              if (with_stat) jute::Write(w, ToJute(resp.stat));
            });
          });
      return true;
    }
    case kSync: {
      std::string path;
      if (!r.ReadString(&path)) return false;
      v1::SyncRequest req;
      req.set_path(std::move(path));
      Send<v1::SyncRequest, v1::SyncResponse>(
          &RockeeperService::Sync, std::move(req),
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::SyncResponse& resp) {
            conn.Answer(slot, s, resp.header(), [&](jute::JuteWriter& w) {
              w.WriteString(resp.path());
            });
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
      Send<v1::SetWatchesRequest, v1::SetWatchesResponse>(
          &RockeeperService::SetWatches, std::move(req),
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::SetWatchesResponse& resp) {
            conn.Answer(slot, s, resp.header(), kNoBody);
          });
      return true;
    }
    case kAddWatch: {
      std::string path;
      int32_t mode = 0;
      if (!r.ReadString(&path) || !r.ReadInt(&mode)) return false;
      v1::AddWatchRequest req;
      req.set_path(std::move(path));
      req.set_mode(mode == 1 ? v1::PERSISTENT_RECURSIVE_WATCH
                             : v1::PERSISTENT_WATCH);
      Send<v1::AddWatchRequest, v1::AddWatchResponse>(
          &RockeeperService::AddWatch, std::move(req),
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::AddWatchResponse& resp) {
            // ZooKeeper answers an ErrorResponse{0}: the Java client reads
            // (and needs) that 4-byte body.
            conn.Answer(slot, s, resp.header(),
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
      req.set_path(std::move(path));
      req.set_type(static_cast<v1::WatcherType>(type));
      // checkWatches: the same request, but the watch stays.
      check_only_next_ = h.type == kCheckWatches;
      Send<v1::RemoveWatchesRequest, v1::RemoveWatchesResponse>(
          &RockeeperService::RemoveWatches, std::move(req),
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::RemoveWatchesResponse& resp) {
            conn.Answer(slot, s, resp.header(), kNoBody);
          });
      return true;
    }
    case kGetEphemerals: {
      std::string prefix;
      if (!r.ReadString(&prefix)) return false;
      v1::GetEphemeralsRequest req;
      req.set_prefix_path(std::move(prefix));
      Send<v1::GetEphemeralsRequest, v1::GetEphemeralsResponse>(
          &RockeeperService::GetEphemerals, std::move(req),
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::GetEphemeralsResponse& resp) {
            conn.Answer(slot, s, resp.header(), [&](jute::JuteWriter& w) {
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
      req.set_path(std::move(path));
      Send<v1::GetAllChildrenNumberRequest, v1::GetAllChildrenNumberResponse>(
          &RockeeperService::GetAllChildrenNumber, std::move(req),
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::GetAllChildrenNumberResponse& resp) {
            conn.Answer(slot, s, resp.header(), [&](jute::JuteWriter& w) {
              w.WriteInt(resp.total_number());
            });
          });
      return true;
    }
    case kWhoAmI: {
      Send<v1::WhoAmIRequest, v1::WhoAmIResponse>(
          &RockeeperService::WhoAmI, {},
          [](Connection& conn, const ReplySlot& slot, const grpc::Status& s,
             const v1::WhoAmIResponse& resp) {
            conn.Answer(slot, s, resp.header(), [&](jute::JuteWriter& w) {
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
        FillCreate(std::move(c), op->mutable_create());
        break;
      }
      case kDelete: {
        jute::PathVersionRequest d;
        if (!jute::Read(r, &d)) return false;
        op->mutable_delete_()->set_path(std::move(d.path));
        if (d.version != -1) op->mutable_delete_()->set_version(d.version);
        break;
      }
      case kSetData: {
        jute::SetDataRequest sd;
        if (!jute::Read(r, &sd)) return false;
        op->mutable_set_data()->set_path(std::move(sd.path));
        op->mutable_set_data()->set_data(std::move(sd.data));
        if (sd.data_null) op->mutable_set_data()->set_data_null(true);
        if (sd.version != -1) op->mutable_set_data()->set_version(sd.version);
        break;
      }
      case kCheck: {
        jute::PathVersionRequest c;
        if (!jute::Read(r, &c)) return false;
        op->mutable_check()->set_path(std::move(c.path));
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
  Send<v1::MultiRequest, v1::MultiResponse>(
      &RockeeperService::Multi, std::move(req),
      [types = std::move(types)](Connection& conn, const ReplySlot& slot,
                                 const grpc::Status& s,
                                 const v1::MultiResponse& resp) {
        const int32_t xid = slot->xid;
        if (!s.ok()) {
          if (DropConnection(s)) {
            conn.Complete(slot, "", 0, /*close_after=*/true);
            return;
          }
          conn.Complete(slot, conn.ErrorFrame(xid, 0, GrpcToZk(s)), 0);
          return;
        }
        jute::JuteWriter w;
        BeginFrame(w);
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
        conn.Complete(slot, EndFrame(w), resp.header().event_seq());
      });
  return true;
}

bool Connection::HandleMultiRead(int32_t xid, jute::JuteReader& r) {
  v1::MultiReadRequest req;
  std::vector<bool> children;  // per op: getChildren (else getData)
  for (int i = 0; i < 10000; ++i) {
    jute::MultiHeader mh;
    if (!jute::Read(r, &mh)) return false;
    if (mh.done) break;
    jute::PathWatchRequest p;
    if (!jute::Read(r, &p)) return false;
    auto* op = req.add_ops();
    if (mh.type == kGetChildren) {
      op->mutable_get_children()->set_path(std::move(p.path));  // watch ignored
      children.push_back(true);
    } else if (mh.type == kGetData) {
      op->mutable_get_data()->set_path(std::move(p.path));
      children.push_back(false);
    } else {
      ReplySlot slot = NewSlot();
      Complete(slot, ErrorFrame(xid, 0, kMarshallingError), 0);
      return true;
    }
  }
  Send<v1::MultiReadRequest, v1::MultiReadResponse>(
      &RockeeperService::MultiRead, std::move(req),
      [children = std::move(children)](Connection& conn, const ReplySlot& slot,
                                       const grpc::Status& s,
                                       const v1::MultiReadResponse& resp) {
        const int32_t xid = slot->xid;
        if (!s.ok()) {
          if (DropConnection(s)) {
            conn.Complete(slot, "", 0, /*close_after=*/true);
            return;
          }
          conn.Complete(slot, conn.ErrorFrame(xid, 0, GrpcToZk(s)), 0);
          return;
        }
        jute::JuteWriter w;
        BeginFrame(w);
        jute::Write(w, jute::ReplyHeader{xid, resp.header().zxid(), 0});
        for (int i = 0; i < resp.results_size(); ++i) {
          const auto& res = resp.results(i);
          if (res.err() != 0) {
            jute::Write(w, jute::MultiHeader{kError, false, res.err()});
            w.WriteInt(res.err());
          } else if (i < static_cast<int>(children.size()) && children[i]) {
            jute::Write(w, jute::MultiHeader{kGetChildren, false, 0});
            jute::WriteStringList(w, res.children());
          } else {
            jute::Write(w, jute::MultiHeader{kGetData, false, 0});
            if (res.data_null()) {
              w.WriteNullBuffer();
            } else {
              w.WriteBuffer(res.data());
            }
            jute::Write(w, ToJute(res.stat()));
          }
        }
        jute::Write(w, jute::MultiHeader{-1, true, -1});
        conn.Complete(slot, EndFrame(w), resp.header().event_seq());
      });
  return true;
}

// --- The server ---------------------------------------------------------

absl::Status WireServer::Impl::Listen() {
  listen_fd_ =
      ::socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  bool v6 =
      listen_fd_ >= 0 && core_->options.address.find(':') != std::string::npos;
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
    a->sin6_port = htons(static_cast<uint16_t>(core_->options.port));
    if (inet_pton(AF_INET6, core_->options.address.c_str(), &a->sin6_addr) !=
        1) {
      return absl::InvalidArgumentError("bad clientPortAddress " +
                                        core_->options.address);
    }
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in*>(&addr);
    a->sin_family = AF_INET;
    a->sin_port = htons(static_cast<uint16_t>(core_->options.port));
    if (inet_pton(AF_INET, core_->options.address.c_str(), &a->sin_addr) != 1) {
      return absl::InvalidArgumentError("bad clientPortAddress " +
                                        core_->options.address);
    }
    len = sizeof(*a);
  }
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
      ::listen(listen_fd_, 1024) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", core_->options.address, ":",
                     core_->options.port, ": ", std::strerror(errno)));
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof(bound);
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &blen);
  port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                   : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return absl::OkStatus();
}

absl::Status WireServer::Impl::StartLoops() {
  const int count = std::max(1, core_->options.threads);
  for (int i = 0; i < count; ++i) {
    auto loop = std::make_unique<WireLoop>();
    loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    loop->wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->epoll_fd < 0 || loop->wake_fd < 0) {
      if (loop->epoll_fd >= 0) ::close(loop->epoll_fd);
      if (loop->wake_fd >= 0) ::close(loop->wake_fd);
      return absl::InternalError(
          absl::StrCat("epoll/eventfd failed: ", std::strerror(errno)));
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = loop->wake_fd;
    epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, loop->wake_fd, &ev);
    if (i == 0) {
      ev.data.fd = listen_fd_;
      epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, listen_fd_, &ev);
    }
    core_->loops.push_back(std::move(loop));
  }
  // The loops exist before any thread runs (AcceptAll hands connections to
  // any of them).
  for (auto& loop : core_->loops) {
    WireLoop* raw = loop.get();
    raw->thread = std::thread([this, raw] {
      pthread_setname_np(pthread_self(), "rk-wire");
      Loop(*raw);
    });
  }
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

void WireServer::Impl::RunPumps(WireLoop& loop) {
  std::vector<std::weak_ptr<Connection>> pumps;
  {
    absl::MutexLock lock(&loop.pump_mu);
    pumps.swap(loop.pumps);
  }
  for (const auto& weak : pumps) {
    if (std::shared_ptr<Connection> conn = weak.lock()) conn->PumpEvents();
  }
}

void WireServer::Impl::AcceptAll() {
  for (;;) {
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    const int cfd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&addr),
                              &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) break;
    int one = 1;
    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    WireLoop& loop = *core_->loops[next_loop_];
    next_loop_ = (next_loop_ + 1) % core_->loops.size();
    auto conn = std::make_shared<Connection>(core_, &loop, cfd, PeerIp(addr),
                                             PeerRemote(addr));
    {
      absl::MutexLock lock(&loop.conns_mu);
      loop.connections[cfd] = std::move(conn);
    }
    connections_open_.fetch_add(1);
    core_->metrics->wire_connections_accepted.Add();
    // From here the owning loop's thread handles the socket.
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = cfd;
    epoll_ctl(loop.epoll_fd, EPOLL_CTL_ADD, cfd, &ev);
  }
}

void WireServer::Impl::Loop(WireLoop& loop) {
  loop.loop_thread.store(std::this_thread::get_id(), std::memory_order_relaxed);
  epoll_event events[128];
  while (!stopping_) {
    // Paused connections are retried every millisecond.
    const int n =
        epoll_wait(loop.epoll_fd, events, 128, loop.paused.empty() ? 500 : 1);
    // Replies completed during this round (reads answer inline) leave with
    // one send per connection when it ends.
    DeferScope round;
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == loop.wake_fd) {
        uint64_t v = 0;
        (void)!::read(loop.wake_fd, &v, sizeof(v));
        continue;
      }
      if (fd == listen_fd_) {
        AcceptAll();
        continue;
      }
      std::shared_ptr<Connection> conn;
      {
        absl::MutexLock lock(&loop.conns_mu);
        auto it = loop.connections.find(fd);
        if (it == loop.connections.end()) continue;
        conn = it->second;
      }
      bool keep = !conn->closed();
      if (keep && (events[i].events & EPOLLOUT)) conn->Flush();
      if (keep && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
        keep = conn->OnReadable() && !conn->closed();
      }
      if (!keep) Drop(loop, conn);
    }
    ResumePaused(loop);
    RunPumps(loop);
  }
}

void WireServer::Impl::Drop(WireLoop& loop,
                            const std::shared_ptr<Connection>& conn) {
  const int fd = conn->fd();
  conn->Close();
  epoll_ctl(loop.epoll_fd, EPOLL_CTL_DEL, fd, nullptr);
  {
    // Forgotten before the fd is closed: the accepting loop may reuse the
    // number for a new connection at once.
    absl::MutexLock lock(&loop.conns_mu);
    loop.connections.erase(fd);
  }
  ::close(fd);
  connections_open_.fetch_sub(1);
}

void WireServer::Impl::ResumePaused(WireLoop& loop) {
  if (loop.paused.empty() || core_->service->saturated()) return;
  std::vector<std::weak_ptr<Connection>> paused;
  paused.swap(loop.paused);  // a connection may pause again meanwhile
  for (const auto& weak : paused) {
    std::shared_ptr<Connection> conn = weak.lock();
    if (conn == nullptr) continue;
    if (conn->closed()) continue;  // its fd is dropped by the read path
    if (!conn->Resume() || conn->closed()) Drop(loop, conn);
  }
}

std::vector<std::shared_ptr<Connection>> WireServer::Impl::AllConnections()
    const {
  std::vector<std::shared_ptr<Connection>> out;
  for (const auto& loop : core_->loops) {
    absl::MutexLock lock(&loop->conns_mu);
    for (const auto& [fd, conn] : loop->connections) out.push_back(conn);
  }
  return out;
}

WireServer::Impl::~Impl() {
  stopping_ = true;
  for (auto& loop : core_->loops) loop->Wake();
  for (auto& loop : core_->loops) {
    if (loop->thread.joinable()) loop->thread.join();
  }
  for (auto& loop : core_->loops) {
    absl::MutexLock lock(&loop->conns_mu);
    for (auto& [fd, conn] : loop->connections) {
      conn->Close();
      ::close(fd);
    }
    loop->connections.clear();
  }
  // Every connection is closed: none uses the descriptors any more (a
  // completion still in flight finds its connection closed).
  if (listen_fd_ >= 0) ::close(listen_fd_);
  for (auto& loop : core_->loops) {
    ::close(loop->epoll_fd);
    ::close(loop->wake_fd);
  }
}

absl::StatusOr<std::unique_ptr<WireServer>> WireServer::Start(
    const WireServerOptions& options, RockeeperService* service) {
  auto impl = std::make_unique<Impl>(options, service);
  if (absl::Status s = impl->Listen(); !s.ok()) return s;
  if (absl::Status s = impl->StartLoops(); !s.ok()) return s;
  return std::unique_ptr<WireServer>(new WireServer(std::move(impl)));
}

WireServer::WireServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
WireServer::~WireServer() = default;
int WireServer::port() const { return impl_->port_; }

WireServer::Stats WireServer::stats() const {
  return Stats{impl_->connections_open_.load(), impl_->core_->received.load(),
               impl_->core_->sent.load()};
}

void WireServer::ResetStats() {
  impl_->core_->received = 0;
  impl_->core_->sent = 0;
}

std::vector<ConnectionInfo> WireServer::connections() const {
  const std::vector<std::shared_ptr<Connection>> conns =
      impl_->AllConnections();
  std::vector<ConnectionInfo> out;
  out.reserve(conns.size());
  for (const auto& c : conns) out.push_back(c->Info());
  return out;
}

void WireServer::ResetConnectionStats() {
  for (const auto& c : impl_->AllConnections()) c->ResetStats();
}

}  // namespace rockeeper::rpc
