// rockeeper C++ client: a ZooKeeper-style client over the gRPC API
// (proto/rockeeper/v1/rockeeper.proto), modelled on ZooKeeper's Java client.
//
//   ClientOptions options;
//   options.servers = {"127.0.0.1:2281"};
//   absl::StatusOr<std::unique_ptr<Client>> c = Client::Connect(options);
//   if (!c.ok()) ...;
//   absl::StatusOr<CreateResult> r = (*c)->Create("/app", "hello");
//   absl::StatusOr<DataResult> d =
//       (*c)->GetData("/app", [](const WatchEvent& e) { ... });
//
// Sessions. Connect creates a session on the first reachable server and
// keeps it alive from a background thread (pings on the `Session` stream
// every negotiated_timeout/3, or Heartbeat RPCs while the stream is not
// available). When the server becomes unreachable the client moves to the
// next server (round robin, bounded backoff) and resumes the same session;
// calls made meanwhile wait for the reconnection (bounded by
// request_timeout_ms). The default watcher sees kDisconnected /
// kSyncConnected; if the session expired meanwhile it sees kExpired and
// every later call fails with SESSIONEXPIRED. Watches and AddAuth
// credentials are re-sent to the new server after a reconnect.
//
// Errors. Every failure is an absl::Status that carries the exact ZooKeeper
// code (KeeperException.Code) in its message ("NONODE (-101): /a/b") and as
// the payload kZkErrorPayloadKey; ZkErrorCode() reads it back. Transport
// failures are CONNECTIONLOSS (-4). The absl code follows the ZooKeeper code
// (ZkCodeToStatusCode): NONODE -> kNotFound, NODEEXISTS -> kAlreadyExists,
// BADVERSION / NOTEMPTY -> kFailedPrecondition, NOAUTH -> kPermissionDenied,
// BADARGUMENTS -> kInvalidArgument, SESSIONEXPIRED -> kUnauthenticated,
// CONNECTIONLOSS -> kUnavailable, REQUESTTIMEOUT -> kDeadlineExceeded, ...
//
// Retries. Reads (and other idempotent calls) that lose their connection
// are retried on the resumed session until request_timeout_ms. Writes
// (Create, Delete, SetData, SetAcl, Multi) are not: as in ZooKeeper they
// fail with CONNECTIONLOSS and may or may not have been applied.
//
// Watches. A watcher is a callback registered by a read (Exists, GetData,
// GetChildren: one-shot, removed after it fires) or by AddWatch
// (persistent, optionally recursive). ZooKeeper's rules apply: a data watch
// (GetData, or Exists on an existing node) fires on data change and delete,
// an exists watch on a missing node fires on create, a child watch fires on
// a child create/delete and on the node's delete; a persistent watch fires
// for every change of its node (and a recursive one for every descendant,
// except NodeChildrenChanged). Session state events (type kNone) go to
// ClientOptions::default_watcher only. All callbacks (watchers, the default
// watcher and the completions of the callback-style async calls) run on one
// dispatcher thread per client, one at a time, in the order the events were
// received. Ordering promise (ZooKeeper's): before a call returns a response
// produced after the server sent watch events, those events have been
// received and queued for the dispatcher; a completion callback therefore
// runs after every watcher of an event that precedes its response.
//
// Async calls. The *Async variants run on one worker thread per client, in
// submission order (one at a time: the next starts when the previous
// completed), so their effects and completions are ordered as submitted.
// Futures are completed on the worker thread; callbacks run on the
// dispatcher thread. Synchronous calls from different threads run
// concurrently and are not ordered with each other or with async calls.
//
// Thread safety: every Client method may be called from any thread,
// including from watcher callbacks (synchronous calls from a callback are
// fine; blocking in a callback on another thread that waits for an event
// delivery would deadlock the dispatcher). The destructor closes the
// session (Close) unless it is already closed, and joins the client's
// threads; it may run on the dispatcher thread (from a callback).
#ifndef ROCKEEPER_RPC_CLIENT_H_
#define ROCKEEPER_RPC_CLIENT_H_

#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace rockeeper::client {

// ZooKeeper error codes (org.apache.zookeeper.KeeperException.Code).
namespace zk {
inline constexpr int32_t kOk = 0;
inline constexpr int32_t kSystemError = -1;
inline constexpr int32_t kRuntimeInconsistency = -2;
inline constexpr int32_t kDataInconsistency = -3;
inline constexpr int32_t kConnectionLoss = -4;
inline constexpr int32_t kMarshallingError = -5;
inline constexpr int32_t kUnimplemented = -6;
inline constexpr int32_t kOperationTimeout = -7;
inline constexpr int32_t kBadArguments = -8;
inline constexpr int32_t kUnknownSession = -12;
inline constexpr int32_t kNewConfigNoQuorum = -13;
inline constexpr int32_t kReconfigInProgress = -14;
inline constexpr int32_t kApiError = -100;
inline constexpr int32_t kNoNode = -101;
inline constexpr int32_t kNoAuth = -102;
inline constexpr int32_t kBadVersion = -103;
inline constexpr int32_t kNoChildrenForEphemerals = -108;
inline constexpr int32_t kNodeExists = -110;
inline constexpr int32_t kNotEmpty = -111;
inline constexpr int32_t kSessionExpired = -112;
inline constexpr int32_t kInvalidCallback = -113;
inline constexpr int32_t kInvalidAcl = -114;
inline constexpr int32_t kAuthFailed = -115;
inline constexpr int32_t kSessionMoved = -118;
inline constexpr int32_t kNotReadOnly = -119;
inline constexpr int32_t kEphemeralOnLocalSession = -120;
inline constexpr int32_t kNoWatcher = -121;
inline constexpr int32_t kRequestTimeout = -122;
inline constexpr int32_t kReconfigDisabled = -123;
inline constexpr int32_t kSessionClosedRequireSaslAuth = -124;
inline constexpr int32_t kQuotaExceeded = -125;
inline constexpr int32_t kThrottledOp = -127;

// The code's name as ZooKeeper prints it ("NONODE"); "UNKNOWN" otherwise.
const char* CodeName(int32_t code);
}  // namespace zk

// Payload key of every error status this library returns; the value is the
// ZooKeeper code in decimal ("-101").
inline constexpr char kZkErrorPayloadKey[] = "rockeeper.zk_err";

// The ZooKeeper code of `status`: 0 for OK, the code carried by statuses
// from this library, CONNECTIONLOSS (-4) for any other non-OK status.
int32_t ZkErrorCode(const absl::Status& status);

// The absl code used for a ZooKeeper code (kOk for 0, kUnknown if unknown).
absl::StatusCode ZkCodeToStatusCode(int32_t code);

// A status for ZooKeeper code `code` (OK if 0): message
// "NAME (code): detail", payload kZkErrorPayloadKey.
absl::Status ZkErrorStatus(int32_t code, const std::string& detail);

// ZooKeeper's Stat.
struct Stat {
  int64_t czxid = 0;            // zxid of the create
  int64_t mzxid = 0;            // zxid of the last SetData
  int64_t ctime_ms = 0;         // creation time, ms since the Unix epoch
  int64_t mtime_ms = 0;         // last SetData time
  int32_t version = 0;          // number of SetData
  int32_t cversion = 0;         // number of child creates + deletes
  int32_t aversion = 0;         // number of SetAcl
  int64_t ephemeral_owner = 0;  // owning session id of an ephemeral, else 0
  int32_t data_length = 0;      // bytes of data
  int32_t num_children = 0;
  int64_t pzxid = 0;  // zxid of the last child create/delete
};

// Permission bits of an ACL entry.
namespace perms {
inline constexpr int32_t kRead = 1;
inline constexpr int32_t kWrite = 2;
inline constexpr int32_t kCreate = 4;
inline constexpr int32_t kDelete = 8;
inline constexpr int32_t kAdmin = 16;
inline constexpr int32_t kAll = 31;
}  // namespace perms

// One ACL entry, as ZooKeeper's: scheme/id "world"/"anyone",
// "digest"/"user:base64(sha1(user:password))", "ip"/"10.0.0.0/8",
// "auth"/"" (the caller's authenticated ids).
struct Acl {
  int32_t perms = perms::kAll;
  std::string scheme;
  std::string id;
  friend bool operator==(const Acl&, const Acl&) = default;
};

// ZooKeeper's Ids.OPEN_ACL_UNSAFE: [ALL, world:anyone].
std::vector<Acl> OpenAclUnsafe();
// ZooKeeper's Ids.CREATOR_ALL_ACL: [ALL, auth:] (needs AddAuth first).
std::vector<Acl> CreatorAllAcl();
// ZooKeeper's Ids.READ_ACL_UNSAFE: [READ, world:anyone].
std::vector<Acl> ReadAclUnsafe();

enum class CreateMode {
  kPersistent = 0,
  kEphemeral = 1,
  kPersistentSequential = 2,
  kEphemeralSequential = 3,
  kContainer = 4,
  kPersistentWithTtl = 5,            // needs extendedTypesEnabled
  kPersistentSequentialWithTtl = 6,  // needs extendedTypesEnabled
};

// ZooKeeper's Watcher.Event.EventType (same numeric values).
enum class EventType : int32_t {
  kNone = -1,  // a session state change; see WatchEvent::state
  kNodeCreated = 1,
  kNodeDeleted = 2,
  kNodeDataChanged = 3,
  kNodeChildrenChanged = 4,
  kDataWatchRemoved = 5,        // by RemoveWatches
  kChildWatchRemoved = 6,       // by RemoveWatches
  kPersistentWatchRemoved = 7,  // by RemoveWatches
};
const char* EventTypeName(EventType type);

// ZooKeeper's Watcher.Event.KeeperState (same numeric values).
enum class SessionState : int32_t {
  kDisconnected = 0,   // lost the server; reconnecting
  kSyncConnected = 3,  // connected (first connect and after a reconnect)
  kExpired = -112,     // the session is gone; the client is unusable
  kClosed = 7,         // Close() was called
};
const char* SessionStateName(SessionState state);

struct WatchEvent {
  EventType type = EventType::kNone;
  // kSyncConnected for node events; the new state for kNone events.
  SessionState state = SessionState::kSyncConnected;
  std::string path;  // empty for kNone events
  // The zxid of the change that fired it; -1 when the server made it up
  // while re-registering watches after a reconnect (SetWatches); 0 for
  // kNone and *WatchRemoved events.
  int64_t zxid = 0;
  uint64_t seq = 0;  // the server's per-session event seq (0: local event)
};

// Called on the client's dispatcher thread. Must not be empty when passed
// to AddWatch; an empty watcher passed to a read means "no watch".
using Watcher = std::function<void(const WatchEvent&)>;

// AddWatch modes (ZooKeeper's AddWatchMode).
enum class AddWatchMode { kPersistent = 0, kPersistentRecursive = 1 };

// RemoveWatches types (ZooKeeper's Watcher.WatcherType).
enum class WatcherType {
  kChildren = 1,
  kData = 2,  // data and exists watches
  kAny = 3,
  kPersistent = 4,
  kPersistentRecursive = 5,
};

struct CreateResult {
  std::string path;  // the created path (with the sequence suffix)
  Stat stat;
};
struct DataResult {
  std::string data;
  Stat stat;
  bool data_null = false;  // ZooKeeper's null data (`data` is empty)
};
struct ChildrenResult {
  std::vector<std::string> children;  // names (not paths), sorted bytewise
  Stat stat;                          // the parent's
};
struct AclResult {
  std::vector<Acl> acl;
  Stat stat;
};
struct AuthInfo {  // one WhoAmI entry
  std::string scheme;
  std::string user;
};

// One operation of a Multi. version -1 means any version.
struct Op {
  enum class Type { kCreate, kDelete, kSetData, kCheck };
  static Op Create(std::string path, std::string data,
                   std::vector<Acl> acl = OpenAclUnsafe(),
                   CreateMode mode = CreateMode::kPersistent,
                   int64_t ttl_ms = -1);
  static Op Delete(std::string path, int32_t version = -1);
  static Op SetData(std::string path, std::string data, int32_t version = -1);
  // Fails the Multi unless the node exists (with `version` unless -1).
  static Op Check(std::string path, int32_t version = -1);

  Type type = Type::kCheck;
  std::string path;
  std::string data;
  std::vector<Acl> acl;
  CreateMode mode = CreateMode::kPersistent;
  int64_t ttl_ms = -1;
  int32_t version = -1;
  bool data_null = false;  // create/setData: ZooKeeper's null data
};

struct OpResult {
  Op::Type type = Op::Type::kCheck;
  // This op's ZooKeeper code: 0 when applied; when the Multi failed, 0 for
  // the ops before the failing one, its code, and RUNTIMEINCONSISTENCY (-2)
  // for the ops after it (nothing was applied).
  int32_t err = 0;
  absl::Status status;  // ZkErrorStatus(err, path)
  std::string path;     // kCreate: the created path
  Stat stat;            // kCreate, kSetData: the new Stat
};

struct MultiResult {
  // OK when every op was applied; the first failing op's ZooKeeper error
  // when none was (then `results` has every op's code); or a transport /
  // session error (then `results` is empty and the outcome is unknown for
  // CONNECTIONLOSS).
  absl::Status status;
  std::vector<OpResult> results;
  bool ok() const { return status.ok(); }
};

// One read of a MultiRead; each succeeds or fails on its own.
struct ReadOp {
  enum class Type { kGetData, kGetChildren };
  static ReadOp GetData(std::string path);
  static ReadOp GetChildren(std::string path);
  Type type = Type::kGetData;
  std::string path;
};
struct ReadOpResult {
  ReadOp::Type type = ReadOp::Type::kGetData;
  int32_t err = 0;
  absl::Status status;                // ZkErrorStatus(err, path)
  std::string data;                   // kGetData
  std::vector<std::string> children;  // kGetChildren
  Stat stat;
  bool data_null = false;  // kGetData: ZooKeeper's null data
};

struct ClientOptions {
  // gRPC endpoints ("host:port", "[::1]:port") of the ensemble's servers.
  // An entry may also be a ZooKeeper-style connect string
  // "h1:p1,h2:p2,..." (chroot suffixes are not supported). Required.
  std::vector<std::string> servers;

  // Requested session timeout, ms. The server clamps it into its
  // [minSessionTimeout, maxSessionTimeout]; see
  // Client::session_timeout_ms() for the negotiated value. Default: 30000.
  int32_t session_timeout_ms = 30000;

  // Bound on Client::Connect (all servers, all attempts), and per attempt
  // of a reconnect, ms. Default: 10000.
  int32_t connect_timeout_ms = 10000;

  // Bound on every call, ms: waiting for a reconnection, retries of reads
  // and the RPC itself. A call past it fails with REQUESTTIMEOUT (-122)
  // (kDeadlineExceeded) or CONNECTIONLOSS (-4) when it never got a
  // connection. Default: 10000.
  int32_t request_timeout_ms = 10000;

  // Backoff between connection attempts, ms: starts at the initial value
  // and doubles up to the max. Defaults: 50 and 1000.
  int32_t reconnect_backoff_initial_ms = 50;
  int32_t reconnect_backoff_max_ms = 1000;

  // Try the servers in a random order (as ZooKeeper's StaticHostProvider)
  // rather than as listed. Default: false.
  bool shuffle_servers = false;

  // Resume an existing session (id and password from session_id() and
  // session_password() of another client) instead of creating one. Connect
  // fails with SESSIONEXPIRED if it is gone. Default: 0 (new session).
  int64_t session_id = 0;
  std::string session_password;

  // Receives session state events (type kNone): kSyncConnected after the
  // first connect and after each reconnect, kDisconnected when the server
  // is lost, kExpired, kClosed. Also used by AddWatch when it is given no
  // watcher. Runs on the dispatcher thread. Default: none.
  Watcher default_watcher;
};

template <typename T>
using Callback = std::function<void(absl::StatusOr<T>)>;
using StatusCallback = std::function<void(absl::Status)>;
using MultiCallback = std::function<void(MultiResult)>;

class Client {
 public:
  // Creates a session on the first reachable server of `options.servers`
  // (retrying with backoff until connect_timeout_ms) and starts the
  // client's threads. Errors: InvalidArgument (BADARGUMENTS) for bad
  // options, CONNECTIONLOSS when no server answered in time, the server's
  // ZooKeeper error otherwise (e.g. SESSIONEXPIRED when resuming).
  static absl::StatusOr<std::unique_ptr<Client>> Connect(
      const ClientOptions& options);

  // Close() (if not closed yet), then joins the client's threads. Pending
  // async calls complete (with errors) before it returns.
  ~Client();

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // The session, as negotiated by the server. Stable for the client's life
  // (a reconnect resumes the same session).
  int64_t session_id() const;
  std::string session_password() const;
  int32_t session_timeout_ms() const;
  SessionState state() const;
  // The highest zxid seen in any response.
  int64_t last_zxid_seen() const;
  // The "host:port" of the server currently used.
  std::string current_server() const;

  // --- Writes (not retried on connection loss) ---

  // Creates `path`. `acl` empty means the server's default
  // (OPEN_ACL_UNSAFE); `ttl_ms` is for the *WithTtl modes (-1: unset);
  // `data_null`: ZooKeeper's null data (`data` must be empty).
  absl::StatusOr<CreateResult> Create(
      const std::string& path, const std::string& data,
      const std::vector<Acl>& acl = OpenAclUnsafe(),
      CreateMode mode = CreateMode::kPersistent, int64_t ttl_ms = -1,
      bool data_null = false);
  // version -1: any version.
  absl::Status Delete(const std::string& path, int32_t version = -1);
  absl::StatusOr<Stat> SetData(const std::string& path, const std::string& data,
                               int32_t version = -1);
  // aversion -1: any ACL version.
  absl::StatusOr<Stat> SetAcl(const std::string& path,
                              const std::vector<Acl>& acl,
                              int32_t aversion = -1);
  // All or nothing; see MultiResult.
  MultiResult Multi(const std::vector<Op>& ops);

  // --- Reads (retried on connection loss) ---

  // The node's Stat, or nullopt if it does not exist (not an error). A
  // watcher is set either way: on the node (data watch) or on its creation.
  absl::StatusOr<std::optional<Stat>> Exists(const std::string& path,
                                             Watcher watcher = nullptr);
  // Sets a data watch (when `watcher` is not empty) if the node exists.
  absl::StatusOr<DataResult> GetData(const std::string& path,
                                     Watcher watcher = nullptr);
  // Sets a child watch (when `watcher` is not empty) if the node exists.
  absl::StatusOr<ChildrenResult> GetChildren(const std::string& path,
                                             Watcher watcher = nullptr);
  absl::StatusOr<AclResult> GetAcl(const std::string& path);
  // Transport / session errors only; each result has its own code.
  absl::StatusOr<std::vector<ReadOpResult>> MultiRead(
      const std::vector<ReadOp>& ops);
  // Waits until the server is up to date with the leader for `path`.
  absl::Status Sync(const std::string& path);
  // The session's ephemeral nodes whose path starts with `prefix` (plain
  // string prefix; "" or "/" for all).
  absl::StatusOr<std::vector<std::string>> GetEphemerals(
      const std::string& prefix = "/");
  // The number of descendants of `path`, at any depth.
  absl::StatusOr<int32_t> GetAllChildrenNumber(const std::string& path);

  // --- Authentication ---

  // Adds credentials to the session ("digest", "user:password"); they are
  // re-sent after a reconnect. AUTHFAILED for unknown schemes.
  absl::Status AddAuth(const std::string& scheme, const std::string& auth);
  absl::StatusOr<std::vector<AuthInfo>> WhoAmI();

  // --- Watches ---

  // Adds a persistent watch on `path` (kPersistentRecursive: also on every
  // descendant); it fires until removed. An empty watcher means
  // ClientOptions::default_watcher.
  absl::Status AddWatch(const std::string& path, AddWatchMode mode,
                        Watcher watcher = nullptr);
  // Removes this client's watches of `type` on `path` (on the server and
  // locally; removed watchers get a *WatchRemoved event). NOWATCHER
  // (kNotFound) if there was none.
  absl::Status RemoveWatches(const std::string& path, WatcherType type);

  // --- Session ---

  // Closes the session: its ephemerals are deleted and watches dropped.
  // Later calls fail with SESSIONEXPIRED. Idempotent; returns the Close
  // RPC's error, if any (the client is closed regardless).
  absl::Status Close();

  // --- Async (FIFO on the client's worker thread; see the file comment) ---

  std::future<absl::StatusOr<CreateResult>> CreateAsync(
      const std::string& path, const std::string& data,
      const std::vector<Acl>& acl = OpenAclUnsafe(),
      CreateMode mode = CreateMode::kPersistent, int64_t ttl_ms = -1);
  std::future<absl::Status> DeleteAsync(const std::string& path,
                                        int32_t version = -1);
  std::future<absl::StatusOr<Stat>> SetDataAsync(const std::string& path,
                                                 const std::string& data,
                                                 int32_t version = -1);
  std::future<absl::StatusOr<std::optional<Stat>>> ExistsAsync(
      const std::string& path, Watcher watcher = nullptr);
  std::future<absl::StatusOr<DataResult>> GetDataAsync(
      const std::string& path, Watcher watcher = nullptr);
  std::future<absl::StatusOr<ChildrenResult>> GetChildrenAsync(
      const std::string& path, Watcher watcher = nullptr);
  std::future<MultiResult> MultiAsync(const std::vector<Op>& ops);

  // Callback forms: `done` runs on the dispatcher thread (ordered with the
  // watch events; after Close it may run on the calling thread).
  void CreateAsync(const std::string& path, const std::string& data,
                   const std::vector<Acl>& acl, CreateMode mode, int64_t ttl_ms,
                   Callback<CreateResult> done);
  void DeleteAsync(const std::string& path, int32_t version,
                   StatusCallback done);
  void SetDataAsync(const std::string& path, const std::string& data,
                    int32_t version, Callback<Stat> done);
  void ExistsAsync(const std::string& path, Watcher watcher,
                   Callback<std::optional<Stat>> done);
  void GetDataAsync(const std::string& path, Watcher watcher,
                    Callback<DataResult> done);
  void GetChildrenAsync(const std::string& path, Watcher watcher,
                        Callback<ChildrenResult> done);
  void MultiAsync(const std::vector<Op>& ops, MultiCallback done);

  // Testing: stops (true) or resumes (false) the session pings and
  // heartbeats, so that an idle session expires on the server.
  void PausePingsForTesting(bool paused);

 private:
  class Impl;
  struct Key {
    explicit Key() = default;
  };

 public:
  // Internal: use Connect().
  Client(Key, std::shared_ptr<Impl> impl);

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace rockeeper::client

#endif  // ROCKEEPER_RPC_CLIENT_H_
