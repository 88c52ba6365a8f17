#include "server/quorum_member.h"

#include <algorithm>
#include <utility>

namespace rockeeper::server {

replication::QuorumReplicaOptions QuorumReplicaOptionsFrom(
    const ServerConfig& cfg) {
  replication::QuorumReplicaOptions o;
  o.data_dir = cfg.data_dir;
  o.data_log_dir = cfg.data_log_dir == cfg.data_dir ? "" : cfg.data_log_dir;
  o.prep.extended_types_enabled = cfg.extended_types_enabled;
  o.prep.skip_acl = cfg.skip_acl;
  o.prep.enforce_quota = cfg.enforce_quota;
  o.state_db.block_cache_bytes =
      static_cast<size_t>(cfg.block_cache_size_bytes);
  o.state_db.write_buffer_bytes =
      static_cast<size_t>(cfg.write_buffer_size_bytes);
  o.state_db.children_cache_bytes =
      static_cast<size_t>(cfg.children_cache_size_bytes);
  o.state_db.row_cache_bytes = static_cast<size_t>(cfg.row_cache_size_bytes);
  o.state_db.znode_cache_bytes =
      static_cast<size_t>(cfg.znode_cache_size_bytes);
  o.log_preallocate_bytes = static_cast<uint64_t>(cfg.pre_alloc_size_bytes);
  o.force_sync = cfg.force_sync;
  o.snap_count = cfg.snap_count;
  o.snap_retain_count = static_cast<int>(cfg.autopurge_snap_retain_count);
  // autopurge.purgeInterval > 0: purge after each snapshot instead of on a
  // timer (the same retention, sooner).
  o.purge_after_snapshot = cfg.autopurge_purge_interval_hours > 0;
  o.node.my_id = cfg.my_id;
  for (const ServerLine& s : cfg.servers) {
    (s.is_observer ? o.node.observers : o.node.participants).insert(s.id);
  }
  o.node.tick_ms = cfg.tick_time_ms;
  o.node.init_limit = cfg.init_limit_ticks;
  o.node.sync_limit = cfg.sync_limit_ticks;
  // Ticks are checked every tickTime/10 (at least 1 ms, at most 10 ms) so
  // timeouts fire close to when they expire.
  o.tick_interval_ms = std::clamp<int64_t>(cfg.tick_time_ms / 10, 1, 10);
  return o;
}

zab::PeerTransportOptions PeerTransportOptionsFrom(const ServerConfig& cfg) {
  zab::PeerTransportOptions o;
  o.my_id = cfg.my_id;
  o.snapshot_dir = cfg.data_dir + "/snapshots";
  for (const ServerLine& s : cfg.servers) {
    o.peers[s.id] = zab::PeerAddress{s.host, s.quorum_port, s.election_port};
  }
  return o;
}

absl::StatusOr<std::unique_ptr<QuorumMember>> QuorumMember::Start(
    const ServerConfig& cfg,
    std::function<void(size_t txns, int64_t append_us)> on_log_batch,
    std::function<void(const engine::SnapshotInfo&, int64_t took_ms)>
        on_snapshot) {
  std::unique_ptr<QuorumMember> m(new QuorumMember());
  QuorumMember* raw = m.get();
  replication::QuorumReplicaOptions options = QuorumReplicaOptionsFrom(cfg);
  options.on_log_batch = std::move(on_log_batch);
  options.on_snapshot = std::move(on_snapshot);
  options.fetch_snapshot = [raw](int64_t from, int64_t zxid,
                                 const std::string& target) {
    zab::PeerTransport* t = raw->transport_ptr_.load();
    if (t == nullptr) return absl::UnavailableError("transport stopped");
    return t->FetchSnapshot(from, zxid, target);
  };
  options.flush_sends = [raw] {
    zab::PeerTransport* t = raw->transport_ptr_.load();
    if (t != nullptr) t->Flush();
  };
  absl::StatusOr<std::unique_ptr<replication::QuorumReplica>> replica =
      replication::QuorumReplica::Open(options, [raw](zab::Message msg) {
        // Before the transport is up (or after Stop) the message is
        // lost; the core repeats what matters. Sent at flush_sends.
        zab::PeerTransport* t = raw->transport_ptr_.load();
        if (t != nullptr) t->Send(std::move(msg), /*flush=*/false);
      });
  if (!replica.ok()) return replica.status();
  m->replica_ = *std::move(replica);
  replication::QuorumReplica* r = m->replica_.get();
  absl::StatusOr<std::unique_ptr<zab::PeerTransport>> transport =
      zab::PeerTransport::Start(
          PeerTransportOptionsFrom(cfg),
          [r](zab::Message msg) { r->Deliver(std::move(msg)); },
          [r](int64_t peer) { r->PeerDisconnected(peer); },
          [r](std::vector<zab::Message> msgs) {
            r->DeliverAndRun(std::move(msgs));
          });
  if (!transport.ok()) return transport.status();
  m->transport_ = *std::move(transport);
  m->transport_ptr_.store(m->transport_.get());
  return m;
}

void QuorumMember::Stop() {
  transport_ptr_.store(nullptr);
  if (transport_ != nullptr) transport_->Stop();
  replica_.reset();
}

QuorumMember::~QuorumMember() { Stop(); }

}  // namespace rockeeper::server
