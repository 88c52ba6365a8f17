#include "engine/acl.h"

#include <arpa/inet.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace rockeeper::engine {
namespace {

// Parses "addr" or "addr/bits" into network bytes; false if malformed.
bool ParseIpSpec(absl::string_view spec, unsigned char addr[16], int* len_bytes,
                 int* prefix_bits) {
  std::string host(spec);
  *prefix_bits = -1;
  if (const size_t slash = host.find('/'); slash != std::string::npos) {
    int bits = 0;
    if (!absl::SimpleAtoi(host.substr(slash + 1), &bits) || bits < 0) {
      return false;
    }
    *prefix_bits = bits;
    host.resize(slash);
  }
  if (inet_pton(AF_INET, host.c_str(), addr) == 1) {
    *len_bytes = 4;
  } else if (inet_pton(AF_INET6, host.c_str(), addr) == 1) {
    *len_bytes = 16;
  } else {
    return false;
  }
  if (*prefix_bits < 0) *prefix_bits = *len_bytes * 8;
  return *prefix_bits <= *len_bytes * 8;
}

bool IsValidAclId(const Acl& acl) {
  const std::string& s = acl.scheme();
  if (s == "world") return acl.id() == "anyone";
  if (s == "digest") {
    return std::count(acl.id().begin(), acl.id().end(), ':') == 1;
  }
  if (s == "ip") {
    unsigned char addr[16];
    int len = 0, bits = 0;
    return ParseIpSpec(acl.id(), addr, &len, &bits);
  }
  // Plug-in schemes accepted by ZooKeeper deployments; ids are opaque.
  return s == "sasl" || s == "x509" || s == "key";
}

bool Contains(const AclVector& v, const Acl& a) {
  return std::any_of(v.begin(), v.end(), [&](const Acl& b) {
    return a.perms() == b.perms() && a.scheme() == b.scheme() &&
           a.id() == b.id();
  });
}

}  // namespace

Acl MakeAcl(int32_t perms, absl::string_view scheme, absl::string_view id) {
  Acl acl;
  acl.set_perms(perms);
  acl.set_scheme(std::string(scheme));
  acl.set_id(std::string(id));
  return acl;
}

AclVector OpenAclUnsafe() { return {MakeAcl(perms::kAll, "world", "anyone")}; }

std::string DigestId(absl::string_view user_colon_password) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(user_colon_password.data()),
       user_colon_password.size(), digest);
  const absl::string_view user =
      user_colon_password.substr(0, user_colon_password.find(':'));
  return absl::StrCat(
      user, ":",
      absl::Base64Escape(absl::string_view(
          reinterpret_cast<const char*>(digest), sizeof(digest))));
}

std::vector<AuthId> DigestAuthIds(absl::string_view user_colon_password,
                                  absl::string_view super_digest) {
  std::vector<AuthId> ids;
  std::string id = DigestId(user_colon_password);
  if (!super_digest.empty() && id == super_digest) ids.push_back({"super", ""});
  ids.push_back({"digest", std::move(id)});
  return ids;
}

ZkError FixupAcl(const AclVector& requested, const std::vector<AuthId>& caller,
                 AclVector* fixed) {
  fixed->clear();
  if (requested.empty()) return ZkError::kInvalidAcl;
  for (const Acl& acl : requested) {
    if (acl.scheme() == "auth") {
      bool any = false;
      for (const AuthId& id : caller) {
        if (id.scheme == "ip" || id.scheme == "super") continue;
        any = true;
        Acl expanded = MakeAcl(acl.perms(), id.scheme, id.id);
        if (!Contains(*fixed, expanded)) fixed->push_back(std::move(expanded));
      }
      if (!any) return ZkError::kInvalidAcl;
      continue;
    }
    if (!IsValidAclId(acl)) return ZkError::kInvalidAcl;
    if (!Contains(*fixed, acl)) fixed->push_back(acl);
  }
  return ZkError::kOk;
}

bool IpMatches(absl::string_view acl_id, absl::string_view addr) {
  unsigned char want[16], have[16];
  int want_len = 0, want_bits = 0, have_len = 0, have_bits = 0;
  if (!ParseIpSpec(acl_id, want, &want_len, &want_bits)) return false;
  if (!ParseIpSpec(addr, have, &have_len, &have_bits)) return false;
  if (want_len != have_len) return false;
  const int full = want_bits / 8;
  if (std::memcmp(want, have, full) != 0) return false;
  const int rest = want_bits % 8;
  if (rest == 0) return true;
  const unsigned char mask = static_cast<unsigned char>(0xFF << (8 - rest));
  return (want[full] & mask) == (have[full] & mask);
}

bool HasPermission(const AclVector& acl, int32_t perm,
                   const std::vector<AuthId>& caller) {
  if (acl.empty()) return true;
  for (const AuthId& id : caller) {
    if (id.scheme == "super") return true;
  }
  for (const Acl& entry : acl) {
    if ((entry.perms() & perm) == 0) continue;
    if (entry.scheme() == "world" && entry.id() == "anyone") return true;
    for (const AuthId& id : caller) {
      if (id.scheme != entry.scheme()) continue;
      if (id.scheme == "ip" ? IpMatches(entry.id(), id.id)
                            : id.id == entry.id()) {
        return true;
      }
    }
  }
  return false;
}

std::string AclListFingerprint(const AclVector& acl) {
  std::string out;
  for (const Acl& a : acl) {
    absl::StrAppend(&out, a.perms(), "\x1f", a.scheme(), "\x1f", a.id(),
                    "\x1e");
  }
  return out;
}

}  // namespace rockeeper::engine
