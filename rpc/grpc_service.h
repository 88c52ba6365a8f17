// The rockeeper.v1.Rockeeper gRPC service (proto/rockeeper/v1/rockeeper.proto)
// over a Replica (standalone, or a member of a ZAB ensemble), on gRPC's
// asynchronous callback API: no thread
// per request or per session. Writes are submitted to the replica's write
// path and answered when their txn has applied (the completion runs on a
// small work queue); reads run inline on the state DB with ZooKeeper's ACL
// checks. A session's requests run in arrival order (SessionSerializer):
// its writes pipeline (the next starts once the previous is submitted), any
// other request waits for the ones before it; sessions run in parallel.
// Session streams are reactors fed by the EventHub. An expiry thread closes
// sessions whose clients stopped heartbeating and runs the container/TTL
// reaper; in an ensemble only the leader does (the session authority), and
// the other servers relay their clients' session touches to it. A member
// without a serving quorum answers every request UNAVAILABLE.
//
// Thread safety: gRPC calls handlers from its threads; all state is in
// thread-safe members.
#ifndef ROCKEEPER_RPC_GRPC_SERVICE_H_
#define ROCKEEPER_RPC_GRPC_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "replication/replica.h"
#include "rockeeper/v1/rockeeper.grpc.pb.h"
#include "rpc/event_hub.h"
#include "rpc/metrics.h"
#include "rpc/serial_executor.h"
#include "rpc/session_tracker.h"
#include "rpc/watch_manager.h"

namespace rockeeper::rpc {

struct ServiceOptions {
  // This server's id (myid); 0 standalone. Default: 0.
  int64_t server_id = 0;
  // zoo.cfg leaderServes: false = an ensemble's leader turns clients away
  // (they use the followers). Default: true.
  bool leader_serves = true;
  // Negotiated session timeouts are clamped into [min, max]. Defaults: 2 and
  // 20 ticks of 2000 ms.
  int32_t min_session_timeout_ms = 4000;
  int32_t max_session_timeout_ms = 40000;
  // "super:<base64 sha1>": AddAuth digest with this identity becomes super.
  // Default: empty (no super user).
  std::string super_digest;
  // zookeeper.skipACL: also delivers watch events without a READ check.
  // Default: false.
  bool skip_acl = false;
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
  // Request counts and latencies; must outlive the service. Null: the
  // service keeps its own.
  ServerMetrics* metrics = nullptr;
};

class RockeeperService final : public v1::Rockeeper::CallbackService {
 public:
  RockeeperService(replication::Replica* replica, ServiceOptions options);
  ~RockeeperService() override;

  grpc::ServerUnaryReactor* Connect(grpc::CallbackServerContext* ctx,
                                    const v1::ConnectRequest* req,
                                    v1::ConnectResponse* resp) override;
  grpc::ServerUnaryReactor* Close(grpc::CallbackServerContext* ctx,
                                  const v1::CloseRequest* req,
                                  v1::CloseResponse* resp) override;
  grpc::ServerUnaryReactor* Heartbeat(grpc::CallbackServerContext* ctx,
                                      const v1::HeartbeatRequest* req,
                                      v1::HeartbeatResponse* resp) override;
  grpc::ServerUnaryReactor* Create(grpc::CallbackServerContext* ctx,
                                   const v1::CreateRequest* req,
                                   v1::CreateResponse* resp) override;
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx,
                                   const v1::DeleteRequest* req,
                                   v1::DeleteResponse* resp) override;
  grpc::ServerUnaryReactor* SetData(grpc::CallbackServerContext* ctx,
                                    const v1::SetDataRequest* req,
                                    v1::SetDataResponse* resp) override;
  grpc::ServerUnaryReactor* SetAcl(grpc::CallbackServerContext* ctx,
                                   const v1::SetAclRequest* req,
                                   v1::SetAclResponse* resp) override;
  grpc::ServerUnaryReactor* Multi(grpc::CallbackServerContext* ctx,
                                  const v1::MultiRequest* req,
                                  v1::MultiResponse* resp) override;
  grpc::ServerUnaryReactor* Exists(grpc::CallbackServerContext* ctx,
                                   const v1::ExistsRequest* req,
                                   v1::ExistsResponse* resp) override;
  grpc::ServerUnaryReactor* GetData(grpc::CallbackServerContext* ctx,
                                    const v1::GetDataRequest* req,
                                    v1::GetDataResponse* resp) override;
  grpc::ServerUnaryReactor* GetChildren(grpc::CallbackServerContext* ctx,
                                        const v1::GetChildrenRequest* req,
                                        v1::GetChildrenResponse* resp) override;
  grpc::ServerUnaryReactor* GetAcl(grpc::CallbackServerContext* ctx,
                                   const v1::GetAclRequest* req,
                                   v1::GetAclResponse* resp) override;
  grpc::ServerUnaryReactor* MultiRead(grpc::CallbackServerContext* ctx,
                                      const v1::MultiReadRequest* req,
                                      v1::MultiReadResponse* resp) override;
  grpc::ServerUnaryReactor* GetEphemerals(
      grpc::CallbackServerContext* ctx, const v1::GetEphemeralsRequest* req,
      v1::GetEphemeralsResponse* resp) override;
  grpc::ServerUnaryReactor* GetAllChildrenNumber(
      grpc::CallbackServerContext* ctx,
      const v1::GetAllChildrenNumberRequest* req,
      v1::GetAllChildrenNumberResponse* resp) override;
  grpc::ServerUnaryReactor* Sync(grpc::CallbackServerContext* ctx,
                                 const v1::SyncRequest* req,
                                 v1::SyncResponse* resp) override;
  grpc::ServerUnaryReactor* AddAuth(grpc::CallbackServerContext* ctx,
                                    const v1::AddAuthRequest* req,
                                    v1::AddAuthResponse* resp) override;
  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* ctx,
                                   const v1::WhoAmIRequest* req,
                                   v1::WhoAmIResponse* resp) override;
  grpc::ServerUnaryReactor* AddWatch(grpc::CallbackServerContext* ctx,
                                     const v1::AddWatchRequest* req,
                                     v1::AddWatchResponse* resp) override;
  grpc::ServerUnaryReactor* RemoveWatches(
      grpc::CallbackServerContext* ctx, const v1::RemoveWatchesRequest* req,
      v1::RemoveWatchesResponse* resp) override;
  grpc::ServerUnaryReactor* SetWatches(grpc::CallbackServerContext* ctx,
                                       const v1::SetWatchesRequest* req,
                                       v1::SetWatchesResponse* resp) override;
  grpc::ServerBidiReactor<v1::SessionRequest, v1::SessionMessage>* Session(
      grpc::CallbackServerContext* ctx) override;

  SessionTracker& sessions() { return sessions_; }
  const SessionTracker& sessions() const { return sessions_; }
  const WatchManager& watches() const { return watches_; }
  ServerMetrics& metrics() const { return *metrics_; }

  // Request latency (unary RPCs and Connect, arrival to response) since
  // start or the last ResetStats; for srvr/mntr.
  struct LatencyStats {
    int64_t count = 0;
    int64_t min_us = 0;
    int64_t max_us = 0;
    double avg_us = 0;
  };
  LatencyStats latency() const;
  void ResetStats();
  int64_t outstanding_requests() const { return in_flight_.load(); }

  // The wire protocol front end closed connection `conn` (of its rk-order
  // metadata): forgets its ordering state.
  void ForgetConnection(uint64_t conn);

 private:
  struct Caller;
  class SessionStream;
  using Finish = std::function<void(const grpc::Status&)>;
  using Body = std::function<void(const Caller&, Finish)>;

  // The common frame of every unary RPC: backpressure, caller resolution,
  // per-session FIFO order; `body` fills the response and calls its Finish
  // exactly once. `header` is filled on a session error.
  // `op` labels the request in the metrics.
  grpc::ServerUnaryReactor* Serve(grpc::CallbackServerContext* ctx, OpKind op,
                                  v1::ResponseHeader* header, Body body);
  // Serve's work once the call is admitted.
  void Start(grpc::CallbackServerContext* ctx, OpKind op,
             v1::ResponseHeader* header, grpc::ServerUnaryReactor* reactor,
             Body body);
  // rk-order metadata of an in-process caller: connection and sequence.
  static bool OrderKey(grpc::ServerContextBase* ctx, uint64_t* conn,
                       uint64_t* seq);
  // Runs `start` once every call of `conn` numbered below `seq` started.
  void Admit(uint64_t conn, uint64_t seq, std::function<void()> start);
  // Submits a write; `done` runs on the work queue (never on the apply
  // thread) after the txn's watch events were published.
  void SubmitAsync(const engine::RequestContext& ctx,
                   const engine::WriteRequest& request,
                   std::function<void(replication::SubmitResult)> done);
  Caller ResolveCaller(grpc::ServerContextBase* context);
  replication::SubmitResult SubmitAndWait(const engine::RequestContext& ctx,
                                          const engine::WriteRequest& request);
  void PublishTriggers(const std::vector<engine::WatchTrigger>& triggers);
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

  // Every applied batch (ensembles): watch events, and sessions created or
  // closed through other servers.
  void OnApplied(const std::vector<engine::Txn>& txns,
                 const std::vector<engine::WatchTrigger>& triggers);
  // May this server answer clients now (see ServiceOptions::leader_serves)?
  bool Serves() const;

  replication::Replica* const replica_;
  bool was_authority_ = true;  // ExpiryLoop thread only
  bool replicated_ = false;    // an ensemble member (set once)
  const ServiceOptions options_;
  std::atomic<int64_t> in_flight_{0};
  struct OrderState {
    uint64_t next = 1;
    bool draining = false;
    std::map<uint64_t, std::function<void()>> waiting;
    // When the first call began waiting for a missing predecessor.
    absl::Time stuck_since = absl::InfiniteFuture();
    bool forgotten = false;  // ForgetConnection came while calls waited
  };
  // Admits calls that waited too long for a predecessor that never came
  // (a call that failed before reaching its handler), so a connection
  // cannot hang. Runs on the expiry thread.
  void UnstickOrder();
  absl::Mutex order_mu_;
  absl::flat_hash_map<uint64_t, OrderState> order_ ABSL_GUARDED_BY(order_mu_);
  const std::unique_ptr<ServerMetrics> own_metrics_;
  ServerMetrics* const metrics_;
  SessionTracker sessions_;
  WatchManager watches_;
  EventHub events_;
  SessionSerializer serializer_;
  WorkQueue completions_{2};
  absl::Notification stop_;
  std::thread expiry_thread_;
};

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_GRPC_SERVICE_H_
