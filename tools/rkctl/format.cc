#include "tools/rkctl/format.h"

#include <time.h>

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace rockeeper::rkctl {

namespace zk = client::zk;

std::string JavaHex(int64_t value) {
  return absl::StrFormat("%x", static_cast<uint64_t>(value));
}

std::string JavaDate(int64_t epoch_ms) {
  // Java rounds toward negative infinity when turning ms into a date.
  int64_t seconds = epoch_ms / 1000;
  if (epoch_ms % 1000 < 0) --seconds;
  const time_t t = static_cast<time_t>(seconds);
  struct tm tm_local {};
  if (localtime_r(&t, &tm_local) == nullptr) return "?";
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed",
                                          "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr",
                                            "May", "Jun", "Jul", "Aug",
                                            "Sep", "Oct", "Nov", "Dec"};
  const char* zone = tm_local.tm_zone != nullptr ? tm_local.tm_zone : "UTC";
  return absl::StrFormat(
      "%s %s %02d %02d:%02d:%02d %s %d", kDays[tm_local.tm_wday % 7],
      kMonths[tm_local.tm_mon % 12], tm_local.tm_mday, tm_local.tm_hour,
      tm_local.tm_min, tm_local.tm_sec, zone, tm_local.tm_year + 1900);
}

std::string FormatStat(const client::Stat& s) {
  return absl::StrCat(
      "cZxid = 0x", JavaHex(s.czxid), "\n", "ctime = ", JavaDate(s.ctime_ms),
      "\n", "mZxid = 0x", JavaHex(s.mzxid), "\n",
      "mtime = ", JavaDate(s.mtime_ms), "\n", "pZxid = 0x", JavaHex(s.pzxid),
      "\n", "cversion = ", s.cversion, "\n", "dataVersion = ", s.version, "\n",
      "aclVersion = ", s.aversion, "\n", "ephemeralOwner = 0x",
      JavaHex(s.ephemeral_owner), "\n", "dataLength = ", s.data_length, "\n",
      "numChildren = ", s.num_children, "\n");
}

std::string JavaList(const std::vector<std::string>& items) {
  return absl::StrCat("[", absl::StrJoin(items, ", "), "]");
}

std::string PermString(int32_t perms) {
  std::string p;
  if (perms & client::perms::kCreate) p += 'c';
  if (perms & client::perms::kDelete) p += 'd';
  if (perms & client::perms::kRead) p += 'r';
  if (perms & client::perms::kWrite) p += 'w';
  if (perms & client::perms::kAdmin) p += 'a';
  return p;
}

std::string FormatAcl(const std::vector<client::Acl>& acl) {
  std::string out;
  for (const client::Acl& a : acl) {
    absl::StrAppend(&out, "'", a.scheme, ",'", a.id,
                    "\n: ", PermString(a.perms), "\n");
  }
  return out;
}

ParsedAcl ParseAcl(absl::string_view text) {
  ParsedAcl result;
  for (absl::string_view entry : absl::StrSplit(text, ',')) {
    const size_t first = entry.find(':');
    const size_t last = entry.rfind(':');
    if (first == absl::string_view::npos || first == last) {
      result.warnings.push_back(
          absl::StrCat(entry, " does not have the form scheme:id:perm"));
      continue;
    }
    client::Acl acl;
    acl.scheme = std::string(entry.substr(0, first));
    acl.id = std::string(entry.substr(first + 1, last - first - 1));
    acl.perms = 0;
    for (char c : entry.substr(last + 1)) {
      switch (c) {
        case 'r':
          acl.perms |= client::perms::kRead;
          break;
        case 'w':
          acl.perms |= client::perms::kWrite;
          break;
        case 'c':
          acl.perms |= client::perms::kCreate;
          break;
        case 'd':
          acl.perms |= client::perms::kDelete;
          break;
        case 'a':
          acl.perms |= client::perms::kAdmin;
          break;
        default:
          result.warnings.push_back(
              absl::StrCat("Unknown perm type: ", absl::string_view(&c, 1)));
      }
    }
    result.acl.push_back(std::move(acl));
  }
  return result;
}

std::string CodeMessage(int32_t code) {
  switch (code) {
    case zk::kOk:
      return "ok";
    case zk::kSystemError:
      return "SystemError";
    case zk::kRuntimeInconsistency:
      return "RuntimeInconsistency";
    case zk::kDataInconsistency:
      return "DataInconsistency";
    case zk::kConnectionLoss:
      return "ConnectionLoss";
    case zk::kMarshallingError:
      return "MarshallingError";
    case zk::kNewConfigNoQuorum:
      return "NewConfigNoQuorum";
    case zk::kReconfigInProgress:
      return "ReconfigInProgress";
    case zk::kUnimplemented:
      return "Unimplemented";
    case zk::kOperationTimeout:
      return "OperationTimeout";
    case zk::kBadArguments:
      return "BadArguments";
    case zk::kUnknownSession:
      return "Unknown session";
    case zk::kApiError:
      return "APIError";
    case zk::kNoNode:
      return "NoNode";
    case zk::kNoAuth:
      return "NoAuth";
    case zk::kBadVersion:
      return "BadVersion";
    case zk::kNoChildrenForEphemerals:
      return "NoChildrenForEphemerals";
    case zk::kNodeExists:
      return "NodeExists";
    case zk::kInvalidAcl:
      return "InvalidACL";
    case zk::kAuthFailed:
      return "AuthFailed";
    case zk::kNotEmpty:
      return "Directory not empty";
    case zk::kSessionExpired:
      return "Session expired";
    case zk::kInvalidCallback:
      return "Invalid callback";
    case zk::kSessionMoved:
      return "Session moved";
    case zk::kNotReadOnly:
      return "Not a read-only call";
    case zk::kEphemeralOnLocalSession:
      return "Ephemeral node on local session";
    case zk::kNoWatcher:
      return "No such watcher";
    case zk::kRequestTimeout:
      return "Request timeout";
    case zk::kReconfigDisabled:
      return "Reconfig is disabled";
    case zk::kSessionClosedRequireSaslAuth:
      return "Session closed because client failed to authenticate";
    case zk::kQuotaExceeded:
      return "Quota has exceeded";
    case zk::kThrottledOp:
      return "Op throttled due to high load";
  }
  return absl::StrCat("Unknown error ", code);
}

std::string ZkCliErrorMessage(int32_t code, absl::string_view path) {
  switch (code) {
    case zk::kNoNode:
      return absl::StrCat("Node does not exist: ", path);
    case zk::kNoChildrenForEphemerals:
      return absl::StrCat("Ephemerals cannot have children: ", path);
    case zk::kNodeExists:
      return absl::StrCat("Node already exists: ", path);
    case zk::kNotEmpty:
      return absl::StrCat("Node not empty: ", path);
    case zk::kNotReadOnly:
      return absl::StrCat("Not a read-only call: ", path);
    case zk::kInvalidAcl:
      return absl::StrCat("Acl is not valid : ", path);
    case zk::kNoAuth:
      return absl::StrCat("Insufficient permission : ", path);
    case zk::kBadArguments:
      return absl::StrCat("Arguments are not valid : ", path);
    case zk::kBadVersion:
      return absl::StrCat("version No is not valid : ", path);
    case zk::kReconfigInProgress:
      return "Another reconfiguration is in progress -- concurrent reconfigs "
             "not supported (yet)";
    case zk::kNewConfigNoQuorum:
      return "No quorum of new config is connected and up-to-date with the "
             "leader of last committed config - try invoking reconfiguration "
             "after new servers are connected and synced";
    case zk::kQuotaExceeded:
      return absl::StrCat("Quota has exceeded : ", path);
  }
  if (path.empty())
    return absl::StrCat("KeeperErrorCode = ", CodeMessage(code));
  return absl::StrCat("KeeperErrorCode = ", CodeMessage(code), " for ", path);
}

std::optional<std::string> ValidatePath(absl::string_view path,
                                        bool sequential) {
  if (sequential) {
    // ZooKeeper validates the path with a sequence digit appended.
    return ValidatePath(absl::StrCat(path, "1"), false);
  }
  if (path.empty()) return "Path length must be > 0";
  if (path[0] != '/') return "Path must start with / character";
  if (path.size() == 1) return std::nullopt;
  if (path.back() == '/') return "Path must not end with / character";
  std::string reason;
  for (size_t i = 1; i < path.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(path[i]);
    const char last = path[i - 1];
    if (c == 0) {
      reason = absl::StrCat("null character not allowed @", i);
    } else if (c == '/' && last == '/') {
      reason = absl::StrCat("empty node name specified @", i);
    } else if (c == '.' && last == '.') {
      if (path[i - 2] == '/' && (i + 1 == path.size() || path[i + 1] == '/')) {
        reason = absl::StrCat("relative paths not allowed @", i);
      }
    } else if (c == '.') {
      if (last == '/' && (i + 1 == path.size() || path[i + 1] == '/')) {
        reason = absl::StrCat("relative paths not allowed @", i);
      }
    } else if ((c > 0 && c <= 0x1f) || c == 0x7f) {
      reason = absl::StrCat("invalid character @", i);
    }
    if (!reason.empty()) {
      return absl::StrCat("Invalid path string \"", path, "\" caused by ",
                          reason);
    }
  }
  return std::nullopt;
}

std::string FormatWatchedEvent(const client::WatchEvent& event) {
  const bool session = event.type == client::EventType::kNone;
  return absl::StrCat(
      "WatchedEvent state:", client::SessionStateName(event.state),
      " type:", client::EventTypeName(event.type),
      " path:", session ? "null" : event.path);
}

StatsTrack ParseStatsTrack(absl::string_view text) {
  StatsTrack s;
  for (absl::string_view part :
       absl::StrSplit(text, absl::ByAnyChar(",;"), absl::SkipEmpty())) {
    std::vector<absl::string_view> kv =
        absl::StrSplit(part, '=', absl::SkipEmpty());
    if (kv.size() < 2) continue;
    int64_t v = 0;
    if (!absl::SimpleAtoi(kv[1], &v)) continue;
    if (kv[0] == "count") s.count = v;
    if (kv[0] == "bytes") s.bytes = v;
    if (kv[0] == "countHardLimit") s.count_hard_limit = v;
    if (kv[0] == "byteHardLimit") s.byte_hard_limit = v;
  }
  return s;
}

std::string FormatStatsTrack(const StatsTrack& s) {
  std::string out = absl::StrCat("count=", s.count, ",bytes=", s.bytes);
  if (s.byte_hard_limit || s.count_hard_limit) out += '=';
  if (s.byte_hard_limit) {
    absl::StrAppend(&out, ";byteHardLimit=", *s.byte_hard_limit);
  }
  if (s.count_hard_limit) {
    absl::StrAppend(&out, ";countHardLimit=", *s.count_hard_limit);
  }
  return out;
}

std::string FirstHost(absl::string_view connect_string) {
  std::vector<absl::string_view> parts =
      absl::StrSplit(connect_string, ',', absl::SkipEmpty());
  if (parts.empty()) return "";
  absl::string_view hp = parts[0];
  if (!hp.empty() && hp[0] == '[') {
    const size_t close = hp.find(']');
    return std::string(close == absl::string_view::npos
                           ? hp.substr(1)
                           : hp.substr(1, close - 1));
  }
  const size_t colon = hp.rfind(':');
  return std::string(colon == absl::string_view::npos ? hp
                                                      : hp.substr(0, colon));
}

bool IsValidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    int n = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (int k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
        (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

std::string Base64Encode(absl::string_view in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  while (i + 2 < in.size()) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) |
                       (static_cast<uint8_t>(in[i + 1]) << 8) |
                       static_cast<uint8_t>(in[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
    i += 3;
  }
  if (i + 1 == in.size()) {
    const uint32_t v = static_cast<uint8_t>(in[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    const uint32_t v = (static_cast<uint8_t>(in[i]) << 16) |
                       (static_cast<uint8_t>(in[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

void JsonWriter::Separate() {
  if (after_key_) {
    after_key_ = false;
    return;
  }
  if (!has_element_.empty()) {
    if (has_element_.back()) out_ += ',';
    has_element_.back() = true;
  }
}

JsonWriter& JsonWriter::BeginObject() {
  Separate();
  out_ += '{';
  has_element_.push_back(false);
  return *this;
}

JsonWriter& JsonWriter::EndObject() {
  out_ += '}';
  has_element_.pop_back();
  return *this;
}

JsonWriter& JsonWriter::BeginArray() {
  Separate();
  out_ += '[';
  has_element_.push_back(false);
  return *this;
}

JsonWriter& JsonWriter::EndArray() {
  out_ += ']';
  has_element_.pop_back();
  return *this;
}

static void AppendEscaped(std::string* out, absl::string_view s) {
  *out += '"';
  for (char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (c < 0x20) {
          absl::StrAppendFormat(out, "\\u%04x", c);
        } else {
          *out += ch;
        }
    }
  }
  *out += '"';
}

JsonWriter& JsonWriter::Key(absl::string_view key) {
  Separate();
  AppendEscaped(&out_, key);
  out_ += ':';
  after_key_ = true;
  return *this;
}

JsonWriter& JsonWriter::String(absl::string_view value) {
  Separate();
  AppendEscaped(&out_, value);
  return *this;
}

JsonWriter& JsonWriter::Int(int64_t value) {
  Separate();
  absl::StrAppend(&out_, value);
  return *this;
}

JsonWriter& JsonWriter::Bool(bool value) {
  Separate();
  out_ += value ? "true" : "false";
  return *this;
}

JsonWriter& JsonWriter::Null() {
  Separate();
  out_ += "null";
  return *this;
}

JsonWriter& JsonWriter::Raw(absl::string_view json) {
  Separate();
  out_.append(json.data(), json.size());
  return *this;
}

std::string StatJson(const client::Stat& s) {
  JsonWriter w;
  w.BeginObject()
      .Key("czxid")
      .Int(s.czxid)
      .Key("mzxid")
      .Int(s.mzxid)
      .Key("ctime")
      .Int(s.ctime_ms)
      .Key("mtime")
      .Int(s.mtime_ms)
      .Key("version")
      .Int(s.version)
      .Key("cversion")
      .Int(s.cversion)
      .Key("aversion")
      .Int(s.aversion)
      .Key("ephemeralOwner")
      .Int(s.ephemeral_owner)
      .Key("dataLength")
      .Int(s.data_length)
      .Key("numChildren")
      .Int(s.num_children)
      .Key("pzxid")
      .Int(s.pzxid)
      .EndObject();
  return w.str();
}

std::string AclJson(const std::vector<client::Acl>& acl) {
  JsonWriter w;
  w.BeginArray();
  for (const client::Acl& a : acl) {
    w.BeginObject()
        .Key("scheme")
        .String(a.scheme)
        .Key("id")
        .String(a.id)
        .Key("perms")
        .String(PermString(a.perms))
        .EndObject();
  }
  w.EndArray();
  return w.str();
}

void DataJsonMembers(JsonWriter& w, absl::string_view data) {
  if (IsValidUtf8(data)) {
    w.Key("encoding").String("utf8").Key("data").String(data);
  } else {
    w.Key("encoding").String("base64").Key("data").String(Base64Encode(data));
  }
}

std::vector<std::string> SplitCommandLine(absl::string_view line) {
  std::vector<std::string> tokens;
  size_t i = 0;
  auto is_space = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
           c == '\v';
  };
  while (i < line.size()) {
    if (is_space(line[i])) {
      ++i;
      continue;
    }
    const char c = line[i];
    if (c == '"' || c == '\'') {
      const size_t close = line.find(c, i + 1);
      if (close == absl::string_view::npos) {
        ++i;  // An unbalanced quote is skipped, as zkCli's regex does.
        continue;
      }
      tokens.emplace_back(line.substr(i + 1, close - i - 1));
      i = close + 1;
      continue;
    }
    size_t j = i + 1;
    while (j < line.size() && !is_space(line[j])) ++j;
    tokens.emplace_back(line.substr(i, j - i));
    i = j;
  }
  return tokens;
}

}  // namespace rockeeper::rkctl
