// Per-command flag parsing with the rules of zkCli's commons-cli
// DefaultParser: short options anywhere on the line ("removewatches /a -d"),
// values attached or separate ("-v5", "-v 5"), clustered switches ("-se"),
// "--" ends the options, negative numbers are arguments. "--json" is
// accepted by every command (JSON output). Thread-compatible.
#ifndef ROCKEEPER_TOOLS_RKCTL_ARGS_H_
#define ROCKEEPER_TOOLS_RKCTL_ARGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rockeeper::rkctl {

struct OptionSpec {
  char name = 0;
  bool takes_value = false;
};

struct ParsedArgs {
  // args[0] is the command name, then the positional arguments (as zkCli's
  // CommandLine#getArgs).
  std::vector<std::string> args;
  std::map<char, std::string> options;  // switches map to ""
  bool json = false;

  bool Has(char name) const { return options.count(name) > 0; }
  std::string Get(char name) const {
    auto it = options.find(name);
    return it == options.end() ? "" : it->second;
  }
};

// Parses `tokens` (tokens[0] = the command). Errors (InvalidArgument) carry
// commons-cli's wording: "Unrecognized option: -x", "Missing argument for
// option: v".
absl::StatusOr<ParsedArgs> ParseOptions(const std::vector<std::string>& tokens,
                                        const std::vector<OptionSpec>& specs);

// Java's Integer.parseInt / Long.parseLong (decimal, optional sign).
std::optional<int64_t> ParseJavaLong(absl::string_view text);
std::optional<int32_t> ParseJavaInt(absl::string_view text);

}  // namespace rockeeper::rkctl

#endif  // ROCKEEPER_TOOLS_RKCTL_ARGS_H_
