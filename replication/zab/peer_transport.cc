#include "replication/zab/peer_transport.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/server_posix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/crc32c.h"
#include "engine/snapshot.h"
#include "replication/zab/codec.h"
#include "rockeeper/peer/v1/peer_service.grpc.pb.h"

namespace rockeeper::zab {
namespace {

enum Kind { kQuorum = 0, kElection = 1 };
constexpr std::array<const char*, 2> kKindName = {"quorum", "election"};

// How often an idle sender looks at its channel, so that a peer that went
// away is noticed (and reported) without waiting for the next message.
constexpr absl::Duration kIdleCheck = absl::Milliseconds(100);
// Slice for blocking gRPC waits, so that Stop is noticed promptly.
constexpr absl::Duration kWaitSlice = absl::Milliseconds(50);
// Transport keepalive: finds half-open connections (a peer's host gone
// without a FIN) while the ZAB core's own pings are not flowing.
constexpr int kKeepaliveMs = 10'000;
// A sender packs what is queued for a peer into batches of about this many
// bytes (one message alone may be larger, up to kMaxMessageBytes).
constexpr size_t kBatchBytes = 1 << 20;
// Framing of a batch around a message of kMaxMessageBytes (tag + varint).
constexpr size_t kBatchSlackBytes = 16;
constexpr char kStreamMethod[] = "/rockeeper.peer.v1.Peer/Stream";
constexpr char kStreamBatchMethod[] = "/rockeeper.peer.v1.Peer/StreamBatch";
constexpr int kKeepaliveTimeoutMs = 5'000;

std::string HostPort(const std::string& host, int port) {
  const bool v6 = host.find(':') != std::string::npos && host[0] != '[';
  return v6 ? absl::StrCat("[", host, "]:", port)
            : absl::StrCat(host, ":", port);
}

// Raw streams (codec.h). An accepted connection that sends nothing is
// closed after this long; so is one whose hello is incomplete.
constexpr int kSniffTimeoutMs = 10'000;
// Incoming connections served at once (raw streams, connections waiting
// for their first byte); more are closed at once.
constexpr size_t kMaxIncomingConns = 256;
// How much a raw stream reader asks the kernel for at a time.
constexpr size_t kRawReadBytes = 64 << 10;
// Flush writes inline only up to this many queued bytes per peer: a large
// backlog goes to the sender thread.
constexpr size_t kInlineFlushBytes = 256 << 10;
// TCP keepalive of raw streams: as kKeepaliveMs / kKeepaliveTimeoutMs.
constexpr int kKeepaliveIdleS = kKeepaliveMs / 1000;
constexpr int kKeepaliveIntervalS = 2;
constexpr int kKeepaliveProbes = 3;

// The addresses `host`:`port` resolves to (TCP). Empty if none.
std::vector<std::pair<sockaddr_storage, socklen_t>> Resolve(
    const std::string& host, int port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* res = nullptr;
  std::vector<std::pair<sockaddr_storage, socklen_t>> out;
  const std::string service = std::to_string(port);
  if (getaddrinfo(host.c_str(), service.c_str(), &hints, &res) != 0) {
    return out;
  }
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    sockaddr_storage ss{};
    std::memcpy(&ss, a->ai_addr, a->ai_addrlen);
    out.emplace_back(ss, a->ai_addrlen);
  }
  freeaddrinfo(res);
  return out;
}

void SetSocketOptions(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &kKeepaliveIdleS,
             sizeof(kKeepaliveIdleS));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &kKeepaliveIntervalS,
             sizeof(kKeepaliveIntervalS));
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &kKeepaliveProbes,
             sizeof(kKeepaliveProbes));
}

void SetBlocking(int fd, bool blocking) {
  const int flags = fcntl(fd, F_GETFL, 0);
  fcntl(fd, F_SETFL, blocking ? (flags & ~O_NONBLOCK) : (flags | O_NONBLOCK));
}

// Writes all of `bytes` (blocking). False on any error (the peer is gone,
// or Stop shut the socket down).
bool SendAll(int fd, std::string_view bytes, bool more) {
  while (!bytes.empty()) {
    const ssize_t n = send(fd, bytes.data(), bytes.size(),
                           MSG_NOSIGNAL | (more ? MSG_MORE : 0));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

enum class RecvEnd { kComplete, kTimeout, kClosed };
// Reads exactly `n` bytes into `out` within `timeout_ms`, in poll slices of
// kWaitSlice. kClosed: EOF or an error (e.g. Stop shut the socket down).
RecvEnd RecvExactly(int fd, size_t n, int timeout_ms, std::string* out) {
  out->clear();
  const absl::Time deadline = absl::Now() + absl::Milliseconds(timeout_ms);
  char buf[16];
  while (out->size() < n) {
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return RecvEnd::kTimeout;
    pollfd p{fd, POLLIN, 0};
    const int r = poll(&p, 1,
                       static_cast<int>(absl::ToInt64Milliseconds(
                           std::min(kWaitSlice, left))));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return RecvEnd::kClosed;
    if (r == 0) continue;
    const ssize_t got =
        recv(fd, buf, std::min(sizeof(buf), n - out->size()), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return RecvEnd::kClosed;
    out->append(buf, static_cast<size_t>(got));
  }
  return RecvEnd::kComplete;
}

constexpr size_t kSnapshotChunkBytes = 1 << 20;

// Streams the files of `dir` (a snapshot: a flat RocksDB checkpoint).
grpc::Status ServeSnapshot(const std::string& dir, grpc::ServerContext* ctx,
                           grpc::ServerWriter<peer::v1::SnapshotChunk>* out) {
  namespace fs = std::filesystem;
  // Every file is opened before the first byte is sent: the snapshot thread
  // may purge this snapshot meanwhile, and an open file stays readable.
  struct SourceFile {
    std::string name;
    std::ifstream in;
    int64_t size = 0;
  };
  std::vector<SourceFile> files;
  std::error_code ec;
  for (auto it = fs::directory_iterator(dir, ec);
       !ec && it != fs::directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    SourceFile f;
    f.name = it->path().filename().string();
    f.in.open(it->path(), std::ios::binary);
    f.size = static_cast<int64_t>(fs::file_size(it->path(), ec));
    if (!f.in || ec) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("cannot read ", it->path().string()));
    }
    files.push_back(std::move(f));
  }
  if (ec || files.empty()) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("no snapshot at ", dir));
  }
  std::string buf(kSnapshotChunkBytes, '\0');
  for (SourceFile& f : files) {
    int64_t offset = 0;
    do {
      if (ctx->IsCancelled()) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      }
      f.in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      const int64_t n = static_cast<int64_t>(f.in.gcount());
      peer::v1::SnapshotChunk chunk;
      chunk.set_file(f.name);
      chunk.set_offset(offset);
      chunk.set_data(buf.data(), static_cast<size_t>(n));
      chunk.set_file_size(f.size);
      chunk.set_crc32c(engine::Crc32c(buf.data(), static_cast<size_t>(n)));
      if (!out->Write(chunk)) {
        return grpc::Status(grpc::StatusCode::CANCELLED, "receiver went away");
      }
      offset += n;
    } while (offset < f.size && f.in);
    if (offset != f.size) {
      return grpc::Status(
          grpc::StatusCode::DATA_LOSS,
          absl::StrCat(dir, "/", f.name, " changed while sent"));
    }
  }
  return grpc::Status::OK;
}

// Receives a snapshot into `target_dir` (written as <target_dir>.incoming,
// fsynced, then renamed), checking names, offsets and sizes.
absl::Status ReceiveSnapshot(peer::v1::Peer::Stub& stub, int64_t zxid,
                             const std::string& target_dir,
                             absl::Duration timeout) {
  namespace fs = std::filesystem;
  const fs::path tmp = target_dir + ".incoming";
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) return absl::InternalError(absl::StrCat("create ", tmp.string()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  peer::v1::FetchSnapshotRequest req;
  req.set_zxid(zxid);
  std::unique_ptr<grpc::ClientReader<peer::v1::SnapshotChunk>> reader =
      stub.FetchSnapshot(&ctx, req);
  std::map<std::string, int64_t> sizes;    // declared size per file
  std::map<std::string, int64_t> written;  // bytes written per file
  std::ofstream out;
  std::string current;
  peer::v1::SnapshotChunk chunk;
  absl::Status bad;
  while (bad.ok() && reader->Read(&chunk)) {
    const std::string& name = chunk.file();
    if (name.empty() || name.size() > 255 || name == "." || name == ".." ||
        name.find('/') != std::string::npos || chunk.file_size() < 0) {
      bad = absl::DataLossError("bad file name or size in a snapshot chunk");
      break;
    }
    if (name != current) {
      if (sizes.count(name) > 0) {
        bad = absl::DataLossError(absl::StrCat(name, " sent twice"));
        break;
      }
      out.close();
      out.open(tmp / name, std::ios::binary | std::ios::trunc);
      current = name;
      sizes[name] = chunk.file_size();
    }
    if (engine::Crc32c(chunk.data().data(), chunk.data().size()) !=
        chunk.crc32c()) {
      bad = absl::DataLossError(absl::StrCat("checksum mismatch in ", name,
                                             " at offset ", chunk.offset()));
      break;
    }
    if (chunk.offset() != written[name] ||
        written[name] + static_cast<int64_t>(chunk.data().size()) >
            sizes[name]) {
      bad = absl::DataLossError(absl::StrCat("bad chunk of ", name));
      break;
    }
    out.write(chunk.data().data(),
              static_cast<std::streamsize>(chunk.data().size()));
    written[name] += static_cast<int64_t>(chunk.data().size());
    if (!out) bad = absl::InternalError(absl::StrCat("write ", name));
  }
  out.close();
  if (!bad.ok()) ctx.TryCancel();
  grpc::Status st = reader->Finish();
  if (bad.ok() && !st.ok()) {
    bad = absl::UnavailableError(
        absl::StrCat("snapshot transfer: ", st.error_message()));
  }
  for (const auto& [name, size] : sizes) {
    if (bad.ok() && written[name] != size) {
      bad = absl::DataLossError(absl::StrCat(name, " is incomplete"));
    }
  }
  if (bad.ok() && sizes.empty()) bad = absl::DataLossError("empty snapshot");
  if (bad.ok()) {
    // Durable before it is used: fsync every file and the directory.
    for (const auto& [name, size] : sizes) {
      const int fd = ::open((tmp / name).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::fsync(fd) != 0) bad = absl::InternalError("fsync");
      if (fd >= 0) ::close(fd);
    }
    fs::rename(tmp, target_dir, ec);
    if (bad.ok() && ec) bad = absl::InternalError(ec.message());
  }
  if (!bad.ok()) fs::remove_all(tmp, ec);
  return bad;
}

}  // namespace

class PeerTransport::Impl {
 public:
  Impl(PeerTransportOptions options, ReceiveFn on_receive,
       DisconnectFn on_disconnect, RawFrameFn on_raw_frame)
      : options_(std::move(options)),
        on_receive_(std::move(on_receive)),
        on_disconnect_(std::move(on_disconnect)),
        on_raw_frame_(std::move(on_raw_frame)),
        services_{Service(this, kQuorum), Service(this, kElection)} {}

  absl::Status Start();
  void Send(Message m, bool flush);
  void Flush();
  absl::Status FetchSnapshot(int64_t from, int64_t zxid,
                             const std::string& target_dir,
                             absl::Duration timeout) {
    auto it = options_.peers.find(from);
    if (it == options_.peers.end() || from == options_.my_id) {
      return absl::InvalidArgumentError(absl::StrCat("no peer ", from));
    }
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(static_cast<int>(kMaxMessageBytes));
    auto channel = grpc::CreateCustomChannel(
        HostPort(it->second.host, it->second.quorum_port),
        grpc::InsecureChannelCredentials(), args);
    auto stub = peer::v1::Peer::NewStub(channel);
    return ReceiveSnapshot(*stub, zxid, target_dir, timeout);
  }
  void Stop();
  PeerTransportStats Stats() const;

 private:
  // The receiving end of one incoming stream.
  class Reader : public grpc::ServerReadReactor<grpc::ByteBuffer> {
   public:
    Reader(Impl* impl, Kind kind, bool batched, grpc::ByteBuffer* response)
        : impl_(impl), kind_(kind), batched_(batched), response_(response) {
      StartRead(&buf_);
    }
    void OnReadDone(bool ok) override {
      if (!ok) {  // the sender closed or cancelled the stream
        peer::v1::StreamSummary summary;
        summary.set_received(received_);
        grpc::Slice slice(summary.SerializeAsString());
        *response_ = grpc::ByteBuffer(&slice, 1);
        Finish(grpc::Status::OK);
        return;
      }
      grpc::Status status = AcceptBuffer();
      buf_.Clear();
      if (!status.ok()) {
        Finish(status);
        return;
      }
      StartRead(&buf_);
    }
    void OnDone() override { impl_->ReaderDone(this); }
    bool done = false;  // guarded by impl_->mu_

   private:
    // Passes the message(s) of buf_ to Accept, in order.
    grpc::Status AcceptBuffer() {
      std::vector<grpc::Slice> slices;
      if (!buf_.Dump(&slices).ok()) return impl_->Reject("unreadable message");
      bytes_.clear();
      for (const grpc::Slice& s : slices) {
        bytes_.append(reinterpret_cast<const char*>(s.begin()), s.size());
      }
      if (!batched_) {
        ++received_;
        return impl_->Accept(kind_, bytes_, from_);
      }
      absl::StatusOr<std::vector<std::string_view>> messages =
          SplitBatch(bytes_);
      if (!messages.ok()) {
        return impl_->Reject(std::string(messages.status().message()));
      }
      for (std::string_view m : *messages) {
        grpc::Status status = impl_->Accept(kind_, m, from_);
        if (!status.ok()) return status;
        ++received_;
      }
      return grpc::Status::OK;
    }

    Impl* const impl_;
    const Kind kind_;
    const bool batched_;  // Peer.StreamBatch, else Peer.Stream
    grpc::ByteBuffer* const response_;
    grpc::ByteBuffer buf_;
    std::string bytes_;            // buf_ flattened, reused
    std::optional<int64_t> from_;  // the stream's first `from`
    int64_t received_ = 0;
  };

  // Serves Peer.Stream and Peer.StreamBatch on one port, on raw bytes so
  // that every message goes through zab::DecodeMessage.
  class Service : public peer::v1::Peer::WithRawCallbackMethod_Stream<
                      peer::v1::Peer::WithRawCallbackMethod_StreamBatch<
                          peer::v1::Peer::Service>> {
   public:
    Service(Impl* impl, Kind kind) : impl_(impl), kind_(kind) {}
    grpc::ServerReadReactor<grpc::ByteBuffer>* Stream(
        grpc::CallbackServerContext* /*ctx*/,
        grpc::ByteBuffer* response) override {
      return impl_->NewReader(kind_, /*batched=*/false, response);
    }
    grpc::ServerReadReactor<grpc::ByteBuffer>* StreamBatch(
        grpc::CallbackServerContext* /*ctx*/,
        grpc::ByteBuffer* response) override {
      return impl_->NewReader(kind_, /*batched=*/true, response);
    }
    grpc::Status FetchSnapshot(
        grpc::ServerContext* ctx, const peer::v1::FetchSnapshotRequest* req,
        grpc::ServerWriter<peer::v1::SnapshotChunk>* writer) override {
      if (kind_ != kQuorum || impl_->options_.snapshot_dir.empty()) {
        return grpc::Status(grpc::StatusCode::NOT_FOUND,
                            "no snapshots served here");
      }
      return ServeSnapshot(impl_->options_.snapshot_dir + "/" +
                               engine::SnapshotStore::NameForZxid(req->zxid()),
                           ctx, writer);
    }

   private:
    Impl* const impl_;
    const Kind kind_;
  };

  // One outgoing stream, to (peer, kind), with its queue and sender thread.
  struct Link {
    int64_t peer = 0;
    Kind kind = kQuorum;
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<peer::v1::Peer::Stub> stub;
    std::thread thread;
    absl::Mutex mu;
    absl::CondVar cv;
    std::deque<std::string> queue ABSL_GUARDED_BY(mu);  // encoded messages
    int64_t queued_bytes ABSL_GUARDED_BY(mu) = 0;
    bool stop ABSL_GUARDED_BY(mu) = false;
    grpc::ClientContext* call ABSL_GUARDED_BY(mu) = nullptr;  // open stream
    int fd ABSL_GUARDED_BY(mu) = -1;  // the raw stream's socket, if any
    // The raw stream is past its hello (StreamRaw runs).
    bool raw_ready ABSL_GUARDED_BY(mu) = false;
    // Someone writes to the raw socket outside mu: the link's thread. Flush
    // writes inline (under mu) only while nobody does.
    bool writing ABSL_GUARDED_BY(mu) = false;
    // The unwritten tail of a frame Flush began, with the number of
    // messages in it: written by the link's thread before anything else.
    std::string partial ABSL_GUARDED_BY(mu);
    int64_t partial_messages ABSL_GUARDED_BY(mu) = 0;
    // Messages queued since the last Flush without a wake-up of the thread.
    bool unflushed ABSL_GUARDED_BY(mu) = false;
    // The peer answered StreamBatch with UNIMPLEMENTED (an older server):
    // use Stream, one message per gRPC message. Only the link's thread.
    bool legacy = false;
  };

  grpc::ServerReadReactor<grpc::ByteBuffer>* NewReader(
      Kind kind, bool batched, grpc::ByteBuffer* response);
  void ReaderDone(Reader* reader);
  // Checks one encoded message of a stream and passes it to on_receive_.
  // With `collect`, the message is appended there instead of passed on.
  grpc::Status Accept(Kind kind, std::string_view bytes,
                      std::optional<int64_t>& stream_from,
                      std::vector<Message>* collect = nullptr);
  grpc::Status Reject(std::string why);

  // Incoming connections on the quorum port (raw streams or gRPC).
  struct Conn {
    int fd = -1;  // guarded by mu_; -1 once closed or handed to gRPC
    std::thread thread;
    bool done = false;  // guarded by mu_
  };
  absl::Status ListenQuorum(const PeerAddress& my);
  void AcceptLoop();
  // Tells a raw stream from a gRPC connection by its first byte and serves
  // it, or hands it to servers_[kQuorum].
  void ServeConn(Conn* conn);
  void ServeRaw(int fd);
  // Closes conn->fd (unless it went to gRPC); marks the connection done.
  void EndConn(Conn* conn);

  void RunLink(Link& link);
  enum class RawConnect { kConnected, kFailed, kNotRaw };
  // Dials link.peer's quorum port and says the raw hello; kNotRaw if the
  // peer answered with anything but the hello (an older, gRPC-only server).
  RawConnect ConnectRaw(Link& link, int* fd_out);
  void StreamRaw(Link& link, int fd);
  // As TakeQueued for a raw stream: `head` gets the partial frame Flush
  // left, `out` the messages to frame after it; marks the link writing.
  bool TakeRaw(Link& link, std::string& head, int64_t& head_messages,
               std::vector<std::string>& out, bool& more);
  // Writes what is queued for `link` now, from the calling thread, if its
  // raw stream is idle; else wakes the link's thread.
  void FlushLink(Link& link);
  bool Connect(Link& link);
  void StreamTo(Link& link);
  // Moves what `link` should send next into `out` (a batch's worth, or one
  // message for a legacy peer), waiting up to kIdleCheck for something.
  // Returns false if the link is stopping; `more`: messages remain queued.
  bool TakeQueued(Link& link, std::vector<std::string>& out, bool& more);
  bool Stopped(Link& link);
  void DropQueue(Link& link);

  const PeerTransportOptions options_;
  const ReceiveFn on_receive_;
  const DisconnectFn on_disconnect_;
  const RawFrameFn on_raw_frame_;
  std::array<Service, 2> services_;
  std::array<std::unique_ptr<grpc::Server>, 2> servers_;  // after services_
  // Fixed after Start: peer -> its two links.
  std::map<int64_t, std::array<std::unique_ptr<Link>, 2>> links_;
  std::atomic<bool> stopping_{false};
  absl::once_flag stop_once_;

  absl::Mutex mu_;
  std::list<std::unique_ptr<Reader>> readers_ ABSL_GUARDED_BY(mu_);
  int live_readers_ ABSL_GUARDED_BY(mu_) = 0;
  std::list<std::unique_ptr<Conn>> conns_ ABSL_GUARDED_BY(mu_);

  std::vector<int> listen_fds_;  // the quorum port; fixed after Start
  std::thread acceptor_;
  std::atomic<int64_t> raw_streams_in_{0};
  std::atomic<int64_t> open_raw_streams_{0};
  std::atomic<int64_t> flushed_inline_{0};
  std::atomic<int64_t> partial_flushes_{0};

  std::array<std::atomic<int64_t>, 2> sent_{};
  std::array<std::atomic<int64_t>, 2> received_{};
  std::atomic<int64_t> dropped_{0};
  std::atomic<int64_t> rejected_streams_{0};
  std::atomic<int64_t> disconnects_{0};
  std::atomic<int64_t> open_streams_{0};
};

absl::Status PeerTransport::Impl::Start() {
  auto me = options_.peers.find(options_.my_id);
  if (me == options_.peers.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("my_id ", options_.my_id, " is not among the peers"));
  }
  for (const auto& [id, a] : options_.peers) {
    for (int port : {a.quorum_port, a.election_port}) {
      if (a.host.empty() || port <= 0 || port > 65535) {
        return absl::InvalidArgumentError(absl::StrCat(
            "peer ", id, ": bad address ", HostPort(a.host, port)));
      }
    }
  }
  if (options_.initial_backoff_ms <= 0 ||
      options_.max_backoff_ms < options_.initial_backoff_ms ||
      options_.connect_timeout_ms <= 0 || options_.max_queue_bytes <= 0) {
    return absl::InvalidArgumentError("bad peer transport timing or bounds");
  }
  const PeerAddress& my = me->second;
  for (Kind kind : {kQuorum, kElection}) {
    const std::string addr =
        HostPort(my.host, kind == kQuorum ? my.quorum_port : my.election_port);
    grpc::ServerBuilder builder;
    int bound = 0;
    // The quorum port is ours (ListenQuorum): gRPC gets the connections
    // that are not raw streams.
    if (kind == kElection) {
      builder.AddListeningPort(addr, grpc::InsecureServerCredentials(), &bound);
    }
    builder.SetMaxReceiveMessageSize(
        static_cast<int>(kMaxMessageBytes + kBatchSlackBytes));
    // Two servers must never share a port: a restarted server would split
    // the traffic with a stale one.
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.AddChannelArgument(
        GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
        kKeepaliveMs / 2);
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_PING_STRIKES, 0);
    builder.RegisterService(&services_[kind]);
    servers_[kind] = builder.BuildAndStart();
    if (servers_[kind] == nullptr || (kind == kElection && bound == 0)) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", kKindName[kind], " port ", addr));
    }
  }
  if (absl::Status s = ListenQuorum(my); !s.ok()) return s;
  acceptor_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "rk-peer-accept");
    AcceptLoop();
  });
  for (const auto& [id, a] : options_.peers) {
    if (id == options_.my_id) continue;
    for (Kind kind : {kQuorum, kElection}) {
      auto link = std::make_unique<Link>();
      link->peer = id;
      link->kind = kind;
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
                  static_cast<int>(options_.initial_backoff_ms));
      args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
                  static_cast<int>(options_.initial_backoff_ms));
      args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
                  static_cast<int>(options_.max_backoff_ms));
      // One connection per link, even between transports in one process.
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveMs);
      args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveTimeoutMs);
      args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
      link->channel = grpc::CreateCustomChannel(
          HostPort(a.host, kind == kQuorum ? a.quorum_port : a.election_port),
          grpc::InsecureChannelCredentials(), args);
      link->stub = peer::v1::Peer::NewStub(link->channel);
      links_[id][kind] = std::move(link);
    }
  }
  for (auto& [id, pair] : links_) {
    for (auto& link : pair) {
      Link* l = link.get();
      l->thread = std::thread([this, l] {
        pthread_setname_np(pthread_self(), "rk-peer-link");
        RunLink(*l);
      });
    }
  }
  return absl::OkStatus();
}

void PeerTransport::Impl::Send(Message m, bool flush) {
  auto it = links_.find(m.to);
  if (it == links_.end() || stopping_) {
    ++dropped_;
    return;
  }
  Link& link = *it->second[m.type == MsgType::kVote ? kElection : kQuorum];
  std::string bytes = EncodeMessage(m);
  const int64_t size = static_cast<int64_t>(bytes.size());
  absl::MutexLock lock(&link.mu);
  if (link.stop || bytes.size() > kMaxMessageBytes ||
      link.queued_bytes + size > options_.max_queue_bytes) {
    ++dropped_;
    return;
  }
  link.queued_bytes += size;
  link.queue.push_back(std::move(bytes));
  if (flush) {
    link.cv.Signal();
  } else {
    link.unflushed = true;
  }
}

void PeerTransport::Impl::Flush() {
  for (auto& [id, pair] : links_) {
    for (auto& link : pair) FlushLink(*link);
  }
}

void PeerTransport::Impl::FlushLink(Link& link) {
  absl::MutexLock lock(&link.mu);
  if (!link.unflushed) return;
  link.unflushed = false;
  if (link.queue.empty()) return;  // the thread took it meanwhile
  if (!link.raw_ready || link.writing || !link.partial.empty() || link.stop ||
      link.queued_bytes > static_cast<int64_t>(kInlineFlushBytes)) {
    link.cv.Signal();
    return;
  }
  // Saves the wake-up of the link's thread on the path of every proposal
  // and ack: one nonblocking write of everything queued, as one frame.
  std::string frame(kFrameHeaderBytes, '\0');
  const int64_t count = static_cast<int64_t>(link.queue.size());
  for (const std::string& m : link.queue) AppendToBatch(m, &frame);
  FillFrameHeader(&frame);
  link.queue.clear();
  link.queued_bytes = 0;
  const ssize_t n =
      send(link.fd, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n == static_cast<ssize_t>(frame.size())) {
    sent_[link.kind] += count;
    flushed_inline_ += count;
    return;
  }
  ++partial_flushes_;
  // The rest (all of it after an error: the thread's write then fails and
  // counts the messages dropped) goes first when the thread writes next.
  link.partial = frame.substr(n > 0 ? static_cast<size_t>(n) : 0);
  link.partial_messages = count;
  link.cv.Signal();
}

void PeerTransport::Impl::Stop() {
  absl::call_once(stop_once_, [this] {
    stopping_ = true;
    for (auto& [id, pair] : links_) {
      for (auto& link : pair) {
        absl::MutexLock lock(&link->mu);
        link->stop = true;
        if (link->call != nullptr) link->call->TryCancel();
        if (link->fd >= 0) shutdown(link->fd, SHUT_RDWR);
        link->cv.Signal();
      }
    }
    for (auto& [id, pair] : links_) {
      for (auto& link : pair) {
        if (link->thread.joinable()) link->thread.join();
      }
    }
    // Incoming raw streams and connections still being told apart: their
    // threads see EOF at once. gRPC is shut down after them, as they may
    // hand it a connection until they end.
    if (acceptor_.joinable()) acceptor_.join();
    for (int fd : listen_fds_) close(fd);
    std::list<std::unique_ptr<Conn>> conns;
    {
      absl::MutexLock lock(&mu_);
      for (auto& conn : conns_) {
        if (conn->fd >= 0) shutdown(conn->fd, SHUT_RDWR);
      }
      conns.swap(conns_);
    }
    for (auto& conn : conns) conn->thread.join();
    // Cancels the incoming streams at once; their readers then finish.
    for (auto& server : servers_) {
      if (server != nullptr) server->Shutdown(absl::ToChronoTime(absl::Now()));
    }
    for (auto& server : servers_) {
      if (server != nullptr) server->Wait();
    }
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](int* live) { return *live == 0; }, &live_readers_));
      readers_.clear();
    }
    for (auto& server : servers_) server.reset();  // frees the ports
  });
}

PeerTransportStats PeerTransport::Impl::Stats() const {
  PeerTransportStats s;
  s.sent_quorum = sent_[kQuorum];
  s.sent_election = sent_[kElection];
  s.received_quorum = received_[kQuorum];
  s.received_election = received_[kElection];
  s.dropped = dropped_;
  s.rejected_streams = rejected_streams_;
  s.disconnects = disconnects_;
  s.open_streams = open_streams_;
  s.raw_streams_in = raw_streams_in_;
  s.open_raw_streams = open_raw_streams_;
  s.flushed_inline = flushed_inline_;
  s.partial_flushes = partial_flushes_;
  return s;
}

grpc::ServerReadReactor<grpc::ByteBuffer>* PeerTransport::Impl::NewReader(
    Kind kind, bool batched, grpc::ByteBuffer* response) {
  auto reader = std::make_unique<Reader>(this, kind, batched, response);
  Reader* r = reader.get();
  absl::MutexLock lock(&mu_);
  // Readers are owned here and freed once gRPC is done with them.
  readers_.remove_if([](const std::unique_ptr<Reader>& x) { return x->done; });
  readers_.push_back(std::move(reader));
  ++live_readers_;
  return r;
}

void PeerTransport::Impl::ReaderDone(Reader* reader) {
  absl::MutexLock lock(&mu_);
  reader->done = true;
  --live_readers_;
}

grpc::Status PeerTransport::Impl::Reject(std::string why) {
  ++rejected_streams_;
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(why));
}

grpc::Status PeerTransport::Impl::Accept(Kind kind, std::string_view bytes,
                                         std::optional<int64_t>& stream_from,
                                         std::vector<Message>* collect) {
  if (stopping_) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "stopping");
  absl::StatusOr<Message> m = DecodeMessage(bytes);
  if (!m.ok()) return Reject(std::string(m.status().message()));
  if (m->to != options_.my_id) {
    return Reject(
        absl::StrCat("message for ", m->to, " sent to ", options_.my_id));
  }
  if (m->from == options_.my_id || !links_.contains(m->from)) {
    return Reject(absl::StrCat("message from unknown peer ", m->from));
  }
  if (stream_from.has_value() && *stream_from != m->from) {
    return Reject(absl::StrCat("stream from ", *stream_from,
                               " carries a message from ", m->from));
  }
  if ((m->type == MsgType::kVote) != (kind == kElection)) {
    return Reject(absl::StrCat(MsgTypeName(m->type), " on the ",
                               kKindName[kind], " port"));
  }
  stream_from = m->from;
  ++received_[kind];
  if (collect != nullptr) {
    collect->push_back(*std::move(m));
  } else if (on_receive_) {
    on_receive_(*std::move(m));
  }
  return grpc::Status::OK;
}

absl::Status PeerTransport::Impl::ListenQuorum(const PeerAddress& my) {
  const std::string addr = HostPort(my.host, my.quorum_port);
  for (const auto& [ss, len] : Resolve(my.host, my.quorum_port, true)) {
    const int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    // SO_REUSEADDR only: a restarted server must not wait out TIME_WAIT,
    // and two live servers must never share the port.
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6) {
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, reinterpret_cast<const sockaddr*>(&ss), len) != 0 ||
        listen(fd, SOMAXCONN) != 0) {
      const int err = errno;
      close(fd);
      // An address family this host lacks (e.g. "localhost" also naming
      // ::1 without IPv6) is skipped, as gRPC does; a taken port is not.
      if (err == EADDRNOTAVAIL || err == EAFNOSUPPORT) continue;
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on quorum port ", addr, ": ", std::strerror(err)));
    }
    listen_fds_.push_back(fd);
  }
  if (listen_fds_.empty()) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on quorum port ", addr, ": no address"));
  }
  return absl::OkStatus();
}

void PeerTransport::Impl::AcceptLoop() {
  std::vector<pollfd> polls;
  for (int fd : listen_fds_) polls.push_back(pollfd{fd, POLLIN, 0});
  while (!stopping_) {
    const int r = poll(polls.data(), polls.size(),
                       static_cast<int>(absl::ToInt64Milliseconds(kWaitSlice)));
    if (r <= 0) continue;
    for (const pollfd& p : polls) {
      if ((p.revents & POLLIN) == 0) continue;
      const int fd = accept4(p.fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      absl::MutexLock lock(&mu_);
      for (auto it = conns_.begin(); it != conns_.end();) {
        if ((*it)->done) {
          (*it)->thread.join();  // it has left EndConn: no lock needed
          it = conns_.erase(it);
        } else {
          ++it;
        }
      }
      if (stopping_ || conns_.size() >= kMaxIncomingConns) {
        close(fd);
        continue;
      }
      auto conn = std::make_unique<Conn>();
      conn->fd = fd;
      Conn* c = conn.get();
      conns_.push_back(std::move(conn));
      c->thread = std::thread([this, c] {
        pthread_setname_np(pthread_self(), "rk-peer-in");
        ServeConn(c);
      });
    }
  }
}

void PeerTransport::Impl::EndConn(Conn* conn) {
  absl::MutexLock lock(&mu_);
  if (conn->fd >= 0) close(conn->fd);
  conn->fd = -1;
  conn->done = true;
}

void PeerTransport::Impl::ServeConn(Conn* conn) {
  int fd;
  {
    absl::MutexLock lock(&mu_);
    fd = conn->fd;
  }
  // The first byte tells a raw stream from gRPC (HTTP/2 begins with 'P').
  std::string first;
  pollfd p{fd, POLLIN, 0};
  const absl::Time deadline = absl::Now() + absl::Milliseconds(kSniffTimeoutMs);
  while (!stopping_ && absl::Now() < deadline) {
    const int r =
        poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(kWaitSlice)));
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;
    char c;
    const ssize_t n = recv(fd, &c, 1, MSG_PEEK);
    if (n < 0 && errno == EINTR) continue;
    if (n == 1) first.assign(1, c);
    break;
  }
  if (first.empty() || stopping_) {
    EndConn(conn);
    return;
  }
  if (first[0] != kRawStreamHello[0]) {
    bool hand_over = false;
    {
      absl::MutexLock lock(&mu_);
      // Stop may have shut the socket down meanwhile; then it is closed.
      if (!stopping_) {
        conn->fd = -1;
        hand_over = true;
      }
    }
    if (hand_over) {
      SetBlocking(fd, false);
      grpc::AddInsecureChannelFromFd(servers_[kQuorum].get(), fd);
    }
    EndConn(conn);
    return;
  }
  ServeRaw(fd);
  EndConn(conn);
}

void PeerTransport::Impl::ServeRaw(int fd) {
  std::string hello;
  if (RecvExactly(fd, kRawStreamHelloBytes, kSniffTimeoutMs, &hello) !=
          RecvEnd::kComplete ||
      hello != std::string_view(kRawStreamHello, kRawStreamHelloBytes)) {
    Reject("raw peer stream: bad hello");
    return;
  }
  SetSocketOptions(fd);
  if (!SendAll(fd, hello, false)) return;
  ++raw_streams_in_;
  std::optional<int64_t> from;
  // Received bytes: [start, end) not yet consumed. Grown (never shrunk) to
  // hold a whole frame; no per-read zero fill.
  std::unique_ptr<char[]> buf = std::make_unique<char[]>(kRawReadBytes);
  size_t capacity = kRawReadBytes;
  size_t start = 0;
  size_t end = 0;
  std::vector<Message> frame_messages;
  for (;;) {
    if (capacity - end < kRawReadBytes / 4) {
      // Move the unconsumed bytes to the front; grow if that is not enough.
      const size_t pending = end - start;
      size_t want = capacity;
      while (want - pending < kRawReadBytes / 4) want *= 2;
      if (want != capacity) {
        std::unique_ptr<char[]> bigger =
            std::make_unique_for_overwrite<char[]>(want);
        std::memcpy(bigger.get(), buf.get() + start, pending);
        buf = std::move(bigger);
        capacity = want;
      } else {
        std::memmove(buf.get(), buf.get() + start, pending);
      }
      start = 0;
      end = pending;
    }
    const ssize_t n = recv(fd, buf.get() + end, capacity - end, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the sender went away, or Stop
    end += static_cast<size_t>(n);
    for (;;) {
      std::string_view batch;
      size_t frame_bytes = 0;
      absl::Status framing =
          NextFrame(std::string_view(buf.get() + start, end - start), &batch,
                    &frame_bytes);
      if (!framing.ok()) {
        Reject(std::string(framing.message()));
        return;
      }
      if (frame_bytes == 0) break;
      absl::StatusOr<std::vector<std::string_view>> messages =
          SplitBatch(batch);
      if (!messages.ok()) {
        Reject(std::string(messages.status().message()));
        return;
      }
      frame_messages.clear();
      grpc::Status status;
      for (std::string_view m : *messages) {
        status =
            Accept(kQuorum, m, from, on_raw_frame_ ? &frame_messages : nullptr);
        if (!status.ok()) break;
      }
      // What checked out is delivered even when a later message ends the
      // stream, as on a gRPC stream.
      if (!frame_messages.empty()) on_raw_frame_(std::move(frame_messages));
      if (!status.ok()) return;
      start += frame_bytes;
    }
  }
}

PeerTransport::Impl::RawConnect PeerTransport::Impl::ConnectRaw(Link& link,
                                                                int* fd_out) {
  const PeerAddress& a = options_.peers.at(link.peer);
  const absl::Time deadline =
      absl::Now() + absl::Milliseconds(options_.connect_timeout_ms);
  int fd = -1;
  for (const auto& [ss, len] : Resolve(a.host, a.quorum_port, false)) {
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) continue;
    bool ok = connect(fd, reinterpret_cast<const sockaddr*>(&ss), len) == 0;
    if (!ok && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      while (!Stopped(link) && absl::Now() < deadline) {
        const int64_t wait_ms =
            std::max<int64_t>(0, absl::ToInt64Milliseconds(std::min(
                                     kWaitSlice, deadline - absl::Now())));
        const int r = poll(&p, 1, static_cast<int>(wait_ms));
        if (r < 0 && errno != EINTR) break;
        if (r <= 0) continue;
        int err = 0;
        socklen_t err_len = sizeof(err);
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len);
        ok = err == 0;
        break;
      }
    }
    if (ok) break;
    close(fd);
    fd = -1;
  }
  if (fd < 0) return RawConnect::kFailed;
  {
    absl::MutexLock lock(&link.mu);
    if (link.stop) {
      close(fd);
      return RawConnect::kFailed;
    }
    link.fd = fd;  // from here on Stop shuts it down
  }
  SetBlocking(fd, true);
  SetSocketOptions(fd);
  std::string answer;
  RawConnect outcome = RawConnect::kFailed;
  const std::string_view hello(kRawStreamHello, kRawStreamHelloBytes);
  if (SendAll(fd, hello, false)) {
    const int64_t left_ms =
        std::max<int64_t>(1, absl::ToInt64Milliseconds(deadline - absl::Now()));
    const RecvEnd end = RecvExactly(fd, kRawStreamHelloBytes,
                                    static_cast<int>(left_ms), &answer);
    const bool hello_so_far = answer == hello.substr(0, answer.size());
    if (end == RecvEnd::kComplete && hello_so_far) {
      outcome = RawConnect::kConnected;
    } else if (!Stopped(link) && (!hello_so_far || end == RecvEnd::kClosed)) {
      // Something else answered (an HTTP/2 server's SETTINGS), or the
      // peer hung up on our hello: a gRPC-only server.
      outcome = RawConnect::kNotRaw;
    }
  }
  if (outcome != RawConnect::kConnected) {
    {
      absl::MutexLock lock(&link.mu);
      link.fd = -1;
    }
    close(fd);
    fd = -1;
  }
  *fd_out = fd;
  return outcome;
}

bool PeerTransport::Impl::TakeRaw(Link& link, std::string& head,
                                  int64_t& head_messages,
                                  std::vector<std::string>& out, bool& more) {
  absl::MutexLock lock(&link.mu);
  if (!link.stop && link.queue.empty() && link.partial.empty()) {
    link.cv.WaitWithTimeout(&link.mu, kIdleCheck);
  }
  if (link.stop) return false;
  head.swap(link.partial);
  link.partial.clear();
  head_messages = link.partial_messages;
  link.partial_messages = 0;
  size_t bytes = 0;
  while (!link.queue.empty() &&
         (out.empty() || bytes + link.queue.front().size() <= kBatchBytes)) {
    bytes += link.queue.front().size();
    link.queued_bytes -= static_cast<int64_t>(link.queue.front().size());
    out.push_back(std::move(link.queue.front()));
    link.queue.pop_front();
  }
  more = !link.queue.empty();
  link.unflushed = false;  // the thread is on it
  link.writing = !head.empty() || !out.empty();
  return true;
}

void PeerTransport::Impl::StreamRaw(Link& link, int fd) {
  ++open_streams_;
  ++open_raw_streams_;
  {
    absl::MutexLock lock(&link.mu);
    link.raw_ready = true;
  }
  std::vector<std::string> taken;
  std::string head;
  std::string frame;
  for (;;) {
    taken.clear();
    head.clear();
    int64_t head_messages = 0;
    bool more = false;
    if (!TakeRaw(link, head, head_messages, taken, more)) break;
    if (head.empty() && taken.empty()) {
      // Idle. The receiver never writes after its hello: a readable
      // socket means it hung up (or broke the protocol).
      pollfd p{fd, POLLIN | POLLRDHUP, 0};
      if (poll(&p, 1, 0) != 0) break;
      continue;
    }
    frame.clear();
    if (!taken.empty()) {
      frame.assign(kFrameHeaderBytes, '\0');
      for (const std::string& m : taken) AppendToBatch(m, &frame);
      FillFrameHeader(&frame);
    }
    const bool ok =
        SendAll(fd, head, more || !frame.empty()) && SendAll(fd, frame, more);
    {
      absl::MutexLock lock(&link.mu);
      link.writing = false;
    }
    const int64_t count = head_messages + static_cast<int64_t>(taken.size());
    if (!ok) {
      dropped_ += count;
      break;
    }
    sent_[link.kind] += count;
  }
  {
    absl::MutexLock lock(&link.mu);
    link.raw_ready = false;
    link.writing = false;
    link.fd = -1;
  }
  --open_raw_streams_;
  --open_streams_;
  close(fd);
}

bool PeerTransport::Impl::Stopped(Link& link) {
  absl::MutexLock lock(&link.mu);
  return link.stop;
}

void PeerTransport::Impl::DropQueue(Link& link) {
  absl::MutexLock lock(&link.mu);
  dropped_ += static_cast<int64_t>(link.queue.size()) + link.partial_messages;
  link.queue.clear();
  link.queued_bytes = 0;
  link.partial.clear();
  link.partial_messages = 0;
  link.unflushed = false;
}

void PeerTransport::Impl::RunLink(Link& link) {
  int64_t backoff_ms = options_.initial_backoff_ms;
  while (!Stopped(link)) {
    const absl::Time start = absl::Now();
    bool connected = false;
    // Quorum links speak raw streams to a peer that knows them, gRPC to one
    // that does not (an older server, during a rolling upgrade: asked anew
    // at every connect, so an upgraded peer is noticed).
    int fd = -1;
    const RawConnect raw =
        link.kind == kQuorum ? ConnectRaw(link, &fd) : RawConnect::kNotRaw;
    if (raw == RawConnect::kConnected) {
      connected = true;
      StreamRaw(link, fd);
    } else if (raw == RawConnect::kNotRaw) {
      connected = Connect(link);
      if (connected) StreamTo(link);
    }
    if (Stopped(link)) break;
    // Whatever was queued for a peer we cannot reach is stale by the time
    // it comes back; the core re-sends what still matters.
    DropQueue(link);
    ++disconnects_;
    if (link.kind == kQuorum && on_disconnect_) on_disconnect_(link.peer);
    // A stream that lived a while resets the backoff; one that breaks at
    // once (e.g. the peer rejects us) keeps backing off.
    if (connected &&
        absl::Now() - start >= absl::Milliseconds(options_.max_backoff_ms)) {
      backoff_ms = options_.initial_backoff_ms;
    }
    absl::MutexLock lock(&link.mu);
    const absl::Time until = absl::Now() + absl::Milliseconds(backoff_ms);
    while (!link.stop && absl::Now() < until)
      link.cv.WaitWithDeadline(&link.mu, until);
    backoff_ms = std::min(2 * backoff_ms, options_.max_backoff_ms);
  }
  DropQueue(link);
}

bool PeerTransport::Impl::Connect(Link& link) {
  const absl::Time deadline =
      absl::Now() + absl::Milliseconds(options_.connect_timeout_ms);
  grpc_connectivity_state state = link.channel->GetState(true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE ||
        state == GRPC_CHANNEL_SHUTDOWN || absl::Now() >= deadline ||
        Stopped(link)) {
      return false;
    }
    link.channel->WaitForStateChange(
        state,
        absl::ToChronoTime(std::min(deadline, absl::Now() + kWaitSlice)));
    state = link.channel->GetState(true);
  }
  return true;
}

bool PeerTransport::Impl::TakeQueued(Link& link, std::vector<std::string>& out,
                                     bool& more) {
  absl::MutexLock lock(&link.mu);
  if (!link.stop && link.queue.empty()) {
    link.cv.WaitWithTimeout(&link.mu, kIdleCheck);
  }
  if (link.stop) return false;
  size_t bytes = 0;
  while (!link.queue.empty() &&
         (out.empty() ||
          (!link.legacy && bytes + link.queue.front().size() <= kBatchBytes))) {
    bytes += link.queue.front().size();
    link.queued_bytes -= static_cast<int64_t>(link.queue.front().size());
    out.push_back(std::move(link.queue.front()));
    link.queue.pop_front();
  }
  more = !link.queue.empty();
  return true;
}

void PeerTransport::Impl::StreamTo(Link& link) {
  grpc::ClientContext ctx;
  {
    absl::MutexLock lock(&link.mu);
    if (link.stop) return;
    link.call = &ctx;
  }
  // Raw bytes both ways: the queued messages are already encoded.
  const bool batched = !link.legacy;
  const grpc::internal::RpcMethod method(
      batched ? kStreamBatchMethod : kStreamMethod,
      grpc::internal::RpcMethod::CLIENT_STREAMING, link.channel);
  grpc::ByteBuffer summary;
  std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer(
      grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(
          link.channel.get(), method, &ctx, &summary));
  ++open_streams_;
  std::vector<std::string> taken;
  std::string batch;
  bool broken = false;  // a Write failed: the stream is over, its status known
  for (;;) {
    taken.clear();
    bool more = false;
    if (!TakeQueued(link, taken, more)) break;
    if (taken.empty()) {
      // Idle: a connection that is no longer READY took the stream with it.
      if (link.channel->GetState(false) != GRPC_CHANNEL_READY) break;
      continue;
    }
    batch.clear();
    if (batched) {
      for (const std::string& m : taken) AppendToBatch(m, &batch);
    }
    grpc::Slice slice(batched ? batch : taken.front());
    grpc::ByteBuffer buffer(&slice, 1);
    grpc::WriteOptions write_options;
    if (more) write_options.set_buffer_hint();  // flush with the last one
    if (!writer->Write(buffer, write_options)) {
      dropped_ += static_cast<int64_t>(taken.size());
      broken = true;
      break;
    }
    sent_[link.kind] += static_cast<int64_t>(taken.size());
  }
  --open_streams_;
  {
    absl::MutexLock lock(&link.mu);
    link.call = nullptr;
  }
  // Cancel a stream we leave (stop, idle on a dead channel); one the peer
  // ended keeps the peer's status (UNIMPLEMENTED from an older server).
  if (!broken) ctx.TryCancel();
  const grpc::Status status = writer->Finish();
  if (batched && status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    link.legacy = true;
    std::fprintf(stderr,
                 "INFO peer %lld does not know Peer.StreamBatch (an older "
                 "server): sending it one message per gRPC message\n",
                 static_cast<long long>(link.peer));
  }
}

PeerTransport::PeerTransport(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

PeerTransport::~PeerTransport() { Stop(); }

absl::StatusOr<std::unique_ptr<PeerTransport>> PeerTransport::Start(
    PeerTransportOptions options, ReceiveFn on_receive,
    DisconnectFn on_disconnect, RawFrameFn on_raw_frame) {
  auto impl =
      std::make_unique<Impl>(std::move(options), std::move(on_receive),
                             std::move(on_disconnect), std::move(on_raw_frame));
  absl::Status status = impl->Start();
  if (!status.ok()) {
    impl->Stop();
    return status;
  }
  return std::make_unique<PeerTransport>(std::move(impl));
}

void PeerTransport::Send(Message m, bool flush) {
  impl_->Send(std::move(m), flush);
}
void PeerTransport::Flush() { impl_->Flush(); }
void PeerTransport::Stop() { impl_->Stop(); }
absl::Status PeerTransport::FetchSnapshot(int64_t from, int64_t zxid,
                                          const std::string& target_dir,
                                          absl::Duration timeout) {
  return impl_->FetchSnapshot(from, zxid, target_dir, timeout);
}
PeerTransportStats PeerTransport::Stats() const { return impl_->Stats(); }

}  // namespace rockeeper::zab
