#include "tools/rkutl/args.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tools/rkutl/cli.h"

namespace rockeeper::rkutl {
namespace {

const FlagSpec* FindSpec(const std::vector<FlagSpec>& specs,
                         absl::string_view name) {
  for (const FlagSpec& s : specs) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

}  // namespace

std::optional<int64_t> ParseInt(absl::string_view text) {
  text = absl::StripAsciiWhitespace(text);
  if (absl::StartsWithIgnoreCase(text, "0x")) {
    uint64_t v = 0;
    if (text.size() < 3 || !absl::SimpleHexAtoi(text.substr(2), &v)) {
      return std::nullopt;
    }
    return static_cast<int64_t>(v);
  }
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v)) return std::nullopt;
  return v;
}

absl::StatusOr<Args> Args::Parse(const std::vector<std::string>& tokens,
                                 const std::vector<FlagSpec>& specs) {
  Args args;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& token = tokens[i];
    if (token == "--help" || token == "-h") {
      args.help_ = true;
      continue;
    }
    if (!absl::StartsWith(token, "--") || token.size() == 2) {
      return UsageError(absl::StrCat("unexpected argument \"", token, "\""));
    }
    std::string name = token.substr(2);
    std::optional<std::string> value;
    if (const size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    }
    const FlagSpec* spec = FindSpec(specs, name);
    if (spec == nullptr) {
      return UsageError(absl::StrCat("unknown flag --", name));
    }
    if (args.values_.count(name) > 0) {
      return UsageError(absl::StrCat("flag --", name, " given twice"));
    }
    if (spec->takes_value && !value.has_value()) {
      if (i + 1 >= tokens.size()) {
        return UsageError(absl::StrCat("flag --", name, " needs a value"));
      }
      value = tokens[++i];
    }
    if (!spec->takes_value && value.has_value()) {
      return UsageError(absl::StrCat("flag --", name, " takes no value"));
    }
    args.values_[name] = value.value_or("");
  }
  return args;
}

bool Args::Has(absl::string_view name) const {
  return values_.find(name) != values_.end();
}

std::optional<std::string> Args::Get(absl::string_view name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

absl::StatusOr<std::string> Args::Require(absl::string_view name) const {
  std::optional<std::string> v = Get(name);
  if (!v.has_value()) {
    return UsageError(absl::StrCat("missing required flag --", name));
  }
  if (v->empty()) {
    return UsageError(absl::StrCat("flag --", name, " must not be empty"));
  }
  return *v;
}

absl::StatusOr<int64_t> Args::GetInt(absl::string_view name,
                                     int64_t fallback) const {
  std::optional<std::string> v = Get(name);
  if (!v.has_value()) return fallback;
  std::optional<int64_t> n = ParseInt(*v);
  if (!n.has_value()) {
    return UsageError(absl::StrCat("flag --", name, ": \"", *v,
                                   "\" is not an integer (decimal or 0x hex)"));
  }
  return *n;
}

}  // namespace rockeeper::rkutl
