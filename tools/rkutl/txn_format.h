// How `rkutl txnlog dump` prints a log record: one text line, or one JSON
// object per line (the Txn in protobuf's JSON mapping).
#ifndef ROCKEEPER_TOOLS_RKUTL_TXN_FORMAT_H_
#define ROCKEEPER_TOOLS_RKUTL_TXN_FORMAT_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "rockeeper/record/v1/txn.pb.h"

namespace rockeeper::rkutl {

// ZooKeeper's op name of a txn type: "create", "setData", "closeSession"...
std::string TxnTypeName(record::v1::TxnType type);

// "<zxid> <time> session <id> cxid <n> <type> <body>" (no newline). A
// payload that is not a Txn is printed as such, with its size.
std::string FormatTxnText(int64_t zxid, std::string_view payload);
// {"zxid":"0x..","time":"...","timeMs":..,"sessionId":"0x..","cxid":..,
//  "type":"create","txn":{...}} on one line (no newline).
std::string FormatTxnJson(int64_t zxid, std::string_view payload);

// ISO 8601 UTC with milliseconds: "2024-01-02T03:04:05.678Z".
std::string FormatIsoTime(int64_t ms);

}  // namespace rockeeper::rkutl

#endif  // ROCKEEPER_TOOLS_RKUTL_TXN_FORMAT_H_
