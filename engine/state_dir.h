// Where a data dir's live state DB is. Normally <dataDir>/state; after a
// SNAP sync (replication/quorum_replica.h) it is the installed snapshot's
// directory, <dataDir>/state.snap-<zxid>, named by the file
// <dataDir>/stateDir (one line; written atomically). Tools that open the
// live state (rkutl) go through here too.
#ifndef ROCKEEPER_ENGINE_STATE_DIR_H_
#define ROCKEEPER_ENGINE_STATE_DIR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rockeeper::engine {

inline constexpr char kStateDirFile[] = "stateDir";

// The live state dir's name under `data_dir` ("state" when there is no
// stateDir file). DataLoss if the file names something else.
absl::StatusOr<std::string> CurrentStateDirName(const std::string& data_dir);
// <data_dir>/<CurrentStateDirName>.
absl::StatusOr<std::string> LiveStateDir(const std::string& data_dir);
// Makes `name` the live state dir: tmp + fsync + rename + directory fsync.
absl::Status SetCurrentStateDirName(const std::string& data_dir,
                                    const std::string& name);
// Deletes state dirs under `data_dir` other than `current` (leftovers of
// earlier installs).
void RemoveOtherStateDirs(const std::string& data_dir,
                          const std::string& current);

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_STATE_DIR_H_
