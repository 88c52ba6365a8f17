// StandaloneReplica: one server's whole write path with a quorum of one.
// Opens (and recovers) the txn log, the state DB and the snapshots under the
// data dirs, and turns submitted write requests into applied txns:
//
//   Submit --> zxid + Prep (under one mutex, so zxid order = prep order)
//          --> CommitPipeline (group-committed log, batched apply)
//          --> done(result) in submission order
//
// A request Prep refuses completes through the pipeline too (as a no-op), so
// completions are in submission order whatever their outcome.
//
// Thread safety: Submit and the read accessors are thread-safe.
#ifndef ROCKEEPER_REPLICATION_STANDALONE_REPLICA_H_
#define ROCKEEPER_REPLICATION_STANDALONE_REPLICA_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "engine/prep.h"
#include "engine/snapshot.h"
#include "engine/state_db.h"
#include "engine/txn_log.h"
#include "replication/commit_pipeline.h"
#include "replication/replica.h"

namespace rockeeper::replication {

struct StandaloneReplicaOptions {
  // ZooKeeper's dataDir: the state DB (state/) and snapshots (snapshots/).
  std::string data_dir;
  // ZooKeeper's dataLogDir: txn log segments. Default (empty): data_dir.
  std::string data_log_dir;
  engine::PrepOptions prep;
  CommitPipelineOptions pipeline;
  // RocksDB tuning (path is set from data_dir).
  engine::StateDbOptions state_db;
  // Txn log preallocation chunk. Default: 64 MiB (preAllocSize).
  uint64_t log_preallocate_bytes = 64u << 20;
  // fdatasync the log before acknowledging (forceSync). Default: true.
  bool force_sync = true;
};

class StandaloneReplica : public Replica {
 public:
  static absl::StatusOr<std::unique_ptr<StandaloneReplica>> Open(
      const StandaloneReplicaOptions& options);
  ~StandaloneReplica() override;

  // `done` runs on the pipeline's apply thread (or at once when the replica
  // is failed or stopped). Keep it short.
  void Submit(const engine::RequestContext& ctx,
              const engine::WriteRequest& request, Done done) override;
  bool honours_apply_gates() const override { return true; }
  void SubmitGated(const engine::RequestContext& ctx,
                   const engine::WriteRequest& request,
                   std::shared_ptr<ApplyGate> gate, Done done) override;

  const engine::StateDb& db() const override { return *db_; }
  // Held exclusively while a batch is applied and its Done callbacks run;
  // hold it shared to read a state and the callbacks' side effects (watch
  // events) consistently.
  absl::Mutex& visibility_mutex() const override { return visibility_mu_; }
  engine::StateDb& mutable_db() { return *db_; }
  int64_t last_proposed_zxid() const override;
  ReplicaStatus status() const override;
  CommitPipeline::Stats pipeline_stats() const { return pipeline_->stats(); }
  ApplyGateStats apply_gate_stats() const override {
    const CommitPipeline::Stats s = pipeline_->stats();
    return {s.gate_waits, s.gate_timeouts};
  }
  absl::Status health() const override { return pipeline_->health(); }
  // Txns replayed from the log at Open.
  int64_t recovered_txns() const { return recovered_txns_; }

 private:
  StandaloneReplica() = default;

  std::unique_ptr<engine::TxnLog> log_;
  std::unique_ptr<engine::StateDb> db_;
  std::unique_ptr<engine::Prep> prep_;
  std::unique_ptr<engine::SnapshotStore> snapshots_;
  std::unique_ptr<CommitPipeline> pipeline_;
  int64_t recovered_txns_ = 0;

  mutable absl::Mutex visibility_mu_;
  mutable absl::Mutex submit_mu_;
  int64_t next_zxid_ ABSL_GUARDED_BY(submit_mu_) = 1;
};

}  // namespace rockeeper::replication

#endif  // ROCKEEPER_REPLICATION_STANDALONE_REPLICA_H_
