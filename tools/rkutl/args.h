// A small command-line flag parser: `--name value`, `--name=value` and
// boolean `--name`, checked against the flags a command declares.
#ifndef ROCKEEPER_TOOLS_RKUTL_ARGS_H_
#define ROCKEEPER_TOOLS_RKUTL_ARGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rockeeper::rkutl {

struct FlagSpec {
  std::string name;          // without the leading "--"
  bool takes_value = false;  // false: a boolean switch
};

class Args {
 public:
  // Parses `tokens` (the arguments after the command words). Unknown flags,
  // missing values, repeated flags and positional arguments are usage errors
  // (cli.h). "--help" / "-h" is always accepted and sets help().
  static absl::StatusOr<Args> Parse(const std::vector<std::string>& tokens,
                                    const std::vector<FlagSpec>& specs);

  bool help() const { return help_; }
  bool Has(absl::string_view name) const;
  // The value of a flag that takes one, if given.
  std::optional<std::string> Get(absl::string_view name) const;
  // The value of a required flag, or a usage error naming it.
  absl::StatusOr<std::string> Require(absl::string_view name) const;
  // An integer flag (decimal, or hex with 0x), `fallback` if absent.
  absl::StatusOr<int64_t> GetInt(absl::string_view name,
                                 int64_t fallback) const;

 private:
  bool help_ = false;
  std::map<std::string, std::string, std::less<>> values_;
};

// Parses a decimal or 0x-prefixed hex integer (zxids, counts).
std::optional<int64_t> ParseInt(absl::string_view text);

}  // namespace rockeeper::rkutl

#endif  // ROCKEEPER_TOOLS_RKUTL_ARGS_H_
