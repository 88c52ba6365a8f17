#include "engine/znode.h"

namespace rockeeper::engine {

using record::v1::ZnodeRecord;

Znode ZnodeFromRecord(const ZnodeRecord& r) {
  Znode n;
  n.czxid = r.czxid();
  n.mzxid = r.mzxid();
  n.pzxid = r.pzxid();
  n.ctime_ms = r.ctime_ms();
  n.mtime_ms = r.mtime_ms();
  n.version = r.version();
  n.cversion = r.cversion();
  n.aversion = r.aversion();
  n.ephemeral_owner = r.ephemeral_owner();
  n.num_children = r.num_children();
  n.acl_id = r.has_acl_id() ? r.acl_id() : kOpenAclId;
  n.data = r.data();
  n.data_null = r.data_null();
  return n;
}

ZnodeRecord ZnodeToRecord(const Znode& n) {
  ZnodeRecord r;
  r.set_czxid(n.czxid);
  r.set_mzxid(n.mzxid);
  r.set_pzxid(n.pzxid);
  r.set_ctime_ms(n.ctime_ms);
  r.set_mtime_ms(n.mtime_ms);
  r.set_version(n.version);
  r.set_cversion(n.cversion);
  r.set_aversion(n.aversion);
  r.set_ephemeral_owner(n.ephemeral_owner);
  r.set_num_children(n.num_children);
  r.set_acl_id(n.acl_id);
  r.set_data(n.data);
  if (n.data_null) r.set_data_null(true);
  return r;
}

}  // namespace rockeeper::engine
