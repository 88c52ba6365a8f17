// Where the snapshot commands read a tree from: a snapshot directory
// (--snapshot PATH), the newest snapshot of a data dir (--data-dir D), or the
// live state DB (--data-dir D --live). Always opened read-only.
#ifndef ROCKEEPER_TOOLS_RKUTL_STATE_SOURCE_H_
#define ROCKEEPER_TOOLS_RKUTL_STATE_SOURCE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/state_db.h"
#include "tools/rkutl/args.h"

namespace rockeeper::rkutl {

struct StateSource {
  std::unique_ptr<engine::StateDb> db;
  std::string dir;  // the RocksDB directory opened
};

// The flags OpenStateSource reads.
std::vector<FlagSpec> StateSourceFlags();

// Opens the source named by --snapshot / --data-dir [--live]. Usage errors
// for missing or conflicting flags; NotFound etc. naming the directory.
absl::StatusOr<StateSource> OpenStateSource(const Args& args);

// Opens a state DB or snapshot directory read-only (never writes to it).
absl::StatusOr<std::unique_ptr<engine::StateDb>> OpenStateDbReadOnly(
    const std::string& dir);

// Checks that `dir` exists and is a directory ("<what> <dir>: ..." if not).
absl::Status CheckDirectory(const std::string& dir, absl::string_view what);

}  // namespace rockeeper::rkutl

#endif  // ROCKEEPER_TOOLS_RKUTL_STATE_SOURCE_H_
