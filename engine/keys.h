// Key encodings of the state DB's column families.
//
//   znodes:     u16 BE depth ++ path bytes        e.g. "/a/b" -> 00 02 "/a/b"
//               The children of P (depth d) are exactly the keys with prefix
//               u16 BE (d+1) ++ P ++ "/" (P = "/" -> prefix 00 01 "/"), so one
//               prefix scan lists them, in byte order of their names.
//   sessions:   u64 BE session id
//   ephemerals: u64 BE session id ++ path bytes    (value empty)
//   acls:       u64 BE acl id
//   meta:       ASCII names (kMetaLastAppliedZxid, ...)
//
// Big-endian integers make RocksDB's bytewise order equal numeric order for
// non-negative values.
#ifndef ROCKEEPER_ENGINE_KEYS_H_
#define ROCKEEPER_ENGINE_KEYS_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"

namespace rockeeper::engine {

inline constexpr char kMetaLastAppliedZxid[] = "last_applied_zxid";
inline constexpr char kMetaCurrentEpoch[] = "current_epoch";
inline constexpr char kMetaAcceptedEpoch[] = "accepted_epoch";
inline constexpr char kMetaDbId[] = "db_id";
inline constexpr char kMetaNextAclId[] = "next_acl_id";
inline constexpr char kMetaFormatVersion[] = "format_version";
inline constexpr char kMetaZnodeCount[] = "znode_count";

void AppendBigEndian64(std::string* out, uint64_t v);
uint64_t DecodeBigEndian64(absl::string_view in);  // in.size() >= 8

std::string ZnodeKey(absl::string_view path);
// Prefix shared by the keys of all children of `parent`.
std::string ChildrenPrefix(absl::string_view parent);
// Prefix of the descendants of `path` that are `levels_down` levels below it.
std::string DescendantPrefix(absl::string_view path, int levels_down);
// Path part of a znodes key (the key must be at least 2 bytes).
absl::string_view PathOfZnodeKey(absl::string_view key);

std::string SessionKey(int64_t session_id);
std::string EphemeralKey(int64_t session_id, absl::string_view path);
std::string EphemeralPrefix(int64_t session_id);
std::string AclKey(int64_t acl_id);

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_KEYS_H_
