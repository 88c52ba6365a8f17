// Write requests as the engine sees them, independent of the client encoding
// (gRPC or ZooKeeper jute). Field meanings follow zookeeper.jute.
#ifndef ROCKEEPER_ENGINE_REQUESTS_H_
#define ROCKEEPER_ENGINE_REQUESTS_H_

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "engine/acl.h"

namespace rockeeper::engine {

// ZooKeeper CreateMode flag values.
enum CreateFlags : int32_t {
  kPersistent = 0,
  kEphemeral = 1,
  kPersistentSequential = 2,
  kEphemeralSequential = 3,
  kContainer = 4,
  kPersistentWithTtl = 5,
  kPersistentSequentialWithTtl = 6,
};

struct CreateRequest {
  std::string path;
  std::string data;
  AclVector acl;
  int32_t flags = kPersistent;
  int64_t ttl_ms = -1;     // only for the TTL modes; -1 = none
  bool data_null = false;  // ZooKeeper's null byte array (data empty)
};
struct DeleteRequest {
  std::string path;
  int32_t version = -1;  // -1 = any
};
// Opcode 20, issued by the container/TTL reaper: deletes only if childless.
struct DeleteContainerRequest {
  std::string path;
};
struct SetDataRequest {
  std::string path;
  std::string data;
  int32_t version = -1;
  bool data_null = false;  // ZooKeeper's null byte array (data empty)
};
struct SetAclRequest {
  std::string path;
  AclVector acl;
  int32_t version = -1;  // expected aversion
};
struct CheckRequest {
  std::string path;
  int32_t version = -1;
};
using MultiOpRequest =
    std::variant<CreateRequest, DeleteRequest, SetDataRequest, CheckRequest>;
struct MultiRequest {
  std::vector<MultiOpRequest> ops;
};
// The session id is the caller's (RequestContext::session_id), chosen by
// the session tracker before Prep.
struct CreateSessionRequest {
  int32_t timeout_ms = 0;
  std::string password;
};
struct CloseSessionRequest {};

using WriteRequest =
    std::variant<CreateRequest, DeleteRequest, DeleteContainerRequest,
                 SetDataRequest, SetAclRequest, CheckRequest, MultiRequest,
                 CreateSessionRequest, CloseSessionRequest>;

// Who is asking: the session (0 = sessionless) and its authenticated ids.
struct RequestContext {
  int64_t session_id = 0;
  int32_t cxid = 0;
  std::vector<AuthId> auth_ids;
};

}  // namespace rockeeper::engine

#endif  // ROCKEEPER_ENGINE_REQUESTS_H_
