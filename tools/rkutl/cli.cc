#include "tools/rkutl/cli.h"

#include "absl/strings/cord.h"

namespace rockeeper::rkutl {
namespace {

constexpr char kUsagePayload[] = "rkutl/usage";
constexpr char kReportedPayload[] = "rkutl/reported";

absl::Status Tagged(absl::Status s, absl::string_view tag) {
  s.SetPayload(tag, absl::Cord("1"));
  return s;
}

}  // namespace

absl::Status UsageError(absl::string_view message) {
  return Tagged(absl::InvalidArgumentError(message), kUsagePayload);
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayload).has_value();
}

absl::Status ReportedError(absl::string_view message) {
  return Tagged(absl::DataLossError(message), kReportedPayload);
}

bool IsReportedError(const absl::Status& status) {
  return status.GetPayload(kReportedPayload).has_value();
}

const std::vector<Command>& AllCommands() {
  static const std::vector<Command> kAll = [] {
    std::vector<Command> all;
    for (auto group :
         {SnapshotCommands, TxnLogCommands, PurgeCommands, ZooKeeperCommands}) {
      for (Command& c : group()) all.push_back(std::move(c));
    }
    return all;
  }();
  return kAll;
}

}  // namespace rockeeper::rkutl
