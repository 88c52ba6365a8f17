#include "tools/rkutl/dump_format.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "tools/rkutl/args.h"

namespace rockeeper::rkutl {
namespace {

using engine::Znode;

// Appends `"key":` preceded by a comma unless it is the first member.
void Key(std::string* out, absl::string_view key) {
  if (out->back() != '{') out->push_back(',');
  AppendJsonString(out, key);
  out->push_back(':');
}

void Member(std::string* out, absl::string_view key, absl::string_view str) {
  Key(out, key);
  AppendJsonString(out, str);
}

void Member(std::string* out, absl::string_view key, int64_t n) {
  Key(out, key);
  absl::StrAppend(out, n);
}

// Appends "data" and "dataEncoding" (utf8, or base64 when not UTF-8).
void DataMembers(std::string* out, absl::string_view key,
                 absl::string_view data) {
  if (IsValidUtf8(data)) {
    Member(out, key, data);
    Member(out, absl::StrCat(key, "Encoding"), "utf8");
  } else {
    Member(out, key, absl::Base64Escape(data));
    Member(out, absl::StrCat(key, "Encoding"), "base64");
  }
}

absl::Status FieldError(absl::string_view key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("\"", key, "\": ", what));
}

absl::StatusOr<std::string> JsonStr(const Json& object, absl::string_view key) {
  const Json* v = object.Find(key);
  if (v == nullptr) return FieldError(key, "missing");
  if (v->type != Json::Type::kString) return FieldError(key, "not a string");
  return v->text;
}

absl::StatusOr<int32_t> JsonInt32(const Json& object, absl::string_view key) {
  absl::StatusOr<int64_t> v = JsonInt(object, key);
  if (!v.ok()) return v.status();
  if (*v < INT32_MIN || *v > INT32_MAX) return FieldError(key, "out of range");
  return static_cast<int32_t>(*v);
}

// Reads "<key>" with "<key>Encoding" (utf8 or base64).
absl::StatusOr<std::string> JsonData(const Json& object,
                                     absl::string_view key) {
  absl::StatusOr<std::string> text = JsonStr(object, key);
  if (!text.ok()) return text.status();
  const std::string enc_key = absl::StrCat(key, "Encoding");
  std::string encoding = "utf8";
  if (object.Find(enc_key) != nullptr) {
    absl::StatusOr<std::string> e = JsonStr(object, enc_key);
    if (!e.ok()) return e.status();
    encoding = *e;
  }
  if (encoding == "utf8") return text;
  if (encoding != "base64") return FieldError(enc_key, "not utf8 or base64");
  std::string bytes;
  if (!absl::Base64Unescape(*text, &bytes)) {
    return FieldError(key, "invalid base64");
  }
  return bytes;
}

absl::StatusOr<engine::AclVector> ParseAcl(const Json& object) {
  const Json* list = object.Find("acl");
  if (list == nullptr || list->type != Json::Type::kArray) {
    return FieldError("acl", "missing or not an array");
  }
  engine::AclVector acl;
  for (const Json& item : list->items) {
    absl::StatusOr<int32_t> perms = JsonInt32(item, "perms");
    absl::StatusOr<std::string> scheme = JsonStr(item, "scheme");
    absl::StatusOr<std::string> id = JsonStr(item, "id");
    if (!perms.ok()) return perms.status();
    if (!scheme.ok()) return scheme.status();
    if (!id.ok()) return id.status();
    acl.push_back(engine::MakeAcl(*perms, *scheme, *id));
  }
  return acl;
}

// Sets every Znode field but the ACL from the JSON stat members.
absl::Status ParseStat(const Json& json, Znode* n) {
  struct I64 {
    const char* key;
    int64_t* field;
  };
  for (const I64& f : {I64{"cZxid", &n->czxid}, I64{"mZxid", &n->mzxid},
                       I64{"pZxid", &n->pzxid}, I64{"ctime", &n->ctime_ms},
                       I64{"mtime", &n->mtime_ms},
                       I64{"ephemeralOwner", &n->ephemeral_owner}}) {
    absl::StatusOr<int64_t> v = JsonInt(json, f.key);
    if (!v.ok()) return v.status();
    *f.field = *v;
  }
  if (json.Find("rawEphemeralOwner") != nullptr) {
    absl::StatusOr<int64_t> raw = JsonInt(json, "rawEphemeralOwner");
    if (!raw.ok()) return raw.status();
    n->ephemeral_owner = *raw;
  }
  struct I32 {
    const char* key;
    int32_t* field;
  };
  int32_t client_cversion = 0;
  for (const I32& f :
       {I32{"dataVersion", &n->version}, I32{"aclVersion", &n->aversion},
        I32{"numChildren", &n->num_children},
        I32{"cversion", &client_cversion}}) {
    absl::StatusOr<int32_t> v = JsonInt32(json, f.key);
    if (!v.ok()) return v.status();
    *f.field = *v;
  }
  // Clients see 2*persisted - numChildren (mod 2^32).
  const uint32_t twice = static_cast<uint32_t>(client_cversion) +
                         static_cast<uint32_t>(n->num_children);
  if (twice % 2 != 0) {
    return FieldError("cversion", "inconsistent with numChildren (odd sum)");
  }
  n->cversion = static_cast<int32_t>(twice / 2);
  return absl::OkStatus();
}

}  // namespace

std::string Hex(int64_t v) {
  return absl::StrFormat("0x%x", static_cast<uint64_t>(v));
}

std::string FormatDate(int64_t ms) {
  return absl::FormatTime("%a %b %d %H:%M:%S UTC %Y", absl::FromUnixMillis(ms),
                          absl::UTCTimeZone());
}

std::string PermsString(int32_t perms) {
  std::string out;
  if (perms & engine::perms::kCreate) out.push_back('c');
  if (perms & engine::perms::kDelete) out.push_back('d');
  if (perms & engine::perms::kRead) out.push_back('r');
  if (perms & engine::perms::kWrite) out.push_back('w');
  if (perms & engine::perms::kAdmin) out.push_back('a');
  return out;
}

std::string SpecialNodeType(int64_t raw_owner) {
  if (engine::IsContainerOwner(raw_owner)) return "container";
  if (engine::IsTtlOwner(raw_owner)) {
    return absl::StrCat("ttl (", engine::TtlOfOwner(raw_owner), " ms)");
  }
  return "";
}

absl::StatusOr<int64_t> JsonInt(const Json& object, absl::string_view key) {
  const Json* v = object.Find(key);
  if (v == nullptr) return FieldError(key, "missing");
  std::optional<int64_t> n;
  if (v->type == Json::Type::kNumber) n = v->AsInt();
  if (v->type == Json::Type::kString) n = ParseInt(v->text);
  if (!n.has_value()) return FieldError(key, "not an integer");
  return *n;
}

std::string FormatNodeText(const NodeEntry& e) {
  const engine::Stat st = engine::ClientStat(e.node);
  std::string out = absl::StrCat(e.path, "\n");
  absl::StrAppend(&out, "cZxid = ", Hex(st.czxid()), "\n");
  absl::StrAppend(&out, "ctime = ", FormatDate(st.ctime_ms()), "\n");
  absl::StrAppend(&out, "mZxid = ", Hex(st.mzxid()), "\n");
  absl::StrAppend(&out, "mtime = ", FormatDate(st.mtime_ms()), "\n");
  absl::StrAppend(&out, "pZxid = ", Hex(st.pzxid()), "\n");
  absl::StrAppend(&out, "cversion = ", st.cversion(), "\n");
  absl::StrAppend(&out, "dataVersion = ", st.version(), "\n");
  absl::StrAppend(&out, "aclVersion = ", st.aversion(), "\n");
  absl::StrAppend(&out, "ephemeralOwner = ", Hex(st.ephemeral_owner()), "\n");
  if (const std::string t = SpecialNodeType(e.node.ephemeral_owner);
      !t.empty()) {
    absl::StrAppend(&out, "nodeType = ", t, "\n");
  }
  absl::StrAppend(&out, "dataLength = ", st.data_length(), "\n");
  absl::StrAppend(&out, "numChildren = ", st.num_children(), "\n");
  if (e.node.data_null) {
    absl::StrAppend(&out, "data = null\n");
  } else if (IsValidUtf8(e.node.data)) {
    absl::StrAppend(&out, "data = ", JsonString(e.node.data), "\n");
  } else {
    absl::StrAppend(&out, "data (base64) = ", absl::Base64Escape(e.node.data),
                    "\n");
  }
  for (const engine::Acl& a : e.acl) {
    absl::StrAppend(&out, "acl = '", a.scheme(), ",'", a.id(), " : ",
                    PermsString(a.perms()), "\n");
  }
  return out;
}

std::string FormatNodeJson(const NodeEntry& e) {
  const engine::Stat st = engine::ClientStat(e.node);
  std::string out = "{";
  Member(&out, "path", e.path);
  Member(&out, "cZxid", Hex(st.czxid()));
  Member(&out, "ctime", st.ctime_ms());
  Member(&out, "mZxid", Hex(st.mzxid()));
  Member(&out, "mtime", st.mtime_ms());
  Member(&out, "pZxid", Hex(st.pzxid()));
  Member(&out, "cversion", st.cversion());
  Member(&out, "dataVersion", st.version());
  Member(&out, "aclVersion", st.aversion());
  Member(&out, "ephemeralOwner", Hex(st.ephemeral_owner()));
  if (st.ephemeral_owner() != e.node.ephemeral_owner) {
    Member(&out, "rawEphemeralOwner", Hex(e.node.ephemeral_owner));
    Member(&out, "nodeType", SpecialNodeType(e.node.ephemeral_owner));
  }
  Member(&out, "dataLength", st.data_length());
  Member(&out, "numChildren", st.num_children());
  Key(&out, "acl");
  out.push_back('[');
  for (size_t i = 0; i < e.acl.size(); ++i) {
    if (i > 0) out.push_back(',');
    out.push_back('{');
    Member(&out, "perms", e.acl[i].perms());
    Member(&out, "scheme", e.acl[i].scheme());
    Member(&out, "id", e.acl[i].id());
    out.push_back('}');
  }
  out.push_back(']');
  DataMembers(&out, "data", e.node.data);
  // ZooKeeper's null data ("data" is then ""); absent means not null.
  if (e.node.data_null) {
    Key(&out, "dataNull");
    out += "true";
  }
  out.push_back('}');
  return out;
}

absl::StatusOr<NodeEntry> ParseNodeJson(const Json& json) {
  if (json.type != Json::Type::kObject) {
    return absl::InvalidArgumentError("node is not an object");
  }
  NodeEntry e;
  absl::StatusOr<std::string> path = JsonStr(json, "path");
  if (!path.ok()) return path.status();
  e.path = *path;
  if (absl::Status s = ParseStat(json, &e.node); !s.ok()) return s;
  absl::StatusOr<std::string> data = JsonData(json, "data");
  if (!data.ok()) return data.status();
  e.node.data = *std::move(data);
  if (const Json* null = json.Find("dataNull"); null != nullptr) {
    if (null->type != Json::Type::kBool) {
      return FieldError("dataNull", "not a boolean");
    }
    e.node.data_null = null->boolean && e.node.data.empty();
  }
  if (json.Find("dataLength") != nullptr) {
    absl::StatusOr<int64_t> len = JsonInt(json, "dataLength");
    if (!len.ok()) return len.status();
    if (*len != static_cast<int64_t>(e.node.data.size())) {
      return FieldError("dataLength", "does not match the data");
    }
  }
  absl::StatusOr<engine::AclVector> acl = ParseAcl(json);
  if (!acl.ok()) return acl.status();
  e.acl = *std::move(acl);
  return e;
}

std::string FormatSessionJson(const engine::SessionRecord& s) {
  std::string out = "{";
  Member(&out, "sessionId", Hex(s.session_id()));
  Member(&out, "timeoutMs", s.timeout_ms());
  Member(&out, "createdZxid", Hex(s.created_zxid()));
  Member(&out, "password", absl::Base64Escape(s.password()));
  out.push_back('}');
  return out;
}

absl::StatusOr<engine::SessionRecord> ParseSessionJson(const Json& json) {
  if (json.type != Json::Type::kObject) {
    return absl::InvalidArgumentError("session is not an object");
  }
  engine::SessionRecord s;
  absl::StatusOr<int64_t> id = JsonInt(json, "sessionId");
  absl::StatusOr<int32_t> timeout = JsonInt32(json, "timeoutMs");
  absl::StatusOr<int64_t> zxid = JsonInt(json, "createdZxid");
  absl::StatusOr<std::string> password = JsonStr(json, "password");
  if (!id.ok()) return id.status();
  if (!timeout.ok()) return timeout.status();
  if (!zxid.ok()) return zxid.status();
  if (!password.ok()) return password.status();
  std::string bytes;
  if (!absl::Base64Unescape(*password, &bytes)) {
    return FieldError("password", "invalid base64");
  }
  s.set_session_id(*id);
  s.set_timeout_ms(*timeout);
  s.set_created_zxid(*zxid);
  s.set_password(bytes);
  return s;
}

}  // namespace rockeeper::rkutl
