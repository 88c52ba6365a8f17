// Command-line plumbing shared by the rkutl commands: usage errors (exit 2)
// versus data errors (exit 1), and the command table entry.
#ifndef ROCKEEPER_TOOLS_RKUTL_CLI_H_
#define ROCKEEPER_TOOLS_RKUTL_CLI_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "tools/rkutl/args.h"

namespace rockeeper::rkutl {

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // data, I/O or refused operation
inline constexpr int kExitUsage = 2;  // bad command line

// An error in the command line: main prints it with the command's usage and
// exits with kExitUsage.
absl::Status UsageError(absl::string_view message);
bool IsUsageError(const absl::Status& status);

// A failure the command has already described on stdout (e.g. the damage
// `txnlog verify` found): main exits with kExitError without printing it.
absl::Status ReportedError(absl::string_view message);
bool IsReportedError(const absl::Status& status);

// One rkutl command ("snapshot dump", "purge", ...).
struct Command {
  std::string name;             // words after "rkutl"
  std::string summary;          // one line, for `rkutl --help`
  std::string usage;            // full help text of `rkutl <name> --help`
  std::vector<FlagSpec> flags;  // accepted flags (--help is implicit)
  absl::Status (*run)(const Args& args, std::ostream& out);
};

// All commands, in the order `rkutl --help` lists them.
const std::vector<Command>& AllCommands();

// Commands of each group, defined next to their implementations.
std::vector<Command> SnapshotCommands();
std::vector<Command> TxnLogCommands();
std::vector<Command> PurgeCommands();
std::vector<Command> ZooKeeperCommands();

// Entry points implemented in their own files.
absl::Status RunSnapshotRestore(const Args& args, std::ostream& out);
absl::Status RunTruncate(const Args& args, std::ostream& out);

}  // namespace rockeeper::rkutl

#endif  // ROCKEEPER_TOOLS_RKUTL_CLI_H_
