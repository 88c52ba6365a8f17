#include "engine/recovery.h"

#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"

namespace rockeeper::engine {

absl::StatusOr<int64_t> ReplayLog(const TxnLog& log, StateDb& db,
                                  const ReplayOptions& options) {
  int64_t applied = 0;
  std::vector<Txn> batch;
  batch.reserve(options.batch_size);
  auto flush = [&]() -> absl::Status {
    if (batch.empty()) return absl::OkStatus();
    absl::Status s = db.Apply(batch, nullptr);
    applied += static_cast<int64_t>(batch.size());
    batch.clear();
    return s;
  };
  auto it = log.NewIterator(db.last_applied_zxid() + 1);
  for (; it->Valid(); it->Next()) {
    if (it->zxid() > options.up_to_zxid) break;
    if (it->zxid() <= db.last_applied_zxid()) continue;
    Txn txn;
    const std::string_view payload = it->payload();
    if (!txn.ParseFromArray(payload.data(), static_cast<int>(payload.size())) ||
        txn.header().zxid() != it->zxid()) {
      return absl::DataLossError(
          absl::StrCat("txn log record at zxid 0x", absl::Hex(it->zxid()),
                       " is not a valid Txn"));
    }
    batch.push_back(std::move(txn));
    if (batch.size() >= options.batch_size) {
      if (absl::Status s = flush(); !s.ok()) return s;
    }
  }
  if (!it->status().ok()) return it->status();
  if (absl::Status s = flush(); !s.ok()) return s;
  return applied;
}

}  // namespace rockeeper::engine
