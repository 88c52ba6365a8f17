#include "replication/forwarding.h"

#include <type_traits>

#include "rockeeper/record/v1/forward.pb.h"

namespace rockeeper::replication {
namespace {

namespace rec = record::v1;

void PutCreate(const engine::CreateRequest& r, rec::CreateRequestRecord* p) {
  p->set_path(r.path);
  p->set_data(r.data);
  for (const engine::Acl& a : r.acl) *p->add_acl() = a;
  p->set_flags(r.flags);
  p->set_ttl_ms(r.ttl_ms);
  p->set_data_null(r.data_null);
}
engine::CreateRequest GetCreate(const rec::CreateRequestRecord& p) {
  engine::CreateRequest r;
  r.path = p.path();
  r.data = p.data();
  r.acl.assign(p.acl().begin(), p.acl().end());
  r.flags = p.flags();
  r.ttl_ms = p.ttl_ms();
  r.data_null = p.data_null();
  return r;
}
engine::SetDataRequest GetSetData(const rec::SetDataRequestRecord& p) {
  engine::SetDataRequest r{p.path(), p.data(), p.version()};
  r.data_null = p.data_null();
  return r;
}
void PutDelete(const engine::DeleteRequest& r, rec::DeleteRequestRecord* p) {
  p->set_path(r.path);
  p->set_version(r.version);
}
void PutSetData(const engine::SetDataRequest& r, rec::SetDataRequestRecord* p) {
  p->set_path(r.path);
  p->set_data(r.data);
  p->set_version(r.version);
  p->set_data_null(r.data_null);
}
void PutCheck(const engine::CheckRequest& r, rec::CheckRequestRecord* p) {
  p->set_path(r.path);
  p->set_version(r.version);
}

}  // namespace

std::string EncodeForwardedWrite(const ForwardedWrite& w) {
  rec::ForwardedWrite p;
  p.set_origin_server(w.origin_server);
  p.set_request_id(w.request_id);
  p.set_session_id(w.ctx.session_id);
  p.set_cxid(w.ctx.cxid);
  for (const engine::AuthId& a : w.ctx.auth_ids) {
    rec::AuthIdRecord* r = p.add_auth_ids();
    r->set_scheme(a.scheme);
    r->set_id(a.id);
  }
  std::visit(
      [&p](const auto& r) {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, engine::CreateRequest>) {
          PutCreate(r, p.mutable_create());
        } else if constexpr (std::is_same_v<T, engine::DeleteRequest>) {
          PutDelete(r, p.mutable_delete_());
        } else if constexpr (std::is_same_v<T,
                                            engine::DeleteContainerRequest>) {
          p.mutable_delete_container()->set_path(r.path);
        } else if constexpr (std::is_same_v<T, engine::SetDataRequest>) {
          PutSetData(r, p.mutable_set_data());
        } else if constexpr (std::is_same_v<T, engine::SetAclRequest>) {
          rec::SetAclRequestRecord* s = p.mutable_set_acl();
          s->set_path(r.path);
          for (const engine::Acl& a : r.acl) *s->add_acl() = a;
          s->set_version(r.version);
        } else if constexpr (std::is_same_v<T, engine::CheckRequest>) {
          PutCheck(r, p.mutable_check());
        } else if constexpr (std::is_same_v<T, engine::MultiRequest>) {
          rec::MultiRequestRecord* m = p.mutable_multi();
          for (const engine::MultiOpRequest& op : r.ops) {
            rec::MultiOpRequestRecord* o = m->add_ops();
            std::visit(
                [o](const auto& x) {
                  using U = std::decay_t<decltype(x)>;
                  if constexpr (std::is_same_v<U, engine::CreateRequest>) {
                    PutCreate(x, o->mutable_create());
                  } else if constexpr (std::is_same_v<U,
                                                      engine::DeleteRequest>) {
                    PutDelete(x, o->mutable_delete_());
                  } else if constexpr (std::is_same_v<U,
                                                      engine::SetDataRequest>) {
                    PutSetData(x, o->mutable_set_data());
                  } else {
                    PutCheck(x, o->mutable_check());
                  }
                },
                op);
          }
        } else if constexpr (std::is_same_v<T, engine::CreateSessionRequest>) {
          rec::CreateSessionRequestRecord* s = p.mutable_create_session();
          s->set_timeout_ms(r.timeout_ms);
          s->set_password(r.password);
        } else {
          p.mutable_close_session();
        }
      },
      w.request);
  return p.SerializeAsString();
}

absl::StatusOr<ForwardedWrite> DecodeForwardedWrite(std::string_view bytes) {
  rec::ForwardedWrite p;
  if (bytes.size() > (64u << 20) ||
      !p.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError("forwarded write does not parse");
  }
  ForwardedWrite w;
  w.origin_server = p.origin_server();
  w.request_id = p.request_id();
  w.ctx.session_id = p.session_id();
  w.ctx.cxid = p.cxid();
  for (const rec::AuthIdRecord& a : p.auth_ids()) {
    w.ctx.auth_ids.push_back(engine::AuthId{a.scheme(), a.id()});
  }
  switch (p.request_case()) {
    case rec::ForwardedWrite::kCreate:
      w.request = GetCreate(p.create());
      break;
    case rec::ForwardedWrite::kDelete:
      w.request =
          engine::DeleteRequest{p.delete_().path(), p.delete_().version()};
      break;
    case rec::ForwardedWrite::kDeleteContainer:
      w.request = engine::DeleteContainerRequest{p.delete_container().path()};
      break;
    case rec::ForwardedWrite::kSetData:
      w.request = GetSetData(p.set_data());
      break;
    case rec::ForwardedWrite::kSetAcl: {
      engine::SetAclRequest r;
      r.path = p.set_acl().path();
      r.acl.assign(p.set_acl().acl().begin(), p.set_acl().acl().end());
      r.version = p.set_acl().version();
      w.request = std::move(r);
      break;
    }
    case rec::ForwardedWrite::kCheck:
      w.request = engine::CheckRequest{p.check().path(), p.check().version()};
      break;
    case rec::ForwardedWrite::kMulti: {
      if (static_cast<size_t>(p.multi().ops_size()) > kMaxForwardedMultiOps) {
        return absl::InvalidArgumentError("forwarded multi has too many ops");
      }
      engine::MultiRequest m;
      for (const rec::MultiOpRequestRecord& o : p.multi().ops()) {
        switch (o.op_case()) {
          case rec::MultiOpRequestRecord::kCreate:
            m.ops.push_back(GetCreate(o.create()));
            break;
          case rec::MultiOpRequestRecord::kDelete:
            m.ops.push_back(engine::DeleteRequest{o.delete_().path(),
                                                  o.delete_().version()});
            break;
          case rec::MultiOpRequestRecord::kSetData:
            m.ops.push_back(GetSetData(o.set_data()));
            break;
          case rec::MultiOpRequestRecord::kCheck:
            m.ops.push_back(
                engine::CheckRequest{o.check().path(), o.check().version()});
            break;
          default:
            return absl::InvalidArgumentError("forwarded multi op is empty");
        }
      }
      w.request = std::move(m);
      break;
    }
    case rec::ForwardedWrite::kCreateSession:
      w.request = engine::CreateSessionRequest{p.create_session().timeout_ms(),
                                               p.create_session().password()};
      break;
    case rec::ForwardedWrite::kCloseSession:
      w.request = engine::CloseSessionRequest{};
      break;
    default:
      return absl::InvalidArgumentError("forwarded write carries no request");
  }
  return w;
}

engine::Txn MakeErrorTxn(const ForwardedWrite& w, const engine::PrepOutcome& o,
                         int64_t zxid, int64_t time_ms) {
  engine::Txn t = MakeErrorTxn(w.ctx, w.request, o, zxid, time_ms);
  t.mutable_header()->set_origin_server(w.origin_server);
  t.mutable_header()->set_origin_request_id(w.request_id);
  return t;
}

engine::Txn MakeErrorTxn(const engine::RequestContext& ctx,
                         const engine::WriteRequest& request,
                         const engine::PrepOutcome& o, int64_t zxid,
                         int64_t time_ms) {
  engine::Txn t;
  rec::TxnHeader* h = t.mutable_header();
  h->set_session_id(ctx.session_id);
  h->set_cxid(ctx.cxid);
  h->set_zxid(zxid);
  h->set_time_ms(time_ms);
  if (std::holds_alternative<engine::MultiRequest>(request) &&
      !o.multi_errors.empty()) {
    h->set_type(rec::TXN_MULTI);
    for (engine::ZkError e : o.multi_errors) {
      rec::MultiOp* op = t.mutable_multi()->add_ops();
      op->set_type(rec::TXN_ERROR);
      op->mutable_error()->set_err(static_cast<int32_t>(e));
    }
  } else {
    h->set_type(rec::TXN_ERROR);
    t.mutable_error()->set_err(static_cast<int32_t>(o.err));
  }
  return t;
}

engine::PrepOutcome OutcomeOfTxn(const engine::Txn& txn) {
  engine::PrepOutcome o;
  if (txn.has_error()) {
    o.err = static_cast<engine::ZkError>(txn.error().err());
    return o;
  }
  if (txn.has_multi() && txn.multi().ops_size() > 0) {
    bool all_errors = true;
    for (const rec::MultiOp& op : txn.multi().ops()) {
      all_errors = all_errors && op.has_error();
    }
    if (all_errors) {
      for (const rec::MultiOp& op : txn.multi().ops()) {
        const auto e = static_cast<engine::ZkError>(op.error().err());
        o.multi_errors.push_back(e);
        if (o.err == engine::ZkError::kOk && e != engine::ZkError::kOk &&
            e != engine::ZkError::kRuntimeInconsistency) {
          o.err = e;
        }
      }
      return o;
    }
  }
  o.txn = txn;
  return o;
}

}  // namespace rockeeper::replication
