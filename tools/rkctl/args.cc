#include "tools/rkctl/args.h"

#include <limits>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rockeeper::rkctl {

namespace {

const OptionSpec* Find(const std::vector<OptionSpec>& specs, char name) {
  for (const OptionSpec& s : specs) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

bool IsNegativeNumber(absl::string_view token) {
  if (token.size() < 2 || token[0] != '-') return false;
  double d = 0;
  return absl::SimpleAtod(token.substr(1), &d);
}

}  // namespace

absl::StatusOr<ParsedArgs> ParseOptions(const std::vector<std::string>& tokens,
                                        const std::vector<OptionSpec>& specs) {
  ParsedArgs out;
  bool options_done = false;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const std::string& t = tokens[i];
    if (i == 0 || options_done || t.size() < 2 || t[0] != '-' ||
        IsNegativeNumber(t)) {
      out.args.push_back(t);
      continue;
    }
    if (t == "--") {
      options_done = true;
      continue;
    }
    if (t == "--json") {
      out.json = true;
      continue;
    }
    if (t[1] == '-') {
      return absl::InvalidArgumentError(
          absl::StrCat("Unrecognized option: ", t));
    }
    const OptionSpec* spec = Find(specs, t[1]);
    if (spec == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("Unrecognized option: ", t));
    }
    if (spec->takes_value) {
      if (t.size() > 2) {
        out.options[spec->name] = t.substr(2);
      } else if (i + 1 < tokens.size()) {
        out.options[spec->name] = tokens[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "Missing argument for option: ", std::string(1, spec->name)));
      }
      continue;
    }
    // A cluster of switches ("-se"); a value-taking option may end it with
    // its value attached ("-sv5").
    for (size_t k = 1; k < t.size(); ++k) {
      const OptionSpec* s = Find(specs, t[k]);
      if (s == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("Unrecognized option: ", t));
      }
      if (s->takes_value) {
        if (k + 1 < t.size()) {
          out.options[s->name] = t.substr(k + 1);
        } else if (i + 1 < tokens.size()) {
          out.options[s->name] = tokens[++i];
        } else {
          return absl::InvalidArgumentError(absl::StrCat(
              "Missing argument for option: ", std::string(1, s->name)));
        }
        break;
      }
      out.options[s->name] = "";
    }
  }
  return out;
}

std::optional<int64_t> ParseJavaLong(absl::string_view text) {
  if (text.empty()) return std::nullopt;
  size_t start = (text[0] == '-' || text[0] == '+') ? 1 : 0;
  if (start == text.size()) return std::nullopt;
  for (size_t i = start; i < text.size(); ++i) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(text[i]))) {
      return std::nullopt;
    }
  }
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v)) return std::nullopt;
  return v;
}

std::optional<int32_t> ParseJavaInt(absl::string_view text) {
  std::optional<int64_t> v = ParseJavaLong(text);
  if (!v || *v < std::numeric_limits<int32_t>::min() ||
      *v > std::numeric_limits<int32_t>::max()) {
    return std::nullopt;
  }
  return static_cast<int32_t>(*v);
}

}  // namespace rockeeper::rkctl
