// Recovery: bring the state DB up to date from the txn log.
//
// The state DB on disk is a consistent prefix of the log at
// last_applied_zxid (engine/state_db.h). After a crash, the records after it
// that are known to be committed are applied again, in batches. In
// standalone mode every durable record is committed; under ZAB the caller
// passes the commit point it learned from the leader.
#ifndef ROCKEEPER_ENGINE_RECOVERY_H_
#define ROCKEEPER_ENGINE_RECOVERY_H_

#include <cstddef>
#include <cstdint>
#include <limits>

#include "absl/status/statusor.h"
#include "engine/state_db.h"
#include "engine/txn_log.h"

namespace rockeeper::engine {

struct ReplayOptions {
  // Apply records with zxid <= this (default: all).
  int64_t up_to_zxid = std::numeric_limits<int64_t>::max();
  // Txns per WriteBatch. Default: 1000.
  size_t batch_size = 1000;
};

// Applies every log record with last_applied_zxid < zxid <= up_to_zxid to
// `db`. Returns the number of txns applied. A record that does not parse as a
// Txn is DataLoss naming its zxid.
absl::StatusOr<int64_t> ReplayLog(const TxnLog& log, StateDb& db,
                                  const ReplayOptions& options = {});

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_RECOVERY_H_
