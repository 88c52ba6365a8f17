#include "replication/standalone_replica.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/recovery.h"
#include "replication/forwarding.h"

namespace rockeeper::replication {

absl::StatusOr<std::unique_ptr<StandaloneReplica>> StandaloneReplica::Open(
    const StandaloneReplicaOptions& options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(options.data_dir, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("create ", options.data_dir, ": ", ec.message()));
  }
  std::unique_ptr<StandaloneReplica> r(new StandaloneReplica());

  engine::TxnLogOptions log_options;
  log_options.dir = options.data_log_dir.empty()
                        ? (fs::path(options.data_dir) / "log").string()
                        : options.data_log_dir;
  log_options.preallocate_bytes = options.log_preallocate_bytes;
  log_options.sync = options.force_sync;
  absl::StatusOr<std::unique_ptr<engine::TxnLog>> log =
      engine::TxnLog::Open(log_options);
  if (!log.ok()) return log.status();
  r->log_ = *std::move(log);

  engine::StateDbOptions db_options = options.state_db;
  db_options.path = (fs::path(options.data_dir) / "state").string();
  absl::StatusOr<std::unique_ptr<engine::StateDb>> db =
      engine::StateDb::Open(db_options);
  if (!db.ok()) return db.status();
  r->db_ = *std::move(db);
  if (r->db_->last_applied_zxid() > r->log_->last_zxid() &&
      r->log_->last_zxid() != 0) {
    return absl::DataLossError(
        absl::StrCat("state DB is at zxid ", r->db_->last_applied_zxid(),
                     " but the txn log ends at ", r->log_->last_zxid()));
  }
  // Standalone: every durable record is committed.
  absl::StatusOr<int64_t> replayed = engine::ReplayLog(*r->log_, *r->db_);
  if (!replayed.ok()) return replayed.status();
  r->recovered_txns_ = *replayed;

  r->prep_ = std::make_unique<engine::Prep>(r->db_.get(), options.prep);
  r->snapshots_ = std::make_unique<engine::SnapshotStore>(
      (fs::path(options.data_dir) / "snapshots").string());
  if (absl::StatusOr<int> removed = r->snapshots_->RemoveUnfinished();
      !removed.ok()) {
    return removed.status();
  } else if (*removed > 0) {
    std::fprintf(stderr, "INFO removed %d unfinished snapshot(s)\n", *removed);
  }
  r->pipeline_ = std::make_unique<CommitPipeline>(
      r->log_.get(), r->db_.get(), r->prep_.get(), r->snapshots_.get(),
      options.pipeline, &r->visibility_mu_);
  {
    absl::MutexLock lock(&r->submit_mu_);
    r->next_zxid_ =
        std::max(r->log_->last_zxid(), r->db_->last_applied_zxid()) + 1;
  }
  return r;
}

StandaloneReplica::~StandaloneReplica() {
  if (pipeline_ != nullptr) pipeline_->Stop();
}

int64_t StandaloneReplica::last_proposed_zxid() const {
  absl::MutexLock lock(&submit_mu_);
  return next_zxid_ - 1;
}

ReplicaStatus StandaloneReplica::status() const {
  ReplicaStatus s;
  s.mode = "standalone";
  s.serving = pipeline_->health().ok();
  s.current_epoch = db_->current_epoch();
  s.last_logged_zxid = log_->last_zxid();
  s.last_applied_zxid = db_->last_applied_zxid();
  return s;
}

void StandaloneReplica::Submit(const engine::RequestContext& ctx,
                               const engine::WriteRequest& request, Done done) {
  SubmitGated(ctx, request, nullptr, std::move(done));
}

void StandaloneReplica::SubmitGated(const engine::RequestContext& ctx,
                                    const engine::WriteRequest& request,
                                    std::shared_ptr<ApplyGate> gate,
                                    Done done) {
  absl::MutexLock lock(&submit_mu_);
  const int64_t zxid = next_zxid_;
  absl::StatusOr<engine::PrepOutcome> outcome =
      prep_->Prepare(ctx, request, zxid, absl::ToUnixMillis(absl::Now()));
  if (!outcome.ok()) {
    SubmitResult result;
    result.status = outcome.status();
    pipeline_->ProposeNoop(
        [done, result](const absl::Status&,
                       const std::vector<engine::WatchTrigger>&, engine::Txn*,
                       CommitNote) { done(result); });
    return;
  }
  auto shared = std::make_shared<engine::PrepOutcome>(*std::move(outcome));
  // A refusal is logged as an error txn, as ZooKeeper does: it takes this
  // zxid, which the reply carries.
  // The txn goes to the pipeline without a copy, and comes back with the
  // callback for the reply.
  const bool accepted = shared->txn.has_value();
  engine::Txn txn = accepted ? *std::move(shared->txn)
                             : MakeErrorTxn(ctx, request, *shared, zxid,
                                            absl::ToUnixMillis(absl::Now()));
  ++next_zxid_;
  pipeline_->Propose(
      std::move(txn),
      [done, shared, zxid, accepted](
          const absl::Status& status,
          const std::vector<engine::WatchTrigger>& triggers,
          engine::Txn* proposed, CommitNote note) {
        if (accepted) shared->txn = std::move(*proposed);
        SubmitResult r{status, std::move(*shared), triggers};
        r.zxid = zxid;
        r.urgent = note.urgent;
        r.lone = note.lone;
        r.gathered = note.gathered;
        done(std::move(r));
      },
      std::move(gate));
}

}  // namespace rockeeper::replication
