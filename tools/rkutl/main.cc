// rkutl: the offline data tool of rockeeper (snapshots, txn logs, purge).
// docs/rkutl.md describes every command.
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/rkutl/args.h"
#include "tools/rkutl/cli.h"

namespace rockeeper::rkutl {
namespace {

std::string MainUsage(absl::string_view group = "") {
  std::string out =
      "usage: rkutl <command> [flags]\n\n"
      "Offline data tool for rockeeper data directories.\n\nCommands:\n";
  for (const Command& c : AllCommands()) {
    if (!group.empty() && !absl::StartsWith(c.name, absl::StrCat(group, " "))) {
      continue;
    }
    absl::StrAppendFormat(&out, "  %-18s %s\n", c.name, c.summary);
  }
  absl::StrAppend(&out,
                  "\nRun `rkutl <command> --help` for its flags.\n"
                  "Exit codes: 0 success, 1 data, I/O or refused operation, "
                  "2 usage error.\n");
  return out;
}

// The command named by the first one or two words of `words`; sets
// `consumed` to the number of words used.
const Command* FindCommand(const std::vector<std::string>& words,
                           size_t* consumed) {
  for (const Command& c : AllCommands()) {
    if (words.size() >= 2 && c.name == words[0] + " " + words[1]) {
      *consumed = 2;
      return &c;
    }
    if (c.name == words[0]) {
      *consumed = 1;
      return &c;
    }
  }
  return nullptr;
}

bool IsGroup(absl::string_view word) {
  for (const Command& c : AllCommands()) {
    if (absl::StartsWith(c.name, absl::StrCat(word, " "))) return true;
  }
  return false;
}

int Usage(absl::string_view error, absl::string_view usage) {
  std::cerr << "rkutl: " << error << "\n\n" << usage;
  return kExitUsage;
}

int RunCommand(const Command& cmd, const std::vector<std::string>& tokens) {
  absl::StatusOr<Args> args = Args::Parse(tokens, cmd.flags);
  if (!args.ok()) return Usage(args.status().message(), cmd.usage);
  if (args->help()) {
    std::cout << cmd.usage;
    return kExitOk;
  }
  const absl::Status s = cmd.run(*args, std::cout);
  std::cout.flush();
  if (s.ok()) return kExitOk;
  if (IsUsageError(s)) return Usage(s.message(), cmd.usage);
  if (!IsReportedError(s)) std::cerr << "rkutl: " << s.message() << "\n";
  return kExitError;
}

int Main(const std::vector<std::string>& argv) {
  if (argv.empty()) return Usage("no command given", MainUsage());
  if (argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help") {
    std::cout << MainUsage();
    return kExitOk;
  }
  size_t consumed = 0;
  const Command* cmd = FindCommand(argv, &consumed);
  if (cmd == nullptr) {
    if (IsGroup(argv[0])) {
      if (argv.size() >= 2 && (argv[1] == "--help" || argv[1] == "-h")) {
        std::cout << MainUsage(argv[0]);
        return kExitOk;
      }
      return Usage(argv.size() < 2
                       ? absl::StrCat("missing ", argv[0], " subcommand")
                       : absl::StrCat("unknown ", argv[0], " subcommand \"",
                                      argv[1], "\""),
                   MainUsage(argv[0]));
    }
    return Usage(absl::StrCat("unknown command \"", argv[0], "\""),
                 MainUsage());
  }
  return RunCommand(
      *cmd, std::vector<std::string>(argv.begin() + static_cast<long>(consumed),
                                     argv.end()));
}

}  // namespace
}  // namespace rockeeper::rkutl

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  try {
    return rockeeper::rkutl::Main(
        std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    std::cerr << "rkutl: internal error: " << e.what() << "\n";
    return rockeeper::rkutl::kExitError;
  }
}
