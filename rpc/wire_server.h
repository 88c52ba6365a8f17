// WireServer: the ZooKeeper client wire protocol (jute over TCP) on
// clientPort, so existing ZooKeeper clients (kazoo, the Java and C clients,
// zkCli.sh) can use rockeeper.
//
// It is a second encoding of the same service: each ZooKeeper request is
// translated to its rockeeper.v1 request and executed by the gRPC service
// in-process (an in-process channel, no network hop), with the session id
// and the client's IP in the call metadata; watch events come from the
// session's Session stream. One semantics, one session table, one watch
// manager for both protocols.
//
// Order: each call carries "rk-order: <connection>:<seq>" metadata so the
// service admits a connection's requests in the order they were read
// (concurrent in-process calls may reach their handlers in any order).
//
// Network: one epoll thread owns every socket (non-blocking reads and
// writes); gRPC completions append replies to a connection's output under
// its mutex and wake the loop through an eventfd. Replies leave in request
// order; a reply whose header.event_seq is N waits until the connection has
// written every watch event up to N (ZooKeeper's ordering guarantee).
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
#include "grpcpp/channel.h"
#include "rpc/four_letter_words.h"
#include "rpc/metrics.h"

namespace rockeeper::rpc {

struct WireServerOptions {
  // Listen address and port (0 = any free port). Defaults: 0.0.0.0, 2181.
  std::string address = "0.0.0.0";
  int port = 2181;
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
  // Called once per connection, after it closed and its last call to the
  // service completed, with the connection number it sent in its calls'
  // rk-order metadata (RockeeperService::ForgetConnection). May be null.
  std::function<void(uint64_t)> on_connection_closed;
};

class WireServer {
 public:
  // Binds and starts the event loop. `channel` reaches the gRPC service
  // (Server::InProcessChannel).
  static absl::StatusOr<std::unique_ptr<WireServer>> Start(
      const WireServerOptions& options, std::shared_ptr<grpc::Channel> channel);
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
