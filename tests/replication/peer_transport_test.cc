// PeerTransport over real gRPC on 127.0.0.1: several transports in one
// process, each on its own free quorum and election ports.
#include "replication/zab/peer_transport.h"

#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "engine/snapshot.h"
#include "gtest/gtest.h"
#include "replication/zab/codec.h"
#include "rockeeper/peer/v1/peer_service.grpc.pb.h"

namespace rockeeper::zab {
namespace {

constexpr int kNumTypes = static_cast<int>(MsgType::kRequest) + 1;

// Distinct free ports: bound all at once so none repeats, then released.
std::vector<int> FreePorts(int n) {
  std::vector<int> fds, ports;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      ADD_FAILURE() << "cannot bind a free port";
    }
    fds.push_back(fd);
    ports.push_back(ntohs(a.sin_port));
  }
  for (int fd : fds) close(fd);
  return ports;
}

// Polls `done` until it holds or `timeout` passes.
bool WaitUntil(const std::function<bool()>& done,
               absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

// What one transport's callbacks saw.
struct Sink {
  absl::Mutex mu;
  std::vector<Message> got;
  std::map<int64_t, int> disconnects;
  bool hold = false;  // ReceiveFn blocks while true

  size_t Count() {
    absl::MutexLock l(&mu);
    return got.size();
  }
  int Disconnects(int64_t peer) {
    absl::MutexLock l(&mu);
    return disconnects[peer];
  }
  std::vector<Message> Got() {
    absl::MutexLock l(&mu);
    return got;
  }
};

Message Make(MsgType type, int64_t from, int64_t to, int64_t n) {
  Message m;
  m.type = type;
  m.from = from;
  m.to = to;
  m.conn = 1000 + from;
  m.seq = n;
  m.zxid = MakeZxid(1, n);
  m.epoch = 1;
  m.committed = n / 2;
  m.observer = type == MsgType::kFollowerInfo;
  if (type == MsgType::kAckEpoch) m.epoch_lasts = {{0, 5}, {1, n}};
  if (type == MsgType::kProposal || type == MsgType::kInform) {
    m.entry = Entry{m.zxid, std::string(100, static_cast<char>('a' + n % 26))};
  }
  if (type == MsgType::kRequest) m.data = "request " + std::to_string(n);
  if (type == MsgType::kVote) {
    m.vote =
        Notification{from, to, Vote{from, m.zxid, 1}, n, PeerState::kLooking};
  }
  return m;
}

// One encoded message of `type` (Make's message number 1).
std::string Enc(MsgType type, int64_t from, int64_t to) {
  return EncodeMessage(Make(type, from, to, 1));
}

// A batch (ZabBatch framing) of encoded messages.
std::string Batch(const std::vector<std::string>& messages) {
  std::string b;
  for (const std::string& m : messages) AppendToBatch(m, &b);
  return b;
}

class PeerTransportTest : public ::testing::Test {
 protected:
  // Configures members 1..n on fresh ports.
  void Configure(int n) {
    std::vector<int> ports = FreePorts(2 * n);
    for (int id = 1; id <= n; ++id) {
      peers_[id] = PeerAddress{"127.0.0.1", ports[2 * (id - 1)],
                               ports[2 * (id - 1) + 1]};
    }
  }

  // Serves `fake` as "server 1" on a free port and starts server 2 with
  // it as its peer 1. Null (with a test failure) if either fails.
  std::unique_ptr<grpc::Server> StartBesideFake(grpc::Service* fake) {
    Configure(2);
    grpc::ServerBuilder b;
    int port = 0;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    b.RegisterService(fake);
    std::unique_ptr<grpc::Server> server = b.BuildAndStart();
    EXPECT_NE(port, 0);
    if (port == 0) return nullptr;
    std::map<int64_t, PeerAddress> peers = peers_;
    peers[1].quorum_port = port;
    const absl::Status started = StartOne(2, peers);
    EXPECT_TRUE(started.ok()) << started;
    return started.ok() ? std::move(server) : nullptr;
  }

  absl::Status StartOne(
      int64_t id, std::map<int64_t, PeerAddress> peers = {},
      const std::function<void(PeerTransportOptions&)>& tweak = nullptr) {
    PeerTransportOptions o;
    o.my_id = id;
    o.peers = peers.empty() ? peers_ : peers;
    if (tweak) tweak(o);
    auto sink = std::make_shared<Sink>();
    sinks_[id] = sink;
    auto t = PeerTransport::Start(
        o,
        [sink](Message m) {
          absl::MutexLock l(&sink->mu);
          sink->mu.Await(absl::Condition(
              +[](bool* hold) { return !*hold; }, &sink->hold));
          sink->got.push_back(std::move(m));
        },
        [sink](int64_t peer) {
          absl::MutexLock l(&sink->mu);
          ++sink->disconnects[peer];
        });
    if (!t.ok()) return t.status();
    t_[id] = *std::move(t);
    return absl::OkStatus();
  }

  // Waits until `id` has an open outgoing stream on each port to each peer.
  bool WaitConnected(int64_t id, int64_t streams) {
    return WaitUntil([&] { return t_[id]->Stats().open_streams == streams; });
  }

  void TearDown() override {
    for (auto& [id, t] : t_) {
      if (t != nullptr) t->Stop();
    }
  }

  std::map<int64_t, PeerAddress> peers_;
  std::map<int64_t, std::shared_ptr<Sink>> sinks_;
  std::map<int64_t, std::unique_ptr<PeerTransport>> t_;
};

// The messages in `got` from `from` on one port kind, in arrival order.
std::vector<Message> From(const std::vector<Message>& got, int64_t from,
                          bool votes) {
  std::vector<Message> out;
  for (const Message& m : got) {
    if (m.from == from && (m.type == MsgType::kVote) == votes) {
      out.push_back(m);
    }
  }
  return out;
}

TEST_F(PeerTransportTest, EveryTypeBetweenAllPairsExactlyAndInOrder) {
  Configure(3);
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(StartOne(id).ok());
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(WaitConnected(id, 4));

  constexpr int kProposals = 2000;
  constexpr int kVotes = 200;
  // expected[to][from]: what each port kind must deliver, in order.
  std::map<int64_t, std::map<int64_t, std::vector<Message>>> quorum, election;
  for (int64_t from = 1; from <= 3; ++from) {
    for (int64_t to = 1; to <= 3; ++to) {
      if (from == to) continue;
      std::vector<Message> sent;
      for (int t = 0; t < kNumTypes; ++t) {
        sent.push_back(Make(static_cast<MsgType>(t), from, to, t));
      }
      for (int n = 1; n <= kProposals; ++n) {
        sent.push_back(Make(MsgType::kProposal, from, to, n));
      }
      for (int n = 1; n <= kVotes; ++n) {
        sent.push_back(Make(MsgType::kVote, from, to, n));
      }
      for (const Message& m : sent) {
        (m.type == MsgType::kVote ? election : quorum)[to][from].push_back(m);
        t_[from]->Send(m);
      }
    }
  }
  const size_t per_receiver = 2 * (kNumTypes + kProposals + kVotes);
  for (int64_t to = 1; to <= 3; ++to) {
    ASSERT_TRUE(WaitUntil([&] { return sinks_[to]->Count() >= per_receiver; }))
        << "server " << to << " got " << sinks_[to]->Count();
  }
  for (int64_t to = 1; to <= 3; ++to) {
    std::vector<Message> got = sinks_[to]->Got();
    EXPECT_EQ(got.size(), per_receiver);
    for (int64_t from = 1; from <= 3; ++from) {
      if (from == to) continue;
      for (bool votes : {false, true}) {
        const std::vector<Message>& want =
            (votes ? election : quorum)[to][from];
        std::vector<Message> have = From(got, from, votes);
        ASSERT_EQ(have.size(), want.size()) << from << "->" << to;
        for (size_t i = 0; i < want.size(); ++i) {
          ASSERT_EQ(EncodeMessage(have[i]), EncodeMessage(want[i]))
              << from << "->" << to << " message " << i << " ("
              << MsgTypeName(want[i].type) << ")";
        }
      }
    }
    PeerTransportStats s = t_[to]->Stats();
    EXPECT_EQ(s.received_election, 2 * (kVotes + 1));
    EXPECT_EQ(s.received_quorum, 2 * (kNumTypes - 1 + kProposals));
    EXPECT_EQ(s.sent_election, 2 * (kVotes + 1));
    EXPECT_EQ(s.dropped, 0);
    EXPECT_EQ(s.rejected_streams, 0);
    // Between servers of this version the quorum path is raw streams.
    EXPECT_EQ(s.open_raw_streams, 2);
    EXPECT_EQ(s.raw_streams_in, 2);
  }
}

// Deferred sends (Send without flush, then Flush) in random groups, before,
// during and after a stall of the receiver: Flush writes inline while the
// stream is idle; once the stalled socket is full an inline write is taken
// in part or not at all and the sender thread writes the rest; every
// message still arrives once, in order.
TEST_F(PeerTransportTest, FlushedSendsArriveOnceInOrderThroughAStall) {
  Configure(2);
  ASSERT_TRUE(StartOne(1).ok());
  ASSERT_TRUE(StartOne(2).ok());
  ASSERT_TRUE(WaitUntil([&] { return t_[1]->Stats().open_raw_streams == 1; }));
  std::vector<std::string> want;
  unsigned seed = 7;
  auto send_group = [&](size_t max_bytes) {
    seed = seed * 1103515245 + 12345;
    const int group = 1 + static_cast<int>((seed >> 16) % 8);
    for (int i = 0; i < group; ++i) {
      const int64_t n = static_cast<int64_t>(want.size()) + 1;
      Message m = Make(MsgType::kProposal, 1, 2, n);
      m.entry.data.assign(1 + (seed >> 8) % max_bytes, static_cast<char>(n));
      want.push_back(EncodeMessage(m));
      t_[1]->Send(std::move(m), /*flush=*/false);
    }
    t_[1]->Flush();
  };
  while (want.size() < 2000) send_group(6000);
  // Stalled: send until the socket is full (the kernel buffers up to tens
  // of MiB; bounded well below the 64 MiB queue bound, nothing is dropped).
  {
    absl::MutexLock l(&sinks_[2]->mu);
    sinks_[2]->hold = true;
  }
  size_t stalled_bytes = 0;
  while (t_[1]->Stats().partial_flushes == 0 && stalled_bytes < (48u << 20)) {
    const size_t before = want.size();
    send_group(24 << 10);  // a group stays under Flush's inline bound
    for (size_t i = before; i < want.size(); ++i)
      stalled_bytes += want[i].size();
  }
  EXPECT_GT(t_[1]->Stats().partial_flushes, 0) << stalled_bytes << " bytes";
  for (int i = 0; i < 20; ++i) send_group(6000);  // queued behind the tail
  {
    absl::MutexLock l(&sinks_[2]->mu);
    sinks_[2]->hold = false;
  }
  const size_t last_stalled = want.size();
  while (want.size() < last_stalled + 2000) send_group(6000);
  const size_t total = want.size();
  ASSERT_TRUE(
      WaitUntil([&] { return sinks_[2]->Count() >= total; }, absl::Seconds(60)))
      << sinks_[2]->Count() << " of " << total;
  const std::vector<Message> got = sinks_[2]->Got();
  ASSERT_EQ(got.size(), total);
  for (size_t i = 0; i < total; ++i) {
    ASSERT_EQ(EncodeMessage(got[i]), want[i]) << "message " << i;
  }
  const PeerTransportStats s = t_[1]->Stats();
  EXPECT_EQ(s.sent_quorum, static_cast<int64_t>(total));
  EXPECT_EQ(s.dropped, 0);
  EXPECT_GT(s.flushed_inline, 0);
  EXPECT_LT(s.flushed_inline, static_cast<int64_t>(total));  // the thread's
}

TEST_F(PeerTransportTest, VotesTravelOnTheElectionPortOnly) {
  Configure(2);
  // Server 1 knows server 2's quorum port wrong (nothing listens there), so
  // only what travels on the election port can reach 2.
  std::map<int64_t, PeerAddress> wrong = peers_;
  wrong[2].quorum_port = FreePorts(1)[0];
  ASSERT_TRUE(StartOne(1, wrong).ok());
  ASSERT_TRUE(StartOne(2).ok());
  ASSERT_TRUE(WaitConnected(1, 1));  // the election stream only
  t_[1]->Send(Make(MsgType::kProposal, 1, 2, 1));
  t_[1]->Send(Make(MsgType::kVote, 1, 2, 1));
  ASSERT_TRUE(WaitUntil([&] { return sinks_[2]->Count() == 1; }));
  // The proposal is dropped at a failed connect, which is reported.
  ASSERT_TRUE(WaitUntil([&] {
    return t_[1]->Stats().dropped >= 1 && sinks_[1]->Disconnects(2) >= 1;
  }));
  std::vector<Message> got = sinks_[2]->Got();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].type, MsgType::kVote);
  EXPECT_EQ(t_[2]->Stats().received_election, 1);
  EXPECT_EQ(t_[2]->Stats().received_quorum, 0);
  // The other direction is configured right: its proposal arrives.
  t_[2]->Send(Make(MsgType::kProposal, 2, 1, 1));
  ASSERT_TRUE(WaitUntil([&] { return sinks_[1]->Count() == 1; }));
  EXPECT_EQ(t_[1]->Stats().received_quorum, 1);
}

TEST_F(PeerTransportTest, StoppedPeerIsReportedAndRestartResumesInOrder) {
  Configure(3);
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(StartOne(id).ok());
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(WaitConnected(id, 4));
  t_[3]->Stop();
  t_[3].reset();
  for (int64_t id : {1, 2}) {
    ASSERT_TRUE(WaitUntil([&] { return sinks_[id]->Disconnects(3) >= 1; }))
        << "server " << id << " never heard that 3 went away";
    ASSERT_TRUE(WaitConnected(id, 2));
  }
  // Sending to the down peer never blocks: 80 MiB against a 64 MiB bound.
  // (A Send that blocked would never return: the loop runs on a thread and
  // must finish within a bound far above its run time, even under ASan.)
  const int64_t dropped_before = t_[1]->Stats().dropped;
  std::atomic<bool> sent{false};
  std::thread sender([&] {
    for (int n = 1; n <= 20000; ++n) {
      Message m = Make(MsgType::kProposal, 1, 3, n);
      m.entry.data.assign(4096, 'x');
      t_[1]->Send(std::move(m));
    }
    sent = true;
  });
  if (!WaitUntil([&] { return sent.load(); }, absl::Seconds(60))) {
    // Blocked for good: the sender still uses the transport, so the
    // fixture cannot be torn down. Fail the process instead of hanging.
    std::fprintf(stderr, "FAILED: Send blocked on a down peer\n");
    std::_Exit(1);
  }
  sender.join();
  ASSERT_TRUE(WaitUntil(
      [&] { return t_[1]->Stats().dropped - dropped_before >= 20000; }));
  // A failed attempt is reported at most once per backoff interval.
  const int before = sinks_[1]->Disconnects(3);
  absl::SleepFor(absl::Milliseconds(500));
  EXPECT_LE(sinks_[1]->Disconnects(3) - before, 6);

  ASSERT_TRUE(StartOne(3).ok());  // the same ports again
  for (int id = 1; id <= 3; ++id) ASSERT_TRUE(WaitConnected(id, 4));
  constexpr int kN = 500;
  for (int n = 1; n <= kN; ++n) {
    t_[1]->Send(Make(MsgType::kProposal, 1, 3, n));
    t_[2]->Send(Make(MsgType::kProposal, 2, 3, n));
    t_[3]->Send(Make(MsgType::kProposal, 3, 1, n));
  }
  ASSERT_TRUE(WaitUntil([&] { return sinks_[3]->Count() == 2 * kN; }));
  std::vector<Message> got = sinks_[3]->Got();
  for (int64_t from : {1, 2}) {
    std::vector<Message> have = From(got, from, false);
    ASSERT_EQ(have.size(), static_cast<size_t>(kN));
    for (int n = 1; n <= kN; ++n) {
      ASSERT_EQ(have[n - 1].zxid, MakeZxid(1, n)) << "from " << from;
    }
  }
  ASSERT_TRUE(WaitUntil([&] {
    return From(sinks_[1]->Got(), 3, false).size() == static_cast<size_t>(kN);
  }));
}

// A raw client on a server's port: writes `frames` (serialized ZabMessages
// or garbage) and returns the final status.
grpc::Status RawStream(int port, const std::vector<std::string>& frames,
                       const char* method = "/rockeeper.peer.v1.Peer/Stream") {
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                     grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  auto call = stub.PrepareCall(&ctx, method, &cq);
  void* tag = nullptr;
  bool ok = false;
  auto step = [&](int want) {
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(tag, reinterpret_cast<void*>(want));
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  bool open = step(1);
  for (const std::string& f : frames) {
    if (!open) break;
    grpc::Slice slice(f);
    grpc::ByteBuffer buf(&slice, 1);
    call->Write(buf, reinterpret_cast<void*>(2));
    open = step(2);
  }
  if (open) {
    call->WritesDone(reinterpret_cast<void*>(3));
    step(3);
  }
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(4));
  step(4);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return status;
}

TEST_F(PeerTransportTest, BadStreamsAreRejectedAndTheServerKeepsWorking) {
  Configure(3);
  ASSERT_TRUE(StartOne(1).ok());
  ASSERT_TRUE(StartOne(2).ok());
  const int quorum = peers_[1].quorum_port;
  const int election = peers_[1].election_port;
  struct Case {
    const char* name;
    int port;
    std::vector<std::string> frames;
  };
  const std::vector<Case> cases = {
      {"garbage", quorum, {std::string("\xff\xff\xff\xff garbage", 13)}},
      {"unknown type", quorum, {[] {
         peer::v1::ZabMessage p;
         p.set_type(99);
         p.set_from(2);
         p.set_to(1);
         return p.SerializeAsString();
       }()}},
      {"unknown from", quorum, {Enc(MsgType::kPing, 99, 1)}},
      {"from self", quorum, {Enc(MsgType::kPing, 1, 1)}},
      {"wrong to", quorum, {Enc(MsgType::kPing, 2, 3)}},
      {"from changes",
       quorum,
       {Enc(MsgType::kPing, 2, 1), Enc(MsgType::kPing, 3, 1)}},
      {"vote on quorum port", quorum, {Enc(MsgType::kVote, 2, 1)}},
      {"ping on election port", election, {Enc(MsgType::kPing, 2, 1)}},
  };
  for (const Case& c : cases) {
    grpc::Status s = RawStream(c.port, c.frames);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.name << ": " << s.error_message();
  }
  // The same checks per message inside batches, and the batch framing.
  const std::vector<Case> batch_cases = {
      {"bad tag", quorum, {std::string("\x12\x01x", 3)}},
      {"length past the end", quorum, {std::string("\x0a\x05xy", 4)}},
      {"truncated length", quorum, {std::string("\x0a\x80", 2)}},
      {"garbage message", quorum, {Batch({"\xff\xff\xff garbage"})}},
      {"from changes in a batch",
       quorum,
       {Batch({Enc(MsgType::kPing, 2, 1), Enc(MsgType::kPing, 3, 1)})}},
      {"vote in a quorum batch",
       quorum,
       {Batch({Enc(MsgType::kPing, 2, 1), Enc(MsgType::kVote, 2, 1)})}},
  };
  for (const Case& c : batch_cases) {
    grpc::Status s =
        RawStream(c.port, c.frames, "/rockeeper.peer.v1.Peer/StreamBatch");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << c.name << ": " << s.error_message();
  }
  EXPECT_EQ(t_[1]->Stats().rejected_streams,
            static_cast<int64_t>(cases.size() + batch_cases.size()));
  // Only the good first messages of "from changes" (one alone, one in a
  // batch) and of "vote in a quorum batch" got through.
  ASSERT_EQ(sinks_[1]->Count(), 3u);

  // A well-behaved raw stream ends OK with a summary.
  {
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(quorum),
                                       grpc::InsecureChannelCredentials());
    auto stub = peer::v1::Peer::NewStub(channel);
    grpc::ClientContext ctx;
    peer::v1::StreamSummary summary;
    auto w = stub->Stream(&ctx, &summary);
    for (int n = 1; n <= 3; ++n) {
      peer::v1::ZabMessage p;
      ASSERT_TRUE(p.ParseFromString(Enc(MsgType::kPing, 2, 1)));
      ASSERT_TRUE(w->Write(p));
    }
    ASSERT_TRUE(w->WritesDone());
    grpc::Status s = w->Finish();
    EXPECT_TRUE(s.ok()) << s.error_message();
    EXPECT_EQ(summary.received(), 3);
  }
  // The transports still talk.
  ASSERT_TRUE(WaitConnected(2, 2));
  t_[2]->Send(Make(MsgType::kCommit, 2, 1, 7));
  t_[2]->Send(Make(MsgType::kVote, 2, 1, 7));
  ASSERT_TRUE(WaitUntil([&] { return sinks_[1]->Count() == 8; }));
}

// With a RawFrameFn, the messages of a raw stream arrive a frame at a time
// (what one Flush wrote), not through the ReceiveFn.
TEST_F(PeerTransportTest, RawFramesGoToTheFrameCallbackWhole) {
  Configure(2);
  ASSERT_TRUE(StartOne(1).ok());
  absl::Mutex mu;
  std::vector<std::vector<Message>> frames;
  int single = 0;
  PeerTransportOptions o;
  o.my_id = 2;
  o.peers = peers_;
  auto t2 = PeerTransport::Start(
      o,
      [&](Message) {
        absl::MutexLock l(&mu);
        ++single;
      },
      nullptr,
      [&](std::vector<Message> ms) {
        absl::MutexLock l(&mu);
        frames.push_back(std::move(ms));
      });
  ASSERT_TRUE(t2.ok()) << t2.status();
  ASSERT_TRUE(WaitUntil([&] { return t_[1]->Stats().open_raw_streams == 1; }));
  for (int n = 1; n <= 3; ++n) {
    t_[1]->Send(Make(MsgType::kProposal, 1, 2, n), /*flush=*/false);
  }
  t_[1]->Flush();  // the stream is idle: one inline write, one frame
  ASSERT_TRUE(WaitUntil([&] {
    absl::MutexLock l(&mu);
    return !frames.empty();
  }));
  (*t2)->Stop();
  absl::MutexLock l(&mu);
  ASSERT_EQ(frames.size(), 1u);
  ASSERT_EQ(frames[0].size(), 3u);
  for (int n = 1; n <= 3; ++n) EXPECT_EQ(frames[0][n - 1].seq, n);
  EXPECT_EQ(single, 0);
  EXPECT_EQ(t_[1]->Stats().flushed_inline, 3);
}

// A raw TCP connection to `port`: sends `chunks` (one send each), shuts
// down its sending side, then reads until the server closes the connection
// (bounded). Returns what the server sent; `closed` tells whether it closed
// the connection within the bound.
std::string RawTcp(int port, const std::vector<std::string>& chunks,
                   bool* closed) {
  *closed = false;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  std::string got;
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    ADD_FAILURE() << "cannot connect to " << port;
    if (fd >= 0) close(fd);
    return got;
  }
  timeval tv{10, 0};  // a server that never closes fails the test
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  for (const std::string& bytes : chunks) {
    if (send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(bytes.size())) {
      ADD_FAILURE() << "short send";
    }
  }
  shutdown(fd, SHUT_WR);
  char buf[256];
  for (;;) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      got.append(buf, static_cast<size_t>(n));
      continue;
    }
    *closed = n == 0 || errno == ECONNRESET;
    break;
  }
  close(fd);
  return got;
}

std::string Frame(const std::string& batch) {
  std::string f(kFrameHeaderBytes, '\0');
  f += batch;
  FillFrameHeader(&f);
  return f;
}

TEST_F(PeerTransportTest, BadRawStreamsAreRejectedAndTheServerKeepsWorking) {
  Configure(3);
  ASSERT_TRUE(StartOne(1).ok());
  ASSERT_TRUE(StartOne(2).ok());
  const int quorum = peers_[1].quorum_port;
  const std::string hello(kRawStreamHello, kRawStreamHelloBytes);
  auto header = [](uint32_t n) {
    std::string h(kFrameHeaderBytes + 1, 'x');  // a frame of n bytes
    h.resize(kFrameHeaderBytes);
    for (size_t i = 0; i < kFrameHeaderBytes; ++i) {
      h[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
    }
    return h;
  };
  struct Case {
    const char* name;
    std::string bytes;  // everything after the hello
    bool answered;      // the server echoes the hello first
  };
  const std::vector<Case> cases = {
      {"bad hello", "RKZAB99\n", false},
      {"empty frame", hello + header(0), true},
      {"frame too long",
       hello + header(static_cast<uint32_t>(kMaxFrameBytes + 1)), true},
      {"bad batch tag", hello + Frame(std::string("\x12\x01x", 3)), true},
      {"garbage message", hello + Frame(Batch({"\xff\xff\xff garbage"})), true},
      {"unknown from", hello + Frame(Batch({Enc(MsgType::kPing, 99, 1)})),
       true},
      {"wrong to", hello + Frame(Batch({Enc(MsgType::kPing, 2, 3)})), true},
      {"vote on the quorum port",
       hello + Frame(Batch({Enc(MsgType::kVote, 2, 1)})), true},
      {"from changes",
       hello + Frame(Batch({Enc(MsgType::kPing, 2, 1)})) +
           Frame(Batch({Enc(MsgType::kPing, 3, 1)})),
       true},
  };
  for (const Case& c : cases) {
    bool closed = false;
    const std::string got = RawTcp(quorum, {c.bytes}, &closed);
    EXPECT_TRUE(closed) << c.name;
    EXPECT_EQ(got, c.answered ? hello : "") << c.name;
  }
  EXPECT_EQ(t_[1]->Stats().rejected_streams,
            static_cast<int64_t>(cases.size()));
  ASSERT_EQ(sinks_[1]->Count(), 1u);  // the first ping of "from changes"
  // A frame sent in pieces and a clean hang-up: accepted, no reject.
  {
    const std::string frame =
        Frame(Batch({Enc(MsgType::kPing, 2, 1), Enc(MsgType::kCommit, 2, 1)}));
    bool closed = false;
    const std::string got =
        RawTcp(quorum, {hello, frame.substr(0, 3), frame.substr(3)}, &closed);
    EXPECT_TRUE(closed);
    EXPECT_EQ(got, hello);
  }
  ASSERT_TRUE(WaitUntil([&] { return sinks_[1]->Count() == 3; }));
  EXPECT_EQ(t_[1]->Stats().rejected_streams,
            static_cast<int64_t>(cases.size()));
  // The transports still talk, over raw streams.
  ASSERT_TRUE(WaitUntil([&] { return t_[2]->Stats().open_raw_streams == 1; }));
  t_[2]->Send(Make(MsgType::kCommit, 2, 1, 7));
  ASSERT_TRUE(WaitUntil([&] { return sinks_[1]->Count() == 4; }));
}

// A server from before Peer.StreamBatch: only Peer.Stream, one ZabMessage
// per gRPC message (the generated base answers StreamBatch UNIMPLEMENTED).
class LegacyPeerServer final
    : public peer::v1::Peer::WithRawCallbackMethod_Stream<
          peer::v1::Peer::Service> {
 public:
  grpc::ServerReadReactor<grpc::ByteBuffer>* Stream(
      grpc::CallbackServerContext*, grpc::ByteBuffer* response) override {
    class Reader : public grpc::ServerReadReactor<grpc::ByteBuffer> {
     public:
      Reader(LegacyPeerServer* server, grpc::ByteBuffer* response)
          : server_(server), response_(response) {
        StartRead(&buf_);
      }
      void OnReadDone(bool ok) override {
        if (!ok) {
          grpc::Slice summary(peer::v1::StreamSummary().SerializeAsString());
          *response_ = grpc::ByteBuffer(&summary, 1);
          Finish(grpc::Status::OK);
          return;
        }
        std::vector<grpc::Slice> slices;
        std::string bytes;
        if (buf_.Dump(&slices).ok()) {
          for (const grpc::Slice& s : slices) {
            bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
          }
        }
        server_->Got(bytes);
        StartRead(&buf_);
      }
      void OnDone() override { delete this; }

     private:
      LegacyPeerServer* const server_;
      grpc::ByteBuffer* const response_;
      grpc::ByteBuffer buf_;
    };
    return new Reader(this, response);
  }
  void Got(const std::string& bytes) {
    absl::MutexLock l(&mu_);
    auto m = DecodeMessage(bytes);  // a batch would not decode
    if (m.ok()) {
      seqs_.push_back(m->seq);
    } else {
      ++undecodable_;
    }
  }
  std::vector<int64_t> seqs() {
    absl::MutexLock l(&mu_);
    return seqs_;
  }
  int undecodable() {
    absl::MutexLock l(&mu_);
    return undecodable_;
  }

 private:
  absl::Mutex mu_;
  std::vector<int64_t> seqs_ ABSL_GUARDED_BY(mu_);
  int undecodable_ ABSL_GUARDED_BY(mu_) = 0;
};

// Rolling upgrade: a peer that answers StreamBatch UNIMPLEMENTED gets the
// old one-message-per-gRPC-message stream after one failed attempt (whose
// messages are lost, as on any broken stream), and then every message.
TEST_F(PeerTransportTest, FallsBackToPlainStreamsForAnOlderPeer) {
  LegacyPeerServer legacy;  // "server 1" is the old one
  std::unique_ptr<grpc::Server> server = StartBesideFake(&legacy);
  ASSERT_NE(server, nullptr);
  // Probe until the fallback has happened (bounded): a ping lost with the
  // UNIMPLEMENTED stream is simply resent.
  int64_t n = 0;
  ASSERT_TRUE(WaitUntil(
      [&] {
        t_[2]->Send(Make(MsgType::kPing, 2, 1, ++n));
        return !legacy.seqs().empty();
      },
      absl::Seconds(30)));
  EXPECT_GE(sinks_[2]->Disconnects(1), 1);  // the refused batch stream
  const int64_t first = n + 1;
  for (int64_t i = first; i < first + 500; ++i) {
    t_[2]->Send(Make(MsgType::kProposal, 2, 1, i));
  }
  ASSERT_TRUE(WaitUntil([&] {
    const auto seqs = legacy.seqs();
    return !seqs.empty() && seqs.back() == first + 499;
  }));
  // The 500 arrived in order, each as a message of its own.
  const auto seqs = legacy.seqs();
  const auto it = std::find(seqs.begin(), seqs.end(), first);
  ASSERT_NE(it, seqs.end());
  ASSERT_EQ(seqs.end() - it, 500);
  for (int64_t i = 0; i < 500; ++i) EXPECT_EQ(*(it + i), first + i);
  EXPECT_EQ(legacy.undecodable(), 0);
  EXPECT_EQ(t_[2]->Stats().open_raw_streams, 0);  // it knows no raw streams
  t_[2]->Stop();
  server->Shutdown();
}

TEST_F(PeerTransportTest, StopWithQueuedMessagesIsPrompt) {
  Configure(2);
  ASSERT_TRUE(StartOne(1).ok());
  ASSERT_TRUE(StartOne(2).ok());
  ASSERT_TRUE(WaitConnected(1, 2));
  {
    absl::MutexLock l(&sinks_[2]->mu);
    sinks_[2]->hold = true;  // 2 stops reading: 1's sender stalls
  }
  const absl::Time start = absl::Now();
  for (int n = 1; n <= 150; ++n) {
    Message m = Make(MsgType::kProposal, 1, 2, n);
    m.entry.data.assign(1 << 20, 'p');
    t_[1]->Send(std::move(m));
  }
  // Hang detectors, not timing checks: a Send that blocked, or a Stop that
  // waited for the held peer to drain the queue, would never return.
  EXPECT_LT(absl::Now() - start, absl::Seconds(60));
  EXPECT_GT(t_[1]->Stats().dropped, 0);  // over the bound
  const absl::Time stop = absl::Now();
  t_[1]->Stop();
  EXPECT_LT(absl::Now() - stop, absl::Seconds(60));
  t_[1]->Stop();  // idempotent
  EXPECT_LT(t_[1]->Stats().sent_quorum, 150);
  t_[1]->Send(Make(MsgType::kPing, 1, 2, 1));  // after Stop: dropped
  {
    absl::MutexLock l(&sinks_[2]->mu);
    sinks_[2]->hold = false;
  }
  t_[2]->Stop();
  const size_t after_stop = sinks_[2]->Count();
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(sinks_[2]->Count(), after_stop);  // no callback after Stop
}

TEST_F(PeerTransportTest, FetchSnapshotCopiesEveryFileExactly) {
  namespace fs = std::filesystem;
  Configure(2);
  const fs::path root =
      fs::temp_directory_path() / absl::StrCat("rk-snapfetch-", ::getpid());
  fs::remove_all(root);
  const fs::path snaps = root / "snapshots";
  const fs::path snap = snaps / engine::SnapshotStore::NameForZxid(0x100000007);
  fs::create_directories(snap);
  // A file spanning several chunks, a small one and an empty one.
  std::string big(3 * (1 << 20) + 12345, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 31);
  std::ofstream(snap / "000010.sst", std::ios::binary) << big;
  std::ofstream(snap / "CURRENT", std::ios::binary) << "MANIFEST-000005\n";
  std::ofstream(snap / "EMPTY", std::ios::binary);
  ASSERT_TRUE(StartOne(1, {}, [&](PeerTransportOptions& o) {
                o.snapshot_dir = snaps.string();
              }).ok());
  ASSERT_TRUE(StartOne(2).ok());
  const fs::path target = root / "fetched";
  absl::Status st = t_[2]->FetchSnapshot(1, 0x100000007, target.string());
  ASSERT_TRUE(st.ok()) << st;
  auto read = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(read(target / "000010.sst"), big);
  EXPECT_EQ(read(target / "CURRENT"), "MANIFEST-000005\n");
  EXPECT_TRUE(fs::exists(target / "EMPTY"));
  EXPECT_FALSE(fs::exists(root / "fetched.incoming"));
  // A snapshot the peer does not have: NOT_FOUND, nothing left behind.
  st = t_[2]->FetchSnapshot(1, 0x100000008, (root / "missing").string());
  EXPECT_FALSE(st.ok());
  EXPECT_FALSE(fs::exists(root / "missing"));
  EXPECT_FALSE(fs::exists(root / "missing.incoming"));
  // A server that serves no snapshots, or an unknown peer.
  EXPECT_FALSE(
      t_[1]->FetchSnapshot(2, 0x100000007, (root / "x").string()).ok());
  EXPECT_FALSE(
      t_[2]->FetchSnapshot(9, 0x100000007, (root / "y").string()).ok());
  fs::remove_all(root);
}

// The leader's snapshot thread may purge a snapshot while a follower fetches
// it: the fetch still gets every file whole.
TEST_F(PeerTransportTest, FetchSnapshotSurvivesAPurgeOfTheSnapshot) {
  namespace fs = std::filesystem;
  Configure(2);
  const fs::path root =
      fs::temp_directory_path() / absl::StrCat("rk-snappurge-", ::getpid());
  fs::remove_all(root);
  const fs::path snaps = root / "snapshots";
  const fs::path snap = snaps / engine::SnapshotStore::NameForZxid(0x100000009);
  fs::create_directories(snap);
  // Two files of many chunks: the purge lands while the first is sent.
  std::string big(24 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  std::ofstream(snap / "000011.sst", std::ios::binary) << big;
  std::ofstream(snap / "000012.sst", std::ios::binary) << big;
  ASSERT_TRUE(StartOne(1, {}, [&](PeerTransportOptions& o) {
                o.snapshot_dir = snaps.string();
              }).ok());
  ASSERT_TRUE(StartOne(2).ok());
  const fs::path target = root / "fetched";
  const fs::path incoming = root / "fetched.incoming";
  absl::Status st;
  std::thread fetch(
      [&] { st = t_[2]->FetchSnapshot(1, 0x100000009, target.string()); });
  // Bounded poll: until the first bytes arrived (or the fetch ended).
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  bool receiving = false;
  while (!receiving && absl::Now() < deadline && !fs::exists(target)) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(incoming, ec)) {
      if (e.is_regular_file(ec) && e.file_size(ec) > 0) receiving = true;
    }
    if (!receiving) absl::SleepFor(absl::Milliseconds(1));
  }
  fs::remove_all(snap);  // the purge
  fetch.join();
  ASSERT_TRUE(st.ok()) << st;
  EXPECT_TRUE(receiving) << "the fetch ended before the purge";
  auto read = [](const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(read(target / "000011.sst"), big);
  EXPECT_EQ(read(target / "000012.sst"), big);
  fs::remove_all(root);
}

// A peer that sends a snapshot chunk whose checksum does not match.
class CorruptSnapshotServer final : public peer::v1::Peer::Service {
  grpc::Status FetchSnapshot(
      grpc::ServerContext*, const peer::v1::FetchSnapshotRequest*,
      grpc::ServerWriter<peer::v1::SnapshotChunk>* out) override {
    peer::v1::SnapshotChunk c;
    c.set_file("CURRENT");
    c.set_data("MANIFEST-000001\n");
    c.set_file_size(16);
    c.set_crc32c(12345);  // wrong
    out->Write(c);
    return grpc::Status::OK;
  }
};

TEST_F(PeerTransportTest, FetchSnapshotRefusesACorruptChunk) {
  namespace fs = std::filesystem;
  CorruptSnapshotServer fake;  // "server 1" is the fake
  std::unique_ptr<grpc::Server> server = StartBesideFake(&fake);
  ASSERT_NE(server, nullptr);
  const fs::path target =
      fs::temp_directory_path() / absl::StrCat("rk-snapbad-", ::getpid());
  absl::Status st = t_[2]->FetchSnapshot(1, 0x100000001, target.string());
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss) << st;
  EXPECT_NE(st.message().find("checksum"), std::string::npos) << st;
  EXPECT_FALSE(fs::exists(target));
  EXPECT_FALSE(fs::exists(target.string() + ".incoming"));
  server->Shutdown();
}

TEST_F(PeerTransportTest, StartRefusesTakenPortsAndBadOptions) {
  Configure(2);
  ASSERT_TRUE(StartOne(1).ok());
  PeerTransportOptions o;
  o.my_id = 1;
  o.peers = peers_;
  EXPECT_FALSE(PeerTransport::Start(o, nullptr, nullptr).ok());
  o.my_id = 7;
  EXPECT_FALSE(PeerTransport::Start(o, nullptr, nullptr).ok());
  o.my_id = 2;
  o.peers[2].election_port = 0;
  EXPECT_FALSE(PeerTransport::Start(o, nullptr, nullptr).ok());
}

}  // namespace
}  // namespace rockeeper::zab
