// PeerTransport: the network between the servers of an ensemble, the I/O
// adapter that carries zab::Message values (replication/zab/messages.h)
// between zab::Node cores: on the quorum port as raw streams (plain TCP,
// framing in replication/zab/codec.h) or, with an older peer, as
// rockeeper.peer.v1.ZabMessage over gRPC
// (proto/rockeeper/peer/v1/peer_service.proto); votes always over gRPC.
//
// Shape: every server listens on its quorum port and on its election port.
// The quorum port is the transport's own listener: a connection whose
// first byte is that of the raw hello is a raw stream, any other is handed
// to the gRPC server (Peer.Stream / StreamBatch of older peers, SNAP's
// FetchSnapshot). For each peer a server keeps two outgoing streams, one to
// the peer's election port (kVote messages, gRPC) and one to its quorum
// port (all other types: a raw stream, or gRPC if the peer does not answer
// the raw hello), each fed by a FIFO queue and one sender thread. Messages
// from a peer arrive on the peer's own outgoing streams. Peers are dialed
// only at the addresses in the options (what a peer says about itself is
// never used), so a server cannot be talked into connecting elsewhere.
//
// Delivery: at most once, FIFO per (peer, port). Messages are dropped, never
// blocked on, when the peer is unreachable (the queue is discarded at each
// failed connect or broken stream) or its queue bound is exceeded; the core
// detects the gap by sequence numbers and starts the connection over.
// Streams are re-dialed with exponential backoff.
//
// Incoming streams are checked message by message: undecodable bytes
// (zab::DecodeMessage, and for raw streams the hello and frame lengths), a
// `from` that is not a configured peer (or is us) or differs from the
// stream's first message, `to` != my_id, or a message on the wrong port (a
// vote on the quorum port, anything else on the election port) end the
// stream (gRPC: with INVALID_ARGUMENT) and count a rejected stream. There is
// no authentication: like ZooKeeper without quorum SASL/TLS, anyone who can
// reach the ports can speak for a configured peer, so keep them on a
// private network.
//
// Thread safety: Send, Flush, Stats and Stop are thread-safe. Callbacks:
// - ReceiveFn runs on gRPC's callback threads and on the raw streams' reader
//   threads, concurrently for different incoming streams but in order for
//   one stream. It should hand the message off quickly (it holds up that
//   stream).
// - DisconnectFn runs on the sender thread of the peer's quorum stream, once
//   per broken stream or failed connect attempt (attempts are spaced by the
//   backoff, so a down peer yields at most about one call per
//   max_backoff_ms). Election-port failures are not reported: votes are
//   lossy by design and the core re-sends them, while a disconnect makes a
//   learner give up on its leader.
// Callbacks may call Send but must not call Stop or destroy the transport.
// No callback runs after Stop returns.
#ifndef ROCKEEPER_REPLICATION_ZAB_PEER_TRANSPORT_H_
#define ROCKEEPER_REPLICATION_ZAB_PEER_TRANSPORT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "replication/zab/messages.h"

namespace rockeeper::zab {

struct PeerAddress {
  std::string host;  // name or IP literal (IPv6 without brackets is fine)
  int quorum_port = 0;
  int election_port = 0;
};

struct PeerTransportOptions {
  int64_t my_id = 0;
  // Every member including my_id; my entry says where to listen.
  std::map<int64_t, PeerAddress> peers;
  // Delay before re-dialing after a failure: starts here, doubles per
  // consecutive failure up to max_backoff_ms. Defaults: 50 ms, 1 s.
  int64_t initial_backoff_ms = 50;
  int64_t max_backoff_ms = 1000;
  // How long one connect attempt may take. Default: 1 s.
  int64_t connect_timeout_ms = 1000;
  // Encoded bytes queued per (peer, port) before new messages are dropped.
  // Default: 64 MiB.
  int64_t max_queue_bytes = 64 << 20;
  // This server's snapshots directory (<dataDir>/snapshots), served to
  // learners for SNAP sync on the quorum port. Empty: none served.
  std::string snapshot_dir;
};

// Counters since Start. Election = the election-port path.
struct PeerTransportStats {
  int64_t sent_quorum = 0;  // written to an outgoing stream
  int64_t sent_election = 0;
  int64_t received_quorum = 0;  // accepted and passed to ReceiveFn
  int64_t received_election = 0;
  int64_t dropped = 0;           // queued or submitted but never written
  int64_t rejected_streams = 0;  // incoming streams ended INVALID_ARGUMENT
  int64_t disconnects = 0;       // broken streams + failed connects (any port)
  int64_t open_streams = 0;      // outgoing streams open now
  int64_t open_raw_streams = 0;  // of which raw streams (quorum port)
  int64_t raw_streams_in = 0;    // incoming raw streams accepted
  int64_t flushed_inline = 0;    // messages Flush wrote from its caller
  int64_t partial_flushes = 0;   // inline writes the socket took in part
};

class PeerTransport {
 public:
  using ReceiveFn = std::function<void(Message)>;
  using DisconnectFn = std::function<void(int64_t peer)>;
  // The messages of one frame of a raw stream, in order, on that stream's
  // reader thread. It may block (it holds up only that stream): the ZAB
  // driver runs its round there (QuorumReplica::DeliverAndRun).
  using RawFrameFn = std::function<void(std::vector<Message>)>;

  // Validates the options, binds both listening ports (fails if either is
  // taken) and starts dialing every peer. Messages of raw streams go to
  // `on_raw_frame` if given, else to `on_receive` one by one.
  static absl::StatusOr<std::unique_ptr<PeerTransport>> Start(
      PeerTransportOptions options, ReceiveFn on_receive,
      DisconnectFn on_disconnect, RawFrameFn on_raw_frame = nullptr);

  class Impl;
  explicit PeerTransport(std::unique_ptr<Impl> impl);  // use Start
  PeerTransport(const PeerTransport&) = delete;
  PeerTransport& operator=(const PeerTransport&) = delete;
  ~PeerTransport();  // Stop()

  // Queues `m` for m.to; never blocks on the network. kVote goes to the
  // peer's election port, everything else to its quorum port. Messages to
  // an unknown peer or to my_id, or after Stop, are dropped. With `flush`
  // false the message waits for the next Flush (or Send with flush; the
  // sender thread also takes it on its own within about 100 ms).
  void Send(Message m, bool flush = true);
  // Starts sending what Send queued without flush: for a peer whose raw
  // stream is idle, written from the calling thread (one nonblocking write
  // per peer, which saves the sender thread's wake-up on a proposal's or
  // ack's path); otherwise by the sender thread. Never blocks on the
  // network.
  void Flush();
  // Closes all streams, stops listening and joins the transport's threads;
  // queued messages are dropped. Idempotent.
  void Stop();
  PeerTransportStats Stats() const;
  // SNAP sync: copies server `from`'s snapshot at `zxid` (Peer.FetchSnapshot
  // on its quorum port) into the new directory `target_dir`, checking every
  // file's size, fsyncing it, and renaming it into place only when complete.
  // Blocking; thread-safe.
  absl::Status FetchSnapshot(int64_t from, int64_t zxid,
                             const std::string& target_dir,
                             absl::Duration timeout = absl::Minutes(10));

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace rockeeper::zab

#endif  // ROCKEEPER_REPLICATION_ZAB_PEER_TRANSPORT_H_
