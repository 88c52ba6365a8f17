#include "tools/rkutl/json.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace rockeeper::rkutl {
namespace {

constexpr int kMaxDepth = 64;

// Length of the UTF-8 sequence starting at s[i], 0 if malformed.
size_t Utf8SequenceLength(absl::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t len = 0;
  uint32_t cp = 0;
  if ((c & 0xE0) == 0xC0) {
    len = 2;
    cp = c & 0x1F;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3;
    cp = c & 0x0F;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10FFFF) return 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
  return len;
}

void AppendUtf8(std::string* out, uint32_t cp) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace

bool IsValidUtf8(absl::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    const size_t len = Utf8SequenceLength(bytes, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

void AppendJsonString(std::string* out, absl::string_view utf8) {
  out->push_back('"');
  for (char ch : utf8) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          absl::StrAppendFormat(out, "\\u%04x", c);
        } else {
          out->push_back(ch);
        }
    }
  }
  out->push_back('"');
}

std::string JsonString(absl::string_view utf8) {
  std::string out;
  AppendJsonString(&out, utf8);
  return out;
}

const Json* Json::Find(absl::string_view key) const {
  for (size_t i = 0; i < keys.size() && i < items.size(); ++i) {
    if (keys[i] == key) return &items[i];
  }
  return nullptr;
}

std::optional<int64_t> Json::AsInt() const {
  if (type != Type::kNumber) return std::nullopt;
  int64_t v = 0;
  if (text.find_first_of(".eE") != std::string::npos ||
      !absl::SimpleAtoi(text, &v)) {
    return std::nullopt;
  }
  return v;
}

absl::Status JsonParser::Error(absl::string_view what) const {
  size_t line = 1;
  size_t col = 1;
  for (size_t i = 0; i < pos_ && i < text_.size(); ++i) {
    if (text_[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("line ", line, ", column ", col, ": ", what));
}

void JsonParser::SkipSpace() {
  while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' ||
                                 text_[pos_] == '\r' || text_[pos_] == '\t')) {
    ++pos_;
  }
}

bool JsonParser::Consume(char c) {
  SkipSpace();
  if (pos_ < text_.size() && text_[pos_] == c) {
    ++pos_;
    return true;
  }
  return false;
}

absl::Status JsonParser::Expect(char c) {
  if (Consume(c)) return absl::OkStatus();
  if (pos_ >= text_.size()) {
    return Error(
        absl::StrCat("expected '", std::string(1, c), "' but the input ended"));
  }
  return Error(absl::StrCat("expected '", std::string(1, c), "'"));
}

absl::Status JsonParser::ExpectEnd() {
  SkipSpace();
  if (pos_ != text_.size()) return Error("trailing characters after the value");
  return absl::OkStatus();
}

absl::StatusOr<Json> JsonParser::ParseValue() { return ParseValueAt(0); }

absl::StatusOr<Json> JsonParser::ParseValueAt(int depth) {
  if (depth > kMaxDepth) return Error("nesting too deep");
  SkipSpace();
  if (pos_ >= text_.size()) return Error("unexpected end of input");
  const char c = text_[pos_];
  if (c == '{') return ParseObject(depth);
  if (c == '[') return ParseArray(depth);
  if (c == '"') {
    absl::StatusOr<std::string> s = ParseString();
    if (!s.ok()) return s.status();
    Json j;
    j.type = Json::Type::kString;
    j.text = *std::move(s);
    return j;
  }
  if (c == '-' || absl::ascii_isdigit(static_cast<unsigned char>(c))) {
    return ParseNumber();
  }
  return ParseLiteral();
}

absl::StatusOr<Json> JsonParser::ParseLiteral() {
  Json j;
  for (absl::string_view word : {"true", "false", "null"}) {
    if (text_.substr(pos_, word.size()) == word) {
      pos_ += word.size();
      if (word != "null") {
        j.type = Json::Type::kBool;
        j.boolean = word == "true";
      }
      return j;
    }
  }
  return Error("unexpected character");
}

absl::StatusOr<Json> JsonParser::ParseNumber() {
  const size_t start = pos_;
  auto digits = [&] {
    const size_t from = pos_;
    while (pos_ < text_.size() &&
           absl::ascii_isdigit(static_cast<unsigned char>(text_[pos_]))) {
      ++pos_;
    }
    return pos_ > from;
  };
  if (text_[pos_] == '-') ++pos_;
  if (pos_ < text_.size() && text_[pos_] == '0') {
    ++pos_;
  } else if (!digits()) {
    return Error("malformed number");
  }
  if (pos_ < text_.size() && text_[pos_] == '.') {
    ++pos_;
    if (!digits()) return Error("malformed number");
  }
  if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
    ++pos_;
    if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) {
      ++pos_;
    }
    if (!digits()) return Error("malformed number");
  }
  Json j;
  j.type = Json::Type::kNumber;
  j.text = std::string(text_.substr(start, pos_ - start));
  return j;
}

absl::Status JsonParser::ParseEscape(std::string* out) {
  // At the character after the backslash.
  if (pos_ >= text_.size()) return Error("unterminated string");
  const char e = text_[pos_++];
  switch (e) {
    case '"':
    case '\\':
    case '/':
      out->push_back(e);
      return absl::OkStatus();
    case 'b':
      out->push_back('\b');
      return absl::OkStatus();
    case 'f':
      out->push_back('\f');
      return absl::OkStatus();
    case 'n':
      out->push_back('\n');
      return absl::OkStatus();
    case 'r':
      out->push_back('\r');
      return absl::OkStatus();
    case 't':
      out->push_back('\t');
      return absl::OkStatus();
    case 'u':
      break;
    default:
      return Error("bad escape in string");
  }
  auto hex4 = [&](uint32_t* v) {
    if (pos_ + 4 > text_.size()) return false;
    uint64_t parsed = 0;
    const absl::string_view h = text_.substr(pos_, 4);
    for (char c : h) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
    }
    if (!absl::SimpleHexAtoi(h, &parsed)) return false;
    pos_ += 4;
    *v = static_cast<uint32_t>(parsed);
    return true;
  };
  uint32_t cp = 0;
  if (!hex4(&cp)) return Error("bad \\u escape");
  if (cp >= 0xDC00 && cp <= 0xDFFF) return Error("unpaired surrogate escape");
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    uint32_t low = 0;
    if (text_.substr(pos_, 2) != "\\u")
      return Error("unpaired surrogate escape");
    pos_ += 2;
    if (!hex4(&low) || low < 0xDC00 || low > 0xDFFF) {
      return Error("unpaired surrogate escape");
    }
    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
  }
  AppendUtf8(out, cp);
  return absl::OkStatus();
}

absl::StatusOr<std::string> JsonParser::ParseString() {
  SkipSpace();
  if (pos_ >= text_.size() || text_[pos_] != '"')
    return Error("expected a string");
  ++pos_;
  std::string out;
  while (true) {
    if (pos_ >= text_.size()) return Error("unterminated string");
    const char c = text_[pos_];
    if (c == '"') {
      ++pos_;
      return out;
    }
    if (c == '\\') {
      ++pos_;
      if (absl::Status s = ParseEscape(&out); !s.ok()) return s;
      continue;
    }
    if (static_cast<unsigned char>(c) < 0x20) {
      return Error("control character in string");
    }
    const size_t len = Utf8SequenceLength(text_, pos_);
    if (len == 0) return Error("invalid UTF-8 in string");
    out.append(text_.data() + pos_, len);
    pos_ += len;
  }
}

absl::StatusOr<Json> JsonParser::ParseArray(int depth) {
  ++pos_;  // '['
  Json j;
  j.type = Json::Type::kArray;
  if (Consume(']')) return j;
  while (true) {
    absl::StatusOr<Json> item = ParseValueAt(depth + 1);
    if (!item.ok()) return item.status();
    j.items.push_back(*std::move(item));
    if (Consume(']')) return j;
    if (absl::Status s = Expect(','); !s.ok()) return s;
  }
}

absl::StatusOr<Json> JsonParser::ParseObject(int depth) {
  ++pos_;  // '{'
  Json j;
  j.type = Json::Type::kObject;
  if (Consume('}')) return j;
  while (true) {
    absl::StatusOr<std::string> key = ParseString();
    if (!key.ok()) return key.status();
    if (absl::Status s = Expect(':'); !s.ok()) return s;
    absl::StatusOr<Json> value = ParseValueAt(depth + 1);
    if (!value.ok()) return value.status();
    j.keys.push_back(*std::move(key));
    j.items.push_back(*std::move(value));
    if (Consume('}')) return j;
    if (absl::Status s = Expect(','); !s.ok()) return s;
  }
}

absl::StatusOr<Json> ParseJson(absl::string_view text) {
  JsonParser parser(text);
  absl::StatusOr<Json> value = parser.ParseValue();
  if (!value.ok()) return value.status();
  if (absl::Status s = parser.ExpectEnd(); !s.ok()) return s;
  return value;
}

}  // namespace rockeeper::rkutl
