#include "engine/keys.h"

#include "engine/path_utils.h"

namespace rockeeper::engine {
namespace {

void AppendDepth(std::string* out, int depth) {
  out->push_back(static_cast<char>((depth >> 8) & 0xFF));
  out->push_back(static_cast<char>(depth & 0xFF));
}

}  // namespace

void AppendBigEndian64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((v >> shift) & 0xFF));
  }
}

uint64_t DecodeBigEndian64(absl::string_view in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(in[i]);
  return v;
}

std::string ZnodeKey(absl::string_view path) {
  std::string key;
  key.reserve(path.size() + 2);
  AppendDepth(&key, PathDepth(path));
  key.append(path.data(), path.size());
  return key;
}

std::string DescendantPrefix(absl::string_view path, int levels_down) {
  std::string key;
  key.reserve(path.size() + 3);
  AppendDepth(&key, PathDepth(path) + levels_down);
  key.append(path.data(), path.size());
  if (path != "/") key.push_back('/');
  return key;
}

std::string ChildrenPrefix(absl::string_view parent) {
  return DescendantPrefix(parent, 1);
}

absl::string_view PathOfZnodeKey(absl::string_view key) { return key.substr(2); }

std::string SessionKey(int64_t session_id) {
  std::string key;
  AppendBigEndian64(&key, static_cast<uint64_t>(session_id));
  return key;
}

std::string EphemeralPrefix(int64_t session_id) { return SessionKey(session_id); }

std::string EphemeralKey(int64_t session_id, absl::string_view path) {
  std::string key = SessionKey(session_id);
  key.append(path.data(), path.size());
  return key;
}

std::string AclKey(int64_t acl_id) { return SessionKey(acl_id); }

}  // namespace rockeeper::engine
