#include "engine/path_utils.h"

#include <cstdint>

namespace rockeeper::engine {
namespace {

// Decodes one UTF-8 code point at s[i]; returns false on malformed input.
bool DecodeUtf8(absl::string_view s, size_t& i, uint32_t& cp) {
  const auto c = static_cast<unsigned char>(s[i]);
  int extra = 0;
  if (c < 0x80) {
    cp = c;
  } else if ((c & 0xE0) == 0xC0) {
    cp = c & 0x1F;
    extra = 1;
  } else if ((c & 0xF0) == 0xE0) {
    cp = c & 0x0F;
    extra = 2;
  } else if ((c & 0xF8) == 0xF0) {
    cp = c & 0x07;
    extra = 3;
  } else {
    return false;
  }
  if (extra > 0 && i + extra >= s.size()) return false;
  for (int k = 1; k <= extra; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return false;
    cp = (cp << 6) | (cc & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
  if (cp < kMin[extra] || cp > 0x10FFFF) return false;  // overlong / range
  i += extra + 1;
  return true;
}

bool IsForbiddenCodePoint(uint32_t cp) {
  // Checked by ZooKeeper on UTF-16 code units: a supplementary code point is a
  // surrogate pair (U+D800-U+DFFF), which falls in the forbidden range.
  return cp <= 0x1F || (cp >= 0x7F && cp <= 0x9F) ||
         (cp >= 0xD800 && cp <= 0xF8FF) || (cp >= 0xFFF0 && cp <= 0xFFFF) ||
         cp > 0xFFFF;
}

}  // namespace

bool IsValidPath(absl::string_view path) {
  if (path.empty() || path[0] != '/') return false;
  if (path.size() == 1) return true;
  if (path.back() == '/') return false;
  for (size_t i = 0; i < path.size();) {
    uint32_t cp = 0;
    if (!DecodeUtf8(path, i, cp) || IsForbiddenCodePoint(cp)) return false;
  }
  // '/' never occurs inside a multi-byte UTF-8 sequence, so split on bytes.
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == absl::string_view::npos) slash = path.size();
    const absl::string_view comp = path.substr(start, slash - start);
    if (comp.empty() || comp == "." || comp == "..") return false;
    start = slash + 1;
  }
  return true;
}

absl::string_view ParentPath(absl::string_view path) {
  const size_t slash = path.rfind('/');
  if (slash == 0 || slash == absl::string_view::npos) return "/";
  return path.substr(0, slash);
}

absl::string_view BaseName(absl::string_view path) {
  const size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

int PathDepth(absl::string_view path) {
  if (path.size() <= 1) return 0;
  int depth = 0;
  for (char c : path) depth += (c == '/');
  return depth;
}

bool IsSameOrDescendant(absl::string_view path, absl::string_view ancestor) {
  if (ancestor == "/") return true;
  if (path.size() < ancestor.size()) return false;
  if (path.substr(0, ancestor.size()) != ancestor) return false;
  return path.size() == ancestor.size() || path[ancestor.size()] == '/';
}

}  // namespace rockeeper::engine
