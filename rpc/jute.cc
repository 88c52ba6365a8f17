#include "rpc/jute.h"

namespace rockeeper::jute {

// --- JuteReader -------------------------------------------------------------

bool JuteReader::Take(size_t n, const char** p) {
  if (!ok_ || n > remaining()) return Fail();
  *p = data_.data() + pos_;
  pos_ += n;
  return true;
}

bool JuteReader::ReadInt(int32_t* v) {
  const char* p = nullptr;
  if (!Take(4, &p)) return false;
  uint32_t u = 0;
  for (int i = 0; i < 4; ++i) u = (u << 8) | static_cast<unsigned char>(p[i]);
  *v = static_cast<int32_t>(u);
  return true;
}

bool JuteReader::ReadLong(int64_t* v) {
  const char* p = nullptr;
  if (!Take(8, &p)) return false;
  uint64_t u = 0;
  for (int i = 0; i < 8; ++i) u = (u << 8) | static_cast<unsigned char>(p[i]);
  *v = static_cast<int64_t>(u);
  return true;
}

bool JuteReader::ReadBool(bool* v) {
  const char* p = nullptr;
  if (!Take(1, &p)) return false;
  *v = *p != 0;
  return true;
}

bool JuteReader::ReadBuffer(std::string* v, bool* is_null) {
  int32_t len = 0;
  if (!ReadInt(&len)) return false;
  if (is_null != nullptr) *is_null = (len == -1);
  if (len == -1) {
    v->clear();
    return true;
  }
  if (len < 0 || len > max_length_) return Fail();
  const char* p = nullptr;
  if (!Take(static_cast<size_t>(len), &p)) return false;
  v->assign(p, static_cast<size_t>(len));
  return true;
}

bool JuteReader::ReadCount(int32_t* n) {
  if (!ReadInt(n)) return false;
  if (*n == -1) *n = 0;
  // Every element takes at least one byte: a count above the bytes left is
  // malformed (and must not drive a huge reserve()).
  if (*n < 0 || *n > max_length_ || static_cast<size_t>(*n) > remaining()) {
    return Fail();
  }
  return true;
}

// --- JuteWriter -------------------------------------------------------------

void JuteWriter::WriteInt(int32_t v) {
  // One append, not four push_backs (a getChildren reply writes one length
  // per child).
  const auto u = static_cast<uint32_t>(v);
  const char bytes[4] = {static_cast<char>(u >> 24), static_cast<char>(u >> 16),
                         static_cast<char>(u >> 8), static_cast<char>(u)};
  out_.append(bytes, sizeof(bytes));
}

void JuteWriter::WriteLong(int64_t v) {
  const auto u = static_cast<uint64_t>(v);
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(u >> (56 - 8 * i));
  out_.append(bytes, sizeof(bytes));
}

void JuteWriter::WriteBool(bool v) { out_.push_back(v ? 1 : 0); }

void JuteWriter::WriteBuffer(absl::string_view v) {
  WriteInt(static_cast<int32_t>(v.size()));
  out_.append(v.data(), v.size());
}

std::string JuteWriter::Framed() const {
  JuteWriter w;
  w.WriteInt(static_cast<int32_t>(out_.size()));
  return w.Release() + out_;
}

// --- Records ----------------------------------------------------------------

bool Read(JuteReader& r, Id* v) {
  return r.ReadString(&v->scheme) && r.ReadString(&v->id);
}

bool Read(JuteReader& r, Acl* v) {
  return r.ReadInt(&v->perms) && Read(r, &v->id);
}

bool Read(JuteReader& r, std::vector<Acl>* v) {
  int32_t n = 0;
  if (!r.ReadCount(&n)) return false;
  v->assign(static_cast<size_t>(n), Acl{});
  for (Acl& a : *v) {
    if (!Read(r, &a)) return false;
  }
  return true;
}

bool Read(JuteReader& r, std::vector<std::string>* v) {
  int32_t n = 0;
  if (!r.ReadCount(&n)) return false;
  v->assign(static_cast<size_t>(n), std::string());
  for (std::string& s : *v) {
    if (!r.ReadString(&s)) return false;
  }
  return true;
}

bool Read(JuteReader& r, Stat* v) {
  return r.ReadLong(&v->czxid) && r.ReadLong(&v->mzxid) &&
         r.ReadLong(&v->ctime) && r.ReadLong(&v->mtime) &&
         r.ReadInt(&v->version) && r.ReadInt(&v->cversion) &&
         r.ReadInt(&v->aversion) && r.ReadLong(&v->ephemeral_owner) &&
         r.ReadInt(&v->data_length) && r.ReadInt(&v->num_children) &&
         r.ReadLong(&v->pzxid);
}

bool Read(JuteReader& r, ConnectRequest* v) {
  if (!(r.ReadInt(&v->protocol_version) && r.ReadLong(&v->last_zxid_seen) &&
        r.ReadInt(&v->timeout_ms) && r.ReadLong(&v->session_id) &&
        r.ReadBuffer(&v->password))) {
    return false;
  }
  v->read_only.reset();
  if (r.remaining() > 0) {
    bool ro = false;
    if (!r.ReadBool(&ro)) return false;
    v->read_only = ro;
  }
  return true;
}

bool Read(JuteReader& r, ConnectResponse* v) {
  if (!(r.ReadInt(&v->protocol_version) && r.ReadInt(&v->timeout_ms) &&
        r.ReadLong(&v->session_id) && r.ReadBuffer(&v->password))) {
    return false;
  }
  v->read_only.reset();
  if (r.remaining() > 0) {
    bool ro = false;
    if (!r.ReadBool(&ro)) return false;
    v->read_only = ro;
  }
  return true;
}

bool Read(JuteReader& r, RequestHeader* v) {
  return r.ReadInt(&v->xid) && r.ReadInt(&v->type);
}

bool Read(JuteReader& r, ReplyHeader* v) {
  return r.ReadInt(&v->xid) && r.ReadLong(&v->zxid) && r.ReadInt(&v->err);
}

bool Read(JuteReader& r, CreateRequest* v, bool with_ttl) {
  if (!(r.ReadString(&v->path) && r.ReadBuffer(&v->data, &v->data_null) &&
        Read(r, &v->acl) && r.ReadInt(&v->flags))) {
    return false;
  }
  v->ttl = -1;
  return !with_ttl || r.ReadLong(&v->ttl);
}

bool Read(JuteReader& r, PathVersionRequest* v) {
  return r.ReadString(&v->path) && r.ReadInt(&v->version);
}

bool Read(JuteReader& r, PathWatchRequest* v) {
  return r.ReadString(&v->path) && r.ReadBool(&v->watch);
}

bool Read(JuteReader& r, SetDataRequest* v) {
  return r.ReadString(&v->path) && r.ReadBuffer(&v->data, &v->data_null) &&
         r.ReadInt(&v->version);
}

bool Read(JuteReader& r, SetAclRequest* v) {
  return r.ReadString(&v->path) && Read(r, &v->acl) && r.ReadInt(&v->version);
}

bool Read(JuteReader& r, WatcherEvent* v) {
  return r.ReadInt(&v->type) && r.ReadInt(&v->state) && r.ReadString(&v->path);
}

bool Read(JuteReader& r, MultiHeader* v) {
  return r.ReadInt(&v->type) && r.ReadBool(&v->done) && r.ReadInt(&v->err);
}

bool Read(JuteReader& r, AuthPacket* v) {
  return r.ReadInt(&v->type) && r.ReadString(&v->scheme) &&
         r.ReadBuffer(&v->auth);
}

bool Read(JuteReader& r, SetWatches* v, bool v2) {
  if (!(r.ReadLong(&v->relative_zxid) && Read(r, &v->data) &&
        Read(r, &v->exist) && Read(r, &v->child))) {
    return false;
  }
  v->persistent.clear();
  v->persistent_recursive.clear();
  return !v2 || (Read(r, &v->persistent) && Read(r, &v->persistent_recursive));
}

void Write(JuteWriter& w, const Id& v) {
  w.WriteString(v.scheme);
  w.WriteString(v.id);
}

void Write(JuteWriter& w, const Acl& v) {
  w.WriteInt(v.perms);
  Write(w, v.id);
}

void Write(JuteWriter& w, const std::vector<Acl>& v) {
  w.WriteCount(static_cast<int32_t>(v.size()));
  for (const Acl& a : v) Write(w, a);
}

void Write(JuteWriter& w, const std::vector<std::string>& v) {
  WriteStringList(w, v);
}

void Write(JuteWriter& w, const Stat& v) {
  w.WriteLong(v.czxid);
  w.WriteLong(v.mzxid);
  w.WriteLong(v.ctime);
  w.WriteLong(v.mtime);
  w.WriteInt(v.version);
  w.WriteInt(v.cversion);
  w.WriteInt(v.aversion);
  w.WriteLong(v.ephemeral_owner);
  w.WriteInt(v.data_length);
  w.WriteInt(v.num_children);
  w.WriteLong(v.pzxid);
}

void Write(JuteWriter& w, const ConnectRequest& v) {
  w.WriteInt(v.protocol_version);
  w.WriteLong(v.last_zxid_seen);
  w.WriteInt(v.timeout_ms);
  w.WriteLong(v.session_id);
  w.WriteBuffer(v.password);
  if (v.read_only.has_value()) w.WriteBool(*v.read_only);
}

void Write(JuteWriter& w, const ConnectResponse& v) {
  w.WriteInt(v.protocol_version);
  w.WriteInt(v.timeout_ms);
  w.WriteLong(v.session_id);
  w.WriteBuffer(v.password);
  if (v.read_only.has_value()) w.WriteBool(*v.read_only);
}

void Write(JuteWriter& w, const RequestHeader& v) {
  w.WriteInt(v.xid);
  w.WriteInt(v.type);
}

void Write(JuteWriter& w, const ReplyHeader& v) {
  w.WriteInt(v.xid);
  w.WriteLong(v.zxid);
  w.WriteInt(v.err);
}

void Write(JuteWriter& w, const CreateRequest& v, bool with_ttl) {
  w.WriteString(v.path);
  if (v.data_null) {
    w.WriteNullBuffer();
  } else {
    w.WriteBuffer(v.data);
  }
  Write(w, v.acl);
  w.WriteInt(v.flags);
  if (with_ttl) w.WriteLong(v.ttl);
}

void Write(JuteWriter& w, const PathVersionRequest& v) {
  w.WriteString(v.path);
  w.WriteInt(v.version);
}

void Write(JuteWriter& w, const PathWatchRequest& v) {
  w.WriteString(v.path);
  w.WriteBool(v.watch);
}

void Write(JuteWriter& w, const SetDataRequest& v) {
  w.WriteString(v.path);
  if (v.data_null) {
    w.WriteNullBuffer();
  } else {
    w.WriteBuffer(v.data);
  }
  w.WriteInt(v.version);
}

void Write(JuteWriter& w, const SetAclRequest& v) {
  w.WriteString(v.path);
  Write(w, v.acl);
  w.WriteInt(v.version);
}

void Write(JuteWriter& w, const WatcherEvent& v) {
  w.WriteInt(v.type);
  w.WriteInt(v.state);
  w.WriteString(v.path);
}

void Write(JuteWriter& w, const MultiHeader& v) {
  w.WriteInt(v.type);
  w.WriteBool(v.done);
  w.WriteInt(v.err);
}

void Write(JuteWriter& w, const AuthPacket& v) {
  w.WriteInt(v.type);
  w.WriteString(v.scheme);
  w.WriteBuffer(v.auth);
}

void Write(JuteWriter& w, const SetWatches& v, bool v2) {
  w.WriteLong(v.relative_zxid);
  Write(w, v.data);
  Write(w, v.exist);
  Write(w, v.child);
  if (v2) {
    Write(w, v.persistent);
    Write(w, v.persistent_recursive);
  }
}

std::optional<absl::string_view> NextFrame(absl::string_view buffer,
                                           int64_t max_frame_bytes,
                                           size_t* consumed, bool* bad) {
  *bad = false;
  *consumed = 0;
  if (buffer.size() < 4) return std::nullopt;
  JuteReader r(buffer.substr(0, 4));
  int32_t len = 0;
  r.ReadInt(&len);
  if (len < 0 || len > max_frame_bytes) {
    *bad = true;
    return std::nullopt;
  }
  if (buffer.size() - 4 < static_cast<size_t>(len)) return std::nullopt;
  *consumed = 4 + static_cast<size_t>(len);
  return buffer.substr(4, static_cast<size_t>(len));
}

}  // namespace rockeeper::jute
