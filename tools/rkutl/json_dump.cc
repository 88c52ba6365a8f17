#include "tools/rkutl/json_dump.h"

#include "absl/strings/str_cat.h"
#include "tools/rkutl/json.h"

namespace rockeeper::rkutl {
namespace {

// Parses `[ item, ... ]`, calling `fn` on each element.
template <typename Fn>
absl::Status ParseArray(JsonParser& parser, Fn&& fn) {
  if (absl::Status s = parser.Expect('['); !s.ok()) return s;
  if (parser.Consume(']')) return absl::OkStatus();
  while (true) {
    absl::StatusOr<Json> item = parser.ParseValue();
    if (!item.ok()) return item.status();
    if (absl::Status s = fn(*item); !s.ok()) return s;
    if (parser.Consume(']')) return absl::OkStatus();
    if (absl::Status s = parser.Expect(','); !s.ok()) return s;
  }
}

absl::Status ApplyHeaderMember(const std::string& key, const Json& value,
                               DumpHeader* h) {
  Json obj;
  obj.type = Json::Type::kObject;
  obj.keys.push_back(key);
  obj.items.push_back(value);
  auto as_int = [&](int64_t* out) -> absl::Status {
    absl::StatusOr<int64_t> v = JsonInt(obj, key);
    if (!v.ok()) return v.status();
    *out = *v;
    return absl::OkStatus();
  };
  if (key == "format") {
    if (value.type != Json::Type::kString || value.text != kDumpFormatName) {
      return absl::InvalidArgumentError(absl::StrCat(
          "not an rkutl dump (\"format\" is not \"", kDumpFormatName, "\")"));
    }
    return absl::OkStatus();
  }
  if (key == "version") {
    int64_t v = 0;
    if (absl::Status s = as_int(&v); !s.ok()) return s;
    if (v != kDumpFormatVersion) {
      return absl::InvalidArgumentError(
          absl::StrCat("unsupported dump version ", v));
    }
    return absl::OkStatus();
  }
  if (key == "source" && value.type == Json::Type::kString) {
    h->source = value.text;
    return absl::OkStatus();
  }
  if (key == "root" && value.type == Json::Type::kString) {
    h->root = value.text;
    return absl::OkStatus();
  }
  if (key == "lastAppliedZxid") return as_int(&h->last_applied_zxid);
  if (key == "currentEpoch") return as_int(&h->current_epoch);
  if (key == "acceptedEpoch") return as_int(&h->accepted_epoch);
  if (key == "maxDepth") return as_int(&h->max_depth);
  return absl::OkStatus();  // unknown members are ignored
}

}  // namespace

std::string FormatDumpHead(const DumpHeader& h,
                           const std::vector<engine::SessionRecord>& sessions) {
  std::string out = "{\"format\":";
  AppendJsonString(&out, kDumpFormatName);
  absl::StrAppend(&out, ",\"version\":", kDumpFormatVersion, ",\"source\":");
  AppendJsonString(&out, h.source);
  absl::StrAppend(&out, ",\"lastAppliedZxid\":\"", Hex(h.last_applied_zxid),
                  "\",\"currentEpoch\":", h.current_epoch,
                  ",\"acceptedEpoch\":", h.accepted_epoch, ",\"root\":");
  AppendJsonString(&out, h.root);
  absl::StrAppend(&out, ",\"maxDepth\":", h.max_depth,
                  ",\"complete\":", h.complete() ? "true" : "false",
                  ",\n\"sessions\":[");
  for (size_t i = 0; i < sessions.size(); ++i) {
    absl::StrAppend(&out, i == 0 ? "\n" : ",\n",
                    FormatSessionJson(sessions[i]));
  }
  absl::StrAppend(&out, "],\n\"nodes\":[\n");
  return out;
}

absl::StatusOr<DumpContents> ParseJsonDump(absl::string_view text) {
  DumpContents dump;
  JsonParser parser(text);
  bool seen_format = false;
  if (absl::Status s = parser.Expect('{'); !s.ok()) return s;
  bool first = true;
  while (!parser.Consume('}')) {
    if (!first) {
      if (absl::Status s = parser.Expect(','); !s.ok()) return s;
    }
    first = false;
    absl::StatusOr<std::string> key = parser.ParseString();
    if (!key.ok()) return key.status();
    if (absl::Status s = parser.Expect(':'); !s.ok()) return s;
    absl::Status s;
    if (*key == "nodes") {
      s = ParseArray(parser, [&](const Json& item) -> absl::Status {
        absl::StatusOr<NodeEntry> node = ParseNodeJson(item);
        if (!node.ok()) {
          const Json* path = item.Find("path");
          return parser.Error(absl::StrCat("node ",
                                           path != nullptr ? path->text : "?",
                                           ": ", node.status().message()));
        }
        dump.nodes.push_back(*std::move(node));
        return absl::OkStatus();
      });
    } else if (*key == "sessions") {
      s = ParseArray(parser, [&](const Json& item) -> absl::Status {
        absl::StatusOr<engine::SessionRecord> session = ParseSessionJson(item);
        if (!session.ok()) {
          return parser.Error(
              absl::StrCat("session: ", session.status().message()));
        }
        dump.sessions.push_back(*std::move(session));
        return absl::OkStatus();
      });
    } else {
      absl::StatusOr<Json> value = parser.ParseValue();
      if (!value.ok()) return value.status();
      seen_format = seen_format || *key == "format";
      s = ApplyHeaderMember(*key, *value, &dump.header);
      if (!s.ok()) s = parser.Error(s.message());
    }
    if (!s.ok()) return s;
  }
  if (absl::Status s = parser.ExpectEnd(); !s.ok()) return s;
  if (!seen_format) {
    return absl::InvalidArgumentError(
        "not an rkutl dump (no \"format\" member)");
  }
  return dump;
}

}  // namespace rockeeper::rkutl
