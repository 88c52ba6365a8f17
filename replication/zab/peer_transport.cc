#include "replication/zab/peer_transport.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <pthread.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
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
       DisconnectFn on_disconnect)
      : options_(std::move(options)),
        on_receive_(std::move(on_receive)),
        on_disconnect_(std::move(on_disconnect)),
        services_{Service(this, kQuorum), Service(this, kElection)} {}

  absl::Status Start();
  void Send(Message m);
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
    // The peer answered StreamBatch with UNIMPLEMENTED (an older server):
    // use Stream, one message per gRPC message. Only the link's thread.
    bool legacy = false;
  };

  grpc::ServerReadReactor<grpc::ByteBuffer>* NewReader(
      Kind kind, bool batched, grpc::ByteBuffer* response);
  void ReaderDone(Reader* reader);
  // Checks one encoded message of a stream and passes it to on_receive_.
  grpc::Status Accept(Kind kind, std::string_view bytes,
                      std::optional<int64_t>& stream_from);
  grpc::Status Reject(std::string why);

  void RunLink(Link& link);
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
  std::array<Service, 2> services_;
  std::array<std::unique_ptr<grpc::Server>, 2> servers_;  // after services_
  // Fixed after Start: peer -> its two links.
  std::map<int64_t, std::array<std::unique_ptr<Link>, 2>> links_;
  std::atomic<bool> stopping_{false};
  absl::once_flag stop_once_;

  absl::Mutex mu_;
  std::list<std::unique_ptr<Reader>> readers_ ABSL_GUARDED_BY(mu_);
  int live_readers_ ABSL_GUARDED_BY(mu_) = 0;

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
    builder.AddListeningPort(addr, grpc::InsecureServerCredentials(), &bound);
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
    if (servers_[kind] == nullptr || bound == 0) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", kKindName[kind], " port ", addr));
    }
  }
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

void PeerTransport::Impl::Send(Message m) {
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
        link->cv.Signal();
      }
    }
    for (auto& [id, pair] : links_) {
      for (auto& link : pair) {
        if (link->thread.joinable()) link->thread.join();
      }
    }
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
                                         std::optional<int64_t>& stream_from) {
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
  if (on_receive_) on_receive_(*std::move(m));
  return grpc::Status::OK;
}

bool PeerTransport::Impl::Stopped(Link& link) {
  absl::MutexLock lock(&link.mu);
  return link.stop;
}

void PeerTransport::Impl::DropQueue(Link& link) {
  absl::MutexLock lock(&link.mu);
  dropped_ += static_cast<int64_t>(link.queue.size());
  link.queue.clear();
  link.queued_bytes = 0;
}

void PeerTransport::Impl::RunLink(Link& link) {
  int64_t backoff_ms = options_.initial_backoff_ms;
  while (!Stopped(link)) {
    const absl::Time start = absl::Now();
    const bool connected = Connect(link);
    if (connected) StreamTo(link);
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
    DisconnectFn on_disconnect) {
  auto impl = std::make_unique<Impl>(std::move(options), std::move(on_receive),
                                     std::move(on_disconnect));
  absl::Status status = impl->Start();
  if (!status.ok()) {
    impl->Stop();
    return status;
  }
  return std::make_unique<PeerTransport>(std::move(impl));
}

void PeerTransport::Send(Message m) { impl_->Send(std::move(m)); }
void PeerTransport::Stop() { impl_->Stop(); }
absl::Status PeerTransport::FetchSnapshot(int64_t from, int64_t zxid,
                                          const std::string& target_dir,
                                          absl::Duration timeout) {
  return impl_->FetchSnapshot(from, zxid, target_dir, timeout);
}
PeerTransportStats PeerTransport::Stats() const { return impl_->Stats(); }

}  // namespace rockeeper::zab
