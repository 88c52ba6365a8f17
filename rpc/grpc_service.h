// RockeeperService: the rockeeper.v1 operations
// (proto/rockeeper/v1/rockeeper.proto) over a Replica (standalone, or a
// member of a ZAB ensemble). Each operation has a transport-neutral entry
// point (CallInfo, request, response, done callback) that both front ends
// call: the gRPC service (the rockeeper.v1.Rockeeper CallbackService
// methods are thin shims over them, on gRPC's asynchronous callback API: no
// thread per request or per session) and the ZooKeeper wire protocol
// (WireServer calls them directly from its event loop). So both protocols
// have one semantics: ACLs, limits, the serving check, backpressure and
// metrics are in the neutral path. Writes are submitted to the replica's write
// path and answered when their txn has applied (the completion runs on a
// small work queue); reads run inline on the state DB with ZooKeeper's ACL
// checks. A session's requests run in arrival order (SessionSerializer):
// its writes pipeline (the next starts once the previous is submitted), any
// other request waits for the ones before it; sessions run in parallel.
// gRPC Session streams are reactors fed by the EventHub; wire connections
// take their events from it through AttachEvents. An expiry thread closes
// sessions whose clients stopped heartbeating and runs the container/TTL
// reaper; in an ensemble only the leader does (the session authority), and
// the other servers relay their clients' session touches to it. A member
// without a serving quorum answers every request UNAVAILABLE.
//
// Thread safety: every entry point may be called from any thread; all state
// is in thread-safe members.
#ifndef ROCKEEPER_RPC_GRPC_SERVICE_H_
#define ROCKEEPER_RPC_GRPC_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "engine/children_cache.h"
#include "replication/replica.h"
#include "rockeeper/v1/rockeeper.grpc.pb.h"
#include "rpc/event_hub.h"
#include "rpc/metrics.h"
#include "rpc/read_footprint.h"
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
  // Threads serving the reads whose znode is in no cache (a disk read):
  // such a read moves off the thread it arrived on (a wire loop serving
  // other connections). 0: every read runs where it arrived. Default: 16.
  int read_io_threads = 16;
  // Request counts and latencies; must outlive the service. Null: the
  // service keeps its own.
  ServerMetrics* metrics = nullptr;
};

// Who calls, for the transport-neutral entry points.
struct CallInfo {
  // The client's IP ("ip" ACL scheme); empty if unknown.
  std::string client_ip;
  // The caller's session; 0 = none.
  int64_t session_id = 0;
  // The caller named a session that cannot exist (e.g. unparsable
  // rk-session-id metadata): answered SESSIONEXPIRED, as an unknown one.
  bool bad_session = false;
  // RemoveWatches only checks that the watch exists (ZooKeeper's
  // checkWatches); it stays.
  bool check_only = false;
  // The transport holds requests back itself while the service is
  // saturated (the wire front end stops reading, as ZooKeeper does at
  // globalOutstandingLimit): the call is counted in flight but never
  // refused with RESOURCE_EXHAUSTED.
  bool paced = false;
};

class RockeeperService final : public v1::Rockeeper::CallbackService {
 public:
  RockeeperService(replication::Replica* replica, ServiceOptions options);
  ~RockeeperService() override;

  // --- Transport-neutral entry points -------------------------------------
  // Each fills `resp` and calls `done` exactly once with the status, which
  // keeps gRPC's meaning: UNAVAILABLE without a serving quorum,
  // RESOURCE_EXHAUSTED on backpressure, INVALID_ARGUMENT /
  // FAILED_PRECONDITION for a request that cannot be served; ZooKeeper
  // errors are OK with resp.header.err set. `done` may run before the call
  // returns (reads) or later on another thread (writes, on the completion
  // queue). `req` and `resp` must stay alive until `done` runs; the service
  // does not touch them after. `call` is read during the call only. A
  // session's requests run in the order of these calls (see
  // SessionSerializer): a front end calls them from one thread per session
  // to keep its order.
  using Done = std::function<void(const grpc::Status&)>;
  void Connect(const CallInfo& call, const v1::ConnectRequest& req,
               v1::ConnectResponse* resp, Done done);
  void Close(const CallInfo& call, const v1::CloseRequest& req,
             v1::CloseResponse* resp, Done done);
  void Heartbeat(const CallInfo& call, const v1::HeartbeatRequest& req,
                 v1::HeartbeatResponse* resp, Done done);
  void Create(const CallInfo& call, const v1::CreateRequest& req,
              v1::CreateResponse* resp, Done done);
  void Delete(const CallInfo& call, const v1::DeleteRequest& req,
              v1::DeleteResponse* resp, Done done);
  void SetData(const CallInfo& call, const v1::SetDataRequest& req,
               v1::SetDataResponse* resp, Done done);
  void SetAcl(const CallInfo& call, const v1::SetAclRequest& req,
              v1::SetAclResponse* resp, Done done);
  void Multi(const CallInfo& call, const v1::MultiRequest& req,
             v1::MultiResponse* resp, Done done);
  void Exists(const CallInfo& call, const v1::ExistsRequest& req,
              v1::ExistsResponse* resp, Done done);
  void GetData(const CallInfo& call, const v1::GetDataRequest& req,
               v1::GetDataResponse* resp, Done done);
  void GetChildren(const CallInfo& call, const v1::GetChildrenRequest& req,
                   v1::GetChildrenResponse* resp, Done done);
  // getChildren for the ZooKeeper wire front end: the names come packed as
  // that protocol sends them (engine::PackedNames; from the children
  // cache, shared, when it holds the list) instead of one string each.
  struct PackedChildrenResponse {
    v1::ResponseHeader header;
    v1::Stat stat;
    engine::PackedNames children;  // set when header.err() == 0
    v1::ResponseHeader* mutable_header() { return &header; }
    v1::Stat* mutable_stat() { return &stat; }
  };
  void GetChildrenPacked(const CallInfo& call,
                         const v1::GetChildrenRequest& req,
                         PackedChildrenResponse* resp, Done done);
  void GetAcl(const CallInfo& call, const v1::GetAclRequest& req,
              v1::GetAclResponse* resp, Done done);
  void MultiRead(const CallInfo& call, const v1::MultiReadRequest& req,
                 v1::MultiReadResponse* resp, Done done);
  void GetEphemerals(const CallInfo& call, const v1::GetEphemeralsRequest& req,
                     v1::GetEphemeralsResponse* resp, Done done);
  void GetAllChildrenNumber(const CallInfo& call,
                            const v1::GetAllChildrenNumberRequest& req,
                            v1::GetAllChildrenNumberResponse* resp, Done done);
  void Sync(const CallInfo& call, const v1::SyncRequest& req,
            v1::SyncResponse* resp, Done done);
  void AddAuth(const CallInfo& call, const v1::AddAuthRequest& req,
               v1::AddAuthResponse* resp, Done done);
  void WhoAmI(const CallInfo& call, const v1::WhoAmIRequest& req,
              v1::WhoAmIResponse* resp, Done done);
  void AddWatch(const CallInfo& call, const v1::AddWatchRequest& req,
                v1::AddWatchResponse* resp, Done done);
  void RemoveWatches(const CallInfo& call, const v1::RemoveWatchesRequest& req,
                     v1::RemoveWatchesResponse* resp, Done done);
  void SetWatches(const CallInfo& call, const v1::SetWatchesRequest& req,
                  v1::SetWatchesResponse* resp, Done done);

  // Attaches a front end without a Session stream (a ZooKeeper-protocol
  // connection) to the session's watch events, replacing any stream the
  // session had; null if the session is unknown here or `password` is not
  // its password. `notify` runs whenever there is something to take (see
  // EventHub::Attach: on the publishing thread, often the apply thread
  // under the visibility mutex; it must be quick and must not call into
  // the service). The subscription must be detached (or destroyed) before
  // the service is.
  std::unique_ptr<EventSubscription> AttachEvents(int64_t session_id,
                                                  const std::string& password,
                                                  std::function<void()> notify);

  // --- gRPC (rockeeper.v1.Rockeeper): shims over the entry points above ---
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
  // At or above max_outstanding_requests: a paced transport should stop
  // taking requests until this is false again. Any thread.
  bool saturated() const {
    return in_flight_.load(std::memory_order_relaxed) >=
           options_.max_outstanding_requests;
  }

 private:
  class Call;
  template <typename BodyFn, typename SubmittedFn>
  class CallOf;
  class SessionStream;

  // The common frame of every request but Connect: backpressure, serving
  // check, the caller's session, per-session FIFO order (SessionSerializer),
  // metrics. `body(Call&)` runs in the session's order and returns the
  // status, or std::nullopt once it submitted a write with SubmitAsync; then
  // `submitted(Call&, SubmitResult&)` returns it (on the completion queue).
  // `header` is filled on a session error. `op` labels the request in the
  // metrics.
  // `footprint`: a read's (see ReadFootprint).
  template <typename BodyFn, typename SubmittedFn>
  void Serve(const CallInfo& info, OpKind op, v1::ResponseHeader* header,
             Done done, BodyFn body, SubmittedFn submitted,
             ReadFootprint footprint = {});
  template <typename BodyFn>
  void Serve(const CallInfo& info, OpKind op, v1::ResponseHeader* header,
             Done done, BodyFn body, ReadFootprint footprint = {});
  // Submits `call`'s write; its `submitted` runs on the work queue (never on
  // the apply thread) after the txn's watch events were published.
  void SubmitAsync(Call* call, const engine::WriteRequest& request);
  // The same for a request outside Serve (Connect).
  void SubmitAsync(const engine::RequestContext& ctx,
                   const engine::WriteRequest& request,
                   std::function<void(replication::SubmitResult)> done);
  // The CallInfo of a gRPC call: peer address, rk-session-id metadata.
  static CallInfo CallInfoOf(const grpc::CallbackServerContext* ctx);
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
  // getChildren with `list(resp)` filling resp's children (false on a DB
  // error), for either response form.
  template <typename Resp, typename ListFn>
  void ServeGetChildren(const CallInfo& call, const v1::GetChildrenRequest& req,
                        Resp* resp, Done done, ListFn list);
  // CheckRead of a getChildren, which then sets its child watch.
  engine::ZkError CheckChildrenRead(const v1::GetChildrenRequest& req,
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
  // StateDb::ZnodeResident (or, with `children`, ChildrenResident) of the
  // replica's current state.
  bool Resident(absl::string_view path, bool children) const;

  replication::Replica* const replica_;
  bool was_authority_ = true;  // ExpiryLoop thread only
  bool replicated_ = false;    // an ensemble member (set once)
  const ServiceOptions options_;
  std::atomic<int64_t> in_flight_{0};
  const std::unique_ptr<ServerMetrics> own_metrics_;
  ServerMetrics* const metrics_;
  SessionTracker sessions_;
  WatchManager watches_;
  EventHub events_;
  // Lets the apply thread, while it waits for an apply gate, run queued
  // completions (they lead to the reads the gate waits for); disabled
  // before completions_ goes away.
  class CompletionsHelper;
  const std::shared_ptr<CompletionsHelper> gate_helper_;
  SessionSerializer serializer_;
  WorkQueue completions_{2};
  // Reads that must read the disk (ServiceOptions::read_io_threads); null
  // if 0. After completions_: stopped first, its reads may post there.
  std::unique_ptr<WorkQueue> read_io_;
  absl::Notification stop_;
  std::thread expiry_thread_;
};

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_GRPC_SERVICE_H_
