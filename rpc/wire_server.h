// WireServer: the ZooKeeper client wire protocol (jute over TCP) on
// clientPort, so existing ZooKeeper clients (kazoo, the Java and C clients,
// zkCli.sh) can use rockeeper.
//
// It is a second encoding of the same service: each ZooKeeper request is
// translated to its rockeeper.v1 request and handed to the service's
// transport-neutral entry point (RockeeperService::GetData(CallInfo, ...)),
// called directly, with the connection's session id and client IP in the
// CallInfo; a connection's watch events come from its session's EventHub
// queue (RockeeperService::AttachEvents). One semantics, one session table,
// one watch manager for both protocols.
//
// Order: the loop thread calls the service in the order it read a
// connection's requests, and the service runs a session's requests in the
// order of the calls (ZooKeeper's per-session FIFO).
//
// Network: `threads` epoll threads; each owns the sockets of its
// connections (non-blocking reads and writes) and runs their reads
// (answered inline); writes complete on the service's completion threads.
// A reply goes into its slot under the connection's mutex, and the
// connection's output is written once per batch of work (an epoll round, a
// batch of completions). Replies leave in request order; a reply whose
// header.event_seq is N waits until the connection has written every watch
// event up to N (ZooKeeper's ordering guarantee). A session that is closed or expires, or that another
// connection resumes, ends the connection after the replies it owes.
// A malformed frame closes that connection only.
#ifndef ROCKEEPER_RPC_WIRE_SERVER_H_
#define ROCKEEPER_RPC_WIRE_SERVER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "rpc/four_letter_words.h"
#include "rpc/metrics.h"

namespace rockeeper::rpc {

struct WireServerOptions {
  // Listen address and port (0 = any free port). Defaults: 0.0.0.0, 2181.
  std::string address = "0.0.0.0";
  int port = 2181;
  // Event-loop threads ("rk-wire"), each owning the sockets of the
  // connections it was given (round-robin at accept) and running their
  // reads; the first also accepts. Values below 1 mean 1. Default: 1.
  int threads = 1;
  // Largest frame accepted (jute.maxbuffer). Default: 0xFFFFF bytes.
  int64_t max_frame_bytes = 0xFFFFF;
  // Most bytes queued for one slow client before it is disconnected.
  // Default: 64 MiB.
  size_t max_output_bytes = 64u << 20;
  // Answers four-letter words sent instead of a handshake.
  FourLetterWords four_letter_words;
  // Counters (packets, bytes, connections, watch events); must outlive the
  // server. Null: the server keeps its own.
  ServerMetrics* metrics = nullptr;
};

class RockeeperService;

class WireServer {
 public:
  // Binds and starts the event loop. `service` runs the requests; it must
  // outlive the server (and its completions of calls still in flight).
  static absl::StatusOr<std::unique_ptr<WireServer>> Start(
      const WireServerOptions& options, RockeeperService* service);
  ~WireServer();  // closes every connection and joins the loop
  int port() const;

  struct Stats {
    int64_t connections = 0;       // open now
    int64_t packets_received = 0;  // frames read
    int64_t packets_sent = 0;      // frames written (replies and events)
  };
  Stats stats() const;
  void ResetStats();
  // Every open connection with its statistics (cons, stat).
  std::vector<ConnectionInfo> connections() const;
  // Resets the per-connection statistics (crst).
  void ResetConnectionStats();

  class Impl;

 private:
  explicit WireServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_WIRE_SERVER_H_
