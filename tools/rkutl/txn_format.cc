#include "tools/rkutl/txn_format.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "tools/rkutl/dump_format.h"
#include "tools/rkutl/json.h"

namespace rockeeper::rkutl {
namespace {

using record::v1::Txn;

std::string AclText(
    const google::protobuf::RepeatedPtrField<record::v1::Acl>& acl) {
  std::vector<std::string> parts;
  for (const auto& a : acl) {
    parts.push_back(
        absl::StrCat(a.scheme(), ":", a.id(), ":", PermsString(a.perms())));
  }
  return absl::StrCat("[", absl::StrJoin(parts, ","), "]");
}

std::string PathText(absl::string_view path) {
  return IsValidUtf8(path) ? std::string(path) : absl::CHexEscape(path);
}

std::string CreateText(const record::v1::CreateTxn& c) {
  std::string out =
      absl::StrCat("path=", PathText(c.path()), " dataLength=", c.data().size(),
                   " acl=", AclText(c.acl()));
  if (c.ephemeral_owner() != 0) {
    absl::StrAppend(&out, " ephemeralOwner=", Hex(c.ephemeral_owner()));
  }
  absl::StrAppend(&out, " flags=", c.flags(),
                  " parentCversion=", c.parent_cversion(),
                  " parentNumChildren=", c.parent_num_children());
  return out;
}

std::string DeleteText(const record::v1::DeleteTxn& d) {
  std::string out =
      absl::StrCat("path=", PathText(d.path()),
                   " parentNumChildren=", d.parent_num_children());
  if (d.ephemeral_owner() != 0) {
    absl::StrAppend(&out, " ephemeralOwner=", Hex(d.ephemeral_owner()));
  }
  return out;
}

std::string SetDataText(const record::v1::SetDataTxn& s) {
  return absl::StrCat("path=", PathText(s.path()), " version=", s.version(),
                      " dataLength=", s.data().size());
}

std::string CheckText(const record::v1::CheckTxn& c) {
  return absl::StrCat("path=", PathText(c.path()), " version=", c.version());
}

std::string MultiOpText(const record::v1::MultiOp& op) {
  std::string body;
  switch (op.body_case()) {
    case record::v1::MultiOp::kCreate:
      body = CreateText(op.create());
      break;
    case record::v1::MultiOp::kDelete:
      body = DeleteText(op.delete_());
      break;
    case record::v1::MultiOp::kSetData:
      body = SetDataText(op.set_data());
      break;
    case record::v1::MultiOp::kCheck:
      body = CheckText(op.check());
      break;
    case record::v1::MultiOp::kError:
      body = absl::StrCat("err=", op.error().err());
      break;
    case record::v1::MultiOp::BODY_NOT_SET:
      body = "(no body)";
      break;
  }
  return absl::StrCat("{", TxnTypeName(op.type()), " ", body, "}");
}

std::string BodyText(const Txn& txn) {
  switch (txn.body_case()) {
    case Txn::kCreateSession:
      return absl::StrCat("timeoutMs=", txn.create_session().timeout_ms());
    case Txn::kCloseSession: {
      std::vector<std::string> paths;
      for (const auto& d : txn.close_session().deletes()) {
        paths.push_back(PathText(d.path()));
      }
      return absl::StrCat("deletes=", paths.size(), " [",
                          absl::StrJoin(paths, " "), "]");
    }
    case Txn::kCreate:
      return CreateText(txn.create());
    case Txn::kDelete:
      return DeleteText(txn.delete_());
    case Txn::kSetData:
      return SetDataText(txn.set_data());
    case Txn::kSetAcl:
      return absl::StrCat("path=", PathText(txn.set_acl().path()),
                          " aversion=", txn.set_acl().aversion(),
                          " acl=", AclText(txn.set_acl().acl()));
    case Txn::kCheck:
      return CheckText(txn.check());
    case Txn::kMulti: {
      std::vector<std::string> ops;
      for (const auto& op : txn.multi().ops()) ops.push_back(MultiOpText(op));
      return absl::StrCat("ops=", ops.size(), " ", absl::StrJoin(ops, " "));
    }
    case Txn::kError:
      return absl::StrCat("err=", txn.error().err());
    case Txn::BODY_NOT_SET:
      break;
  }
  return "(no body)";
}

}  // namespace

std::string TxnTypeName(record::v1::TxnType type) {
  switch (type) {
    case record::v1::TXN_CREATE:
      return "create";
    case record::v1::TXN_DELETE:
      return "delete";
    case record::v1::TXN_SET_DATA:
      return "setData";
    case record::v1::TXN_SET_ACL:
      return "setACL";
    case record::v1::TXN_CHECK:
      return "check";
    case record::v1::TXN_MULTI:
      return "multi";
    case record::v1::TXN_CREATE2:
      return "create2";
    case record::v1::TXN_CREATE_CONTAINER:
      return "createContainer";
    case record::v1::TXN_DELETE_CONTAINER:
      return "deleteContainer";
    case record::v1::TXN_CREATE_TTL:
      return "createTTL";
    case record::v1::TXN_CREATE_SESSION:
      return "createSession";
    case record::v1::TXN_CLOSE_SESSION:
      return "closeSession";
    case record::v1::TXN_ERROR:
      return "error";
    default:
      break;
  }
  return absl::StrCat("type(", static_cast<int>(type), ")");
}

std::string FormatIsoTime(int64_t ms) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromUnixMillis(ms),
                          absl::UTCTimeZone());
}

std::string FormatTxnText(int64_t zxid, std::string_view payload) {
  Txn txn;
  if (!txn.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return absl::StrCat(Hex(zxid), " (", payload.size(),
                        "-byte payload that is not a Txn)");
  }
  const auto& h = txn.header();
  std::string out =
      absl::StrCat(Hex(zxid), " ", FormatIsoTime(h.time_ms()), " session ",
                   Hex(h.session_id()), " cxid ", h.cxid(), " ",
                   TxnTypeName(h.type()), " ", BodyText(txn));
  for (const auto& q : txn.quota_updates()) {
    absl::StrAppend(&out, " quotaUpdate=", PathText(q.path()), "(",
                    q.data().size(), "B)");
  }
  if (h.zxid() != zxid) {
    absl::StrAppend(&out, " (header zxid ", Hex(h.zxid()), "!)");
  }
  return out;
}

std::string FormatTxnJson(int64_t zxid, std::string_view payload) {
  Txn txn;
  std::string out = absl::StrCat("{\"zxid\":\"", Hex(zxid), "\"");
  if (!txn.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    absl::StrAppend(
        &out, ",\"error\":\"payload is not a Txn\",\"payload\":\"",
        absl::Base64Escape(absl::string_view(payload.data(), payload.size())),
        "\"}");
    return out;
  }
  const auto& h = txn.header();
  std::string body;
  google::protobuf::util::JsonPrintOptions options;
  if (!google::protobuf::util::MessageToJsonString(txn, &body, options).ok()) {
    body = "null";
  }
  absl::StrAppend(&out, ",\"time\":\"", FormatIsoTime(h.time_ms()),
                  "\",\"timeMs\":", h.time_ms(), ",\"sessionId\":\"",
                  Hex(h.session_id()), "\",\"cxid\":", h.cxid(),
                  ",\"type\":", JsonString(TxnTypeName(h.type())),
                  ",\"txn\":", body, "}");
  return out;
}

}  // namespace rockeeper::rkutl
