// SessionTracker: the live sessions of this server, in memory. Sessions are
// created and closed by replicated txns (createSession / closeSession); the
// tracker keeps what is local: expiry deadlines, authenticated ids.
//
// Expiry: a session expires when it has not been touched for its timeout.
// The expiry loop (in the service) closes expired sessions through the
// write path, which deletes their ephemerals.
//
// Thread safety: all methods are thread-safe.
#ifndef ROCKEEPER_RPC_SESSION_TRACKER_H_
#define ROCKEEPER_RPC_SESSION_TRACKER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/acl.h"

namespace rockeeper::rpc {

struct SessionInfo {
  int64_t id = 0;
  int32_t timeout_ms = 0;
  std::string password;
  std::vector<engine::AuthId> auth_ids;  // from AddAuth
  std::string client_ip;                 // of the Connect that created it
  absl::Time expires_at;
};

class SessionTracker {
 public:
  // `server_id` goes in the top byte of new ids (ZooKeeper's scheme).
  explicit SessionTracker(int64_t server_id);

  // A fresh id: ((now_ms << 24) >> 8) | (server_id << 56), then +1 each.
  int64_t NextSessionId();
  // 16 random bytes.
  static std::string NewPassword();

  // Starts tracking (after the createSession txn applied, or at startup for
  // sessions found in the state DB).
  void Add(int64_t id, int32_t timeout_ms, std::string password,
           std::string client_ip = "");
  // Live sessions created from `client_ip`.
  size_t CountForIp(const std::string& client_ip) const;
  void Remove(int64_t id);
  // Extends the deadline; false if the session is unknown here.
  bool Touch(int64_t id);
  std::optional<SessionInfo> Get(int64_t id) const;
  void AddAuth(int64_t id, engine::AuthId auth);
  // Sessions touched since the last call (a learner relays them to the
  // leader).
  std::vector<int64_t> TakeTouched();
  // Every session's deadline restarts now (a new leader).
  void ResetDeadlines();
  // false: Touch never refuses a session for its deadline (a learner, whose
  // deadlines are not authoritative: the leader expires sessions). Default:
  // true.
  void set_enforce_deadlines(bool enforce);
  // Sessions past their deadline at `now` (they stay tracked until Remove).
  std::vector<int64_t> Expired(absl::Time now) const;
  size_t size() const;
  // Every tracked session (for dump), in no particular order.
  std::vector<SessionInfo> List() const;

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<int64_t, SessionInfo> sessions_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> touched_ ABSL_GUARDED_BY(mu_);
  bool enforce_deadlines_ ABSL_GUARDED_BY(mu_) = true;
};

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_SESSION_TRACKER_H_
