// QuorumMember: this server's seat in a ZAB ensemble, built from zoo.cfg: a
// QuorumReplica (the write path) wired to a PeerTransport (the quorum and
// election ports of its server.N line), each feeding the other.
//
// Thread safety: as QuorumReplica; Stop is idempotent.
#ifndef ROCKEEPER_SERVER_QUORUM_MEMBER_H_
#define ROCKEEPER_SERVER_QUORUM_MEMBER_H_

#include <atomic>
#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "replication/quorum_replica.h"
#include "replication/zab/peer_transport.h"
#include "server/config.h"

namespace rockeeper::server {

// The replica options a quorum config implies (ensemble, timing, dirs,
// Prep and RocksDB settings). REQUIRES: !cfg.standalone(), cfg.my_id set.
replication::QuorumReplicaOptions QuorumReplicaOptionsFrom(
    const ServerConfig& cfg);
// The transport options: every server.N line's host and ports.
zab::PeerTransportOptions PeerTransportOptionsFrom(const ServerConfig& cfg);

class QuorumMember {
 public:
  // Opens the data dirs, binds the quorum and election ports, and starts
  // looking for a leader.
  // `on_log_batch`, `on_snapshot`: see QuorumReplicaOptions (may be null).
  static absl::StatusOr<std::unique_ptr<QuorumMember>> Start(
      const ServerConfig& cfg,
      std::function<void(size_t txns, int64_t append_us)> on_log_batch =
          nullptr,
      std::function<void(const engine::SnapshotInfo&, int64_t took_ms)>
          on_snapshot = nullptr);
  ~QuorumMember();

  replication::QuorumReplica& replica() { return *replica_; }
  // Stops the transport, then the replica (pending requests fail).
  void Stop();

 private:
  QuorumMember() = default;
  std::atomic<zab::PeerTransport*> transport_ptr_{nullptr};
  std::unique_ptr<replication::QuorumReplica> replica_;
  std::unique_ptr<zab::PeerTransport> transport_;
};

}  // namespace rockeeper::server

#endif  // ROCKEEPER_SERVER_QUORUM_MEMBER_H_
