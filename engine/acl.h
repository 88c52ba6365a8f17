// ZooKeeper ACLs: permission bits, schemes (world, auth, digest, ip, super),
// fixup on create/setACL, and the permission check.
#ifndef ROCKEEPER_ENGINE_ACL_H_
#define ROCKEEPER_ENGINE_ACL_H_

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "engine/zk_error.h"
#include "rockeeper/record/v1/records.pb.h"

namespace rockeeper::engine {

using record::v1::Acl;
using AclVector = std::vector<Acl>;

namespace perms {
inline constexpr int32_t kRead = 1;
inline constexpr int32_t kWrite = 2;
inline constexpr int32_t kCreate = 4;
inline constexpr int32_t kDelete = 8;
inline constexpr int32_t kAdmin = 16;
inline constexpr int32_t kAll = 31;
}  // namespace perms

// An authenticated identity of a caller, e.g. {"digest", "bob:<b64>"},
// {"ip", "127.0.0.1"}, {"super", ""}.
struct AuthId {
  std::string scheme;
  std::string id;
  bool operator==(const AuthId&) const = default;
};

Acl MakeAcl(int32_t perms, absl::string_view scheme, absl::string_view id);
// [31, world:anyone]
AclVector OpenAclUnsafe();

// "user:" + base64(SHA1("user:password")), ZooKeeper's digest id.
std::string DigestId(absl::string_view user_colon_password);

// The AuthIds a successful `addauth digest user:password` grants; adds
// {"super",""} when the digest equals `super_digest` ("super:<b64>").
std::vector<AuthId> DigestAuthIds(absl::string_view user_colon_password,
                                  absl::string_view super_digest);

// Validates and normalizes an ACL given to create/setACL: removes
// duplicates, expands `auth` entries to the caller's authenticated ids
// (digest and other non-ip, non-super schemes). Returns kInvalidAcl for an
// empty list, world ids other than "anyone", unknown schemes, malformed
// digest or ip ids, super entries, or `auth` with no usable caller id.
ZkError FixupAcl(const AclVector& requested, const std::vector<AuthId>& caller,
                 AclVector* fixed);

// ZooKeeper's permission check. An empty ACL allows everything; a caller
// holding a super id is allowed everything.
bool HasPermission(const AclVector& acl, int32_t perm,
                   const std::vector<AuthId>& caller);

// True if `addr` (IPv4 or IPv6 literal) lies in `acl_id` ("a.b.c.d[/bits]").
bool IpMatches(absl::string_view acl_id, absl::string_view addr);

// Canonical byte string of an ACL list, used to deduplicate stored lists.
std::string AclListFingerprint(const AclVector& acl);

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_ACL_H_
