// Minimal JSON support for rkutl's dump format: string escaping for the
// writers, and a strict RFC 8259 parser (with line:column errors) for
// `snapshot restore --json` and the tests.
#ifndef ROCKEEPER_TOOLS_RKUTL_JSON_H_
#define ROCKEEPER_TOOLS_RKUTL_JSON_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace rockeeper::rkutl {

// True if `bytes` is well-formed UTF-8 (no overlong forms, no surrogates,
// nothing above U+10FFFF): exactly what a JSON string can carry.
bool IsValidUtf8(absl::string_view bytes);

// Appends `utf8` as a quoted JSON string. REQUIRES: IsValidUtf8(utf8).
void AppendJsonString(std::string* out, absl::string_view utf8);
std::string JsonString(absl::string_view utf8);

// A parsed JSON value. Numbers keep their literal text so that 64-bit
// integers are exact.
struct Json {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  std::string text;  // kString: the decoded string; kNumber: the literal
  // kArray: the elements. kObject: the member values, in order, with their
  // names in `keys` (parallel vectors: a std::pair would need Json complete).
  std::vector<Json> items;
  std::vector<std::string> keys;

  // The member named `key` of an object, or null.
  const Json* Find(absl::string_view key) const;
  // The integer value of a number without fraction or exponent.
  std::optional<int64_t> AsInt() const;
};

// A pull parser over a complete document, so that callers can walk a large
// top-level object member by member without building one tree for all of it.
class JsonParser {
 public:
  explicit JsonParser(absl::string_view text) : text_(text) {}

  absl::StatusOr<Json> ParseValue();
  absl::StatusOr<std::string> ParseString();
  // Skips whitespace; consumes `c` if it is next.
  bool Consume(char c);
  absl::Status Expect(char c);
  // OK if only whitespace is left.
  absl::Status ExpectEnd();
  // An InvalidArgument error "line L, column C: <what>".
  absl::Status Error(absl::string_view what) const;

 private:
  void SkipSpace();
  absl::StatusOr<Json> ParseNumber();
  absl::StatusOr<Json> ParseLiteral();
  absl::StatusOr<Json> ParseArray(int depth);
  absl::StatusOr<Json> ParseObject(int depth);
  absl::StatusOr<Json> ParseValueAt(int depth);
  absl::Status ParseEscape(std::string* out);

  absl::string_view text_;
  size_t pos_ = 0;
};

// Parses a whole document.
absl::StatusOr<Json> ParseJson(absl::string_view text);

}  // namespace rockeeper::rkutl

#endif  // ROCKEEPER_TOOLS_RKUTL_JSON_H_
