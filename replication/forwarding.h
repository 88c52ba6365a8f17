// Forwarding of client writes from a learner to the leader (ZooKeeper's
// REQUEST packet): the ForwardedWrite record (proto/rockeeper/record/v1/
// forward.proto) and the error txn with which the leader answers a
// forwarded request that Prep refused, so that the learner answers its
// client in order when it applies that txn.
//
// DecodeForwardedWrite validates what a peer sends (size, a request set,
// op counts) and returns InvalidArgument otherwise; fuzz target:
// tests/fuzz/forward_fuzz.cc.
#ifndef ROCKEEPER_REPLICATION_FORWARDING_H_
#define ROCKEEPER_REPLICATION_FORWARDING_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "engine/prep.h"
#include "engine/requests.h"

namespace rockeeper::replication {

struct ForwardedWrite {
  int64_t origin_server = 0;
  int64_t request_id = 0;
  engine::RequestContext ctx;
  engine::WriteRequest request;
};

// Most ops in a forwarded multi. Default bound: 100000.
inline constexpr size_t kMaxForwardedMultiOps = 100000;

std::string EncodeForwardedWrite(const ForwardedWrite& w);
absl::StatusOr<ForwardedWrite> DecodeForwardedWrite(std::string_view bytes);

// The txn that records Prep's refusal of a write, as ZooKeeper's ErrorTxn:
// an ErrorTxn (or, for a multi, a MultiTxn of ErrorTxn ops with the per-op
// codes). Applying it changes nothing but the last applied zxid.
engine::Txn MakeErrorTxn(const engine::RequestContext& ctx,
                         const engine::WriteRequest& request,
                         const engine::PrepOutcome& o, int64_t zxid,
                         int64_t time_ms);
// The same for a forwarded request, stamped with the request's origin.
engine::Txn MakeErrorTxn(const ForwardedWrite& w, const engine::PrepOutcome& o,
                         int64_t zxid, int64_t time_ms);

// What a learner tells its client when it applies a txn it forwarded: the
// inverse of MakeErrorTxn for refusals, the txn itself otherwise.
engine::PrepOutcome OutcomeOfTxn(const engine::Txn& txn);

}  // namespace rockeeper::replication

#endif  // ROCKEEPER_REPLICATION_FORWARDING_H_
