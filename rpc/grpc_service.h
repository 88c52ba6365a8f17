// The rockeeper.v1.Rockeeper gRPC service (proto/rockeeper/v1/rockeeper.proto)
// over a StandaloneReplica: writes go through the replica's write path and
// wait for their txn to apply; reads run on the state DB with ZooKeeper's
// ACL checks. Sessions live in a SessionTracker; an expiry thread closes
// sessions whose clients stopped heartbeating.
//
// Thread safety: gRPC calls handlers from its thread pool; all state is in
// thread-safe members.
#ifndef ROCKEEPER_RPC_GRPC_SERVICE_H_
#define ROCKEEPER_RPC_GRPC_SERVICE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <atomic>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "replication/standalone_replica.h"
#include "rockeeper/v1/rockeeper.grpc.pb.h"
#include "rpc/event_hub.h"
#include "rpc/session_tracker.h"
#include "rpc/watch_manager.h"

namespace rockeeper::rpc {

struct ServiceOptions {
  // This server's id (myid); 0 standalone. Default: 0.
  int64_t server_id = 0;
  // Negotiated session timeouts are clamped into [min, max]. Defaults: 2 and
  // 20 ticks of 2000 ms.
  int32_t min_session_timeout_ms = 4000;
  int32_t max_session_timeout_ms = 40000;
  // "super:<base64 sha1>": AddAuth digest with this identity becomes super.
  // Default: empty (no super user).
  std::string super_digest;
  // Largest accepted znode data (jute.maxbuffer). Default: 1 MiB - 1.
  size_t max_data_bytes = 0xFFFFF;
  // globalOutstandingLimit: requests handled at once; beyond it calls fail
  // fast with RESOURCE_EXHAUSTED instead of queueing. Default: 1000.
  int64_t max_outstanding_requests = 1000;
  // maxClientCnxns: live sessions one client IP may hold (0 = unlimited);
  // Connect beyond it fails with RESOURCE_EXHAUSTED. Default: 60.
  int64_t max_sessions_per_ip = 60;
  // How often expired sessions are looked for. Default: 500 ms.
  absl::Duration expiry_interval = absl::Milliseconds(500);
  // Container/TTL reaper (znode.container.checkIntervalMs,
  // znode.container.maxPerMinute): how often empty containers and expired
  // TTL nodes are looked for, and how many are deleted per minute at most.
  // Defaults: 60 s, 10000.
  absl::Duration container_check_interval = absl::Seconds(60);
  int64_t container_max_per_minute = 10000;
};

class RockeeperService final : public v1::Rockeeper::Service {
 public:
  RockeeperService(replication::StandaloneReplica* replica,
                   ServiceOptions options);
  ~RockeeperService() override;

  grpc::Status Connect(grpc::ServerContext*, const v1::ConnectRequest*,
                       v1::ConnectResponse*) override;
  grpc::Status Close(grpc::ServerContext*, const v1::CloseRequest*,
                     v1::CloseResponse*) override;
  grpc::Status Heartbeat(grpc::ServerContext*, const v1::HeartbeatRequest*,
                         v1::HeartbeatResponse*) override;
  grpc::Status Create(grpc::ServerContext*, const v1::CreateRequest*,
                      v1::CreateResponse*) override;
  grpc::Status Delete(grpc::ServerContext*, const v1::DeleteRequest*,
                      v1::DeleteResponse*) override;
  grpc::Status SetData(grpc::ServerContext*, const v1::SetDataRequest*,
                       v1::SetDataResponse*) override;
  grpc::Status SetAcl(grpc::ServerContext*, const v1::SetAclRequest*,
                      v1::SetAclResponse*) override;
  grpc::Status Multi(grpc::ServerContext*, const v1::MultiRequest*,
                     v1::MultiResponse*) override;
  grpc::Status Exists(grpc::ServerContext*, const v1::ExistsRequest*,
                      v1::ExistsResponse*) override;
  grpc::Status GetData(grpc::ServerContext*, const v1::GetDataRequest*,
                       v1::GetDataResponse*) override;
  grpc::Status GetChildren(grpc::ServerContext*, const v1::GetChildrenRequest*,
                           v1::GetChildrenResponse*) override;
  grpc::Status GetAcl(grpc::ServerContext*, const v1::GetAclRequest*,
                      v1::GetAclResponse*) override;
  grpc::Status MultiRead(grpc::ServerContext*, const v1::MultiReadRequest*,
                         v1::MultiReadResponse*) override;
  grpc::Status GetEphemerals(grpc::ServerContext*,
                             const v1::GetEphemeralsRequest*,
                             v1::GetEphemeralsResponse*) override;
  grpc::Status GetAllChildrenNumber(grpc::ServerContext*,
                                    const v1::GetAllChildrenNumberRequest*,
                                    v1::GetAllChildrenNumberResponse*) override;
  grpc::Status Sync(grpc::ServerContext*, const v1::SyncRequest*,
                    v1::SyncResponse*) override;
  grpc::Status AddAuth(grpc::ServerContext*, const v1::AddAuthRequest*,
                       v1::AddAuthResponse*) override;
  grpc::Status WhoAmI(grpc::ServerContext*, const v1::WhoAmIRequest*,
                      v1::WhoAmIResponse*) override;
  grpc::Status AddWatch(grpc::ServerContext*, const v1::AddWatchRequest*,
                        v1::AddWatchResponse*) override;
  grpc::Status RemoveWatches(grpc::ServerContext*,
                             const v1::RemoveWatchesRequest*,
                             v1::RemoveWatchesResponse*) override;
  grpc::Status SetWatches(grpc::ServerContext*, const v1::SetWatchesRequest*,
                          v1::SetWatchesResponse*) override;
  grpc::Status Session(
      grpc::ServerContext*,
      grpc::ServerReaderWriter<v1::SessionMessage, v1::SessionRequest>*)
      override;

  SessionTracker& sessions() { return sessions_; }
  const WatchManager& watches() const { return watches_; }

 private:
  struct Caller;
  Caller ResolveCaller(grpc::ServerContext* context);
  replication::SubmitResult SubmitAndWait(const engine::RequestContext& ctx,
                                          const engine::WriteRequest& request);
  // Fills `header` and returns the gRPC status for a write's result.
  grpc::Status FinishWrite(const replication::SubmitResult& result,
                           int64_t session_id, v1::ResponseHeader* header);
  void FillHeader(engine::ZkError err, int64_t zxid, int64_t session_id,
                  v1::ResponseHeader* header) const;
  // Forgets a closed or expired session's watches and ends its stream.
  void EndSession(int64_t session_id, EventHub::End why);
  // NONODE / NOAUTH / BADARGUMENTS for a read of `path` needing `perm`.
  engine::ZkError CheckRead(const std::string& path, int32_t perm,
                            const engine::RequestContext& ctx,
                            engine::Znode* node);
  void ExpiryLoop();
  // One pass of the container/TTL reaper; returns the number deleted.
  int ReapContainers();

  // Counts a request in flight for its lifetime (see
  // max_outstanding_requests).
  class InFlight {
   public:
    explicit InFlight(RockeeperService* s) : s_(s) {
      ok_ = s_->in_flight_.fetch_add(1) < s_->options_.max_outstanding_requests;
    }
    ~InFlight() { s_->in_flight_.fetch_sub(1); }
    bool ok() const { return ok_; }

   private:
    RockeeperService* s_;
    bool ok_;
  };

  replication::StandaloneReplica* const replica_;
  std::atomic<int64_t> in_flight_{0};
  const ServiceOptions options_;
  SessionTracker sessions_;
  WatchManager watches_;
  EventHub events_;
  absl::Notification stop_;
  std::thread expiry_thread_;
};

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_GRPC_SERVICE_H_
