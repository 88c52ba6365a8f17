// rkctl's interactive shell: libedit line editing with a persistent
// history file and tab completion of commands and znode paths when stdin
// is a terminal; plain line reading (a script on stdin) otherwise.
#ifndef ROCKEEPER_TOOLS_RKCTL_SHELL_H_
#define ROCKEEPER_TOOLS_RKCTL_SHELL_H_

#include <string>

#include "tools/rkctl/cli.h"

namespace rockeeper::rkctl {

// Reads and runs lines until `quit` or end of input. `history_file`: where
// line-editing history persists ("" for none). Returns the exit code (0).
// Not reentrant (libedit's state is global).
int RunShell(Cli& cli, const std::string& history_file);

// Wakes a shell waiting for a key so that it notices Cli::Interrupted().
// Async-signal-safe: the SIGINT handler calls it after Cli::Interrupt().
void WakeShell();

}  // namespace rockeeper::rkctl

#endif  // ROCKEEPER_TOOLS_RKCTL_SHELL_H_
