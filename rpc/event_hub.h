// EventHub: per-session queues of watch events with sequence numbers, and
// the attachment of each session's `Session` stream.
//
// Publish assigns the next seq (1, 2, ...) and queues the event; the
// session's stream takes events with Take (non-blocking, after its notify
// callback ran) and removes them with Ack once written, so events survive a
// broken stream and go out on the next one. A new Attach replaces the
// previous stream (its Take reports kReplaced). Close ends the stream with a
// final state and forgets the session. Notify callbacks run outside the
// hub's lock, on the publishing thread; they must be quick.
//
// EventSubscription is a stream's attachment held by a front end without a
// Session stream of its own (a ZooKeeper-protocol connection).
//
// Thread safety: all methods are thread-safe.
#ifndef ROCKEEPER_RPC_EVENT_HUB_H_
#define ROCKEEPER_RPC_EVENT_HUB_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "engine/state_db.h"

namespace rockeeper::rpc {

struct QueuedEvent {
  uint64_t seq;
  engine::WatchEventType type;
  std::string path;
  int64_t zxid;
};

class EventHub {
 public:
  enum class End { kNone, kReplaced, kClosed, kExpired };

  // Most events kept for a session with no stream reading them; beyond it
  // the oldest are dropped (the client then sees a gap in seq and must treat
  // its watches as lost). Default: 100000.
  explicit EventHub(size_t max_queued_per_session = 100000)
      : max_queued_(max_queued_per_session) {}

  void Publish(int64_t session_id, engine::WatchEventType type,
               const std::string& path, int64_t zxid);
  // Seq of the last event published for the session (0 if none).
  uint64_t LastSeq(int64_t session_id) const;

  // Attaches a new stream; returns its token. `notify` runs whenever the
  // stream has something to take (events, a pong, its end).
  uint64_t Attach(int64_t session_id, std::function<void()> notify);
  // The stream `token` ended (client gone); events stay queued.
  void Detach(int64_t session_id, uint64_t token);
  // Marks that the stream `token` owes the client a pong.
  void Ping(int64_t session_id, uint64_t token);
  struct Batch {
    std::vector<QueuedEvent> events;  // in seq order, not yet acked
    // Every event up to this seq left the queue (acked by this or an
    // earlier stream of the session, or dropped): none of them will come.
    // A stream that waits for events up to some seq (a ZooKeeper-protocol
    // reply's event_seq) counts them as written.
    uint64_t done_through = 0;
    bool pong = false;
    End end = End::kNone;
  };
  // What the stream `token` has to send now (without waiting).
  Batch Take(int64_t session_id, uint64_t token);
  // Drops events up to `seq` (written to the client).
  void Ack(int64_t session_id, uint64_t seq);
  // Ends the session's stream with `end` and forgets the session.
  void Close(int64_t session_id, End end);

 private:
  struct SessionQueue {
    uint64_t last_seq = 0;
    std::deque<QueuedEvent> events;
    uint64_t token = 0;
    bool pong = false;
    End end = End::kNone;
    std::function<void()> notify;
  };
  // Runs the notify callback of `session_id` (outside the lock).
  void Notify(int64_t session_id) ABSL_LOCKS_EXCLUDED(mu_);

  const size_t max_queued_;
  mutable absl::Mutex mu_;
  absl::flat_hash_map<int64_t, SessionQueue> sessions_ ABSL_GUARDED_BY(mu_);
  uint64_t next_token_ ABSL_GUARDED_BY(mu_) = 1;
};

// One attachment (Attach .. Detach) of a session's events. The hub must
// outlive it unless Detach was called.
class EventSubscription {
 public:
  EventSubscription(EventHub* hub, int64_t session_id, uint64_t token)
      : hub_(hub), session_id_(session_id), token_(token) {}
  ~EventSubscription() { Detach(); }
  EventSubscription(const EventSubscription&) = delete;
  EventSubscription& operator=(const EventSubscription&) = delete;

  int64_t session_id() const { return session_id_; }
  EventHub::Batch Take() { return hub_->Take(session_id_, token_); }
  void Ack(uint64_t seq) { hub_->Ack(session_id_, seq); }
  // Ends the attachment (events stay queued); later calls do nothing.
  void Detach() {
    if (!detached_.exchange(true)) hub_->Detach(session_id_, token_);
  }

 private:
  EventHub* const hub_;
  const int64_t session_id_;
  const uint64_t token_;
  std::atomic<bool> detached_{false};
};

}  // namespace rockeeper::rpc

#endif  // ROCKEEPER_RPC_EVENT_HUB_H_
