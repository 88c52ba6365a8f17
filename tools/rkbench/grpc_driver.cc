// The gRPC driver: rockeeper.v1 over the async CompletionQueue API with the
// generic stub (requests serialized once into a ByteBuffer, responses read
// for their header only). One completion queue per thread and one channel
// per thread and server; a thread's sessions on one server share that
// channel (sessions are identified by the rk-session-id metadata, not by the
// connection). Session i runs on thread i % threads against server
// i % servers.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <climits>
#include <deque>
#include <optional>
#include <thread>

#include "rockeeper/v1/rockeeper.grpc.pb.h"
#include "rockeeper/v1/rockeeper.pb.h"
#include "tools/rkbench/driver.h"

namespace rockeeper::rkbench {
namespace {

namespace pb = ::rockeeper::v1;

struct GrpcSession;

struct Call {
  GrpcSession* session = nullptr;
  std::optional<grpc::ClientContext> ctx;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
  grpc::ByteBuffer response;
  grpc::Status status;
  int64_t start_ns = 0;
  uint64_t tag = 0;
  bool ping = false;
};

struct GrpcSession {
  int64_t id = 0;
  std::string id_text;
  size_t channel = 0;  // index into channels_
  size_t server = 0;   // index into config_.servers
  SessionState state;
  std::vector<std::unique_ptr<Call>> calls;
  std::vector<Call*> free;
  int outstanding = 0;  // ops, pings excluded
  bool ping_outstanding = false;
  int64_t last_send_ns = 0;
  bool done = false;
};

const char* MethodOf(Kind kind) {
  switch (kind) {
    case Kind::kCreate:
      return "/rockeeper.v1.Rockeeper/Create";
    case Kind::kDelete:
      return "/rockeeper.v1.Rockeeper/Delete";
    case Kind::kSetData:
      return "/rockeeper.v1.Rockeeper/SetData";
    case Kind::kGetData:
      return "/rockeeper.v1.Rockeeper/GetData";
    case Kind::kExists:
      return "/rockeeper.v1.Rockeeper/Exists";
    case Kind::kGetChildren:
      return "/rockeeper.v1.Rockeeper/GetChildren";
    case Kind::kMulti:
      return "/rockeeper.v1.Rockeeper/Multi";
    case Kind::kPing:
      return "/rockeeper.v1.Rockeeper/Heartbeat";
  }
  return "";
}

pb::CreateMode ModeOf(int flags) {
  switch (flags & (kEphemeral | kSequential)) {
    case kEphemeral:
      return pb::EPHEMERAL;
    case kSequential:
      return pb::PERSISTENT_SEQUENTIAL;
    case kEphemeral | kSequential:
      return pb::EPHEMERAL_SEQUENTIAL;
    default:
      return pb::PERSISTENT;
  }
}

// Per-thread request messages, reused.
struct Encoder {
  pb::CreateRequest create;
  pb::DeleteRequest del;
  pb::SetDataRequest set;
  pb::GetDataRequest get;
  pb::ExistsRequest exists;
  pb::GetChildrenRequest children;
  pb::MultiRequest multi;
  pb::HeartbeatRequest heartbeat;
  std::string bytes;

  void Serialize(const Op& op, const Workload& w) {
    bytes.clear();
    switch (op.kind) {
      case Kind::kCreate:
        create.set_path(op.path);
        if (op.with_data) {
          std::string_view v = w.Value(op.value_offset);
          create.set_data(v.data(), v.size());
        } else {
          create.clear_data();
        }
        create.set_mode(ModeOf(op.flags));
        create.SerializeToString(&bytes);
        break;
      case Kind::kDelete:
        del.set_path(op.path);
        del.SerializeToString(&bytes);
        break;
      case Kind::kSetData:
        set.set_path(op.path);
        set.set_data(w.Value(op.value_offset).data(),
                     w.Value(op.value_offset).size());
        set.SerializeToString(&bytes);
        break;
      case Kind::kGetData:
        get.set_path(op.path);
        get.SerializeToString(&bytes);
        break;
      case Kind::kExists:
        exists.set_path(op.path);
        exists.SerializeToString(&bytes);
        break;
      case Kind::kGetChildren:
        children.set_path(op.path);
        children.SerializeToString(&bytes);
        break;
      case Kind::kMulti:
        multi.Clear();
        for (int i = 0; i < op.num_subs; ++i) {
          const SubOp& sub = op.subs[static_cast<size_t>(i)];
          pb::MultiRequest::Op* m = multi.add_ops();
          if (sub.kind == Kind::kCreate) {
            pb::CreateRequest* c = m->mutable_create();
            c->set_path(sub.path);
            if (sub.with_data) {
              std::string_view v = w.Value(sub.value_offset);
              c->set_data(v.data(), v.size());
            }
            c->set_mode(ModeOf(sub.flags));
          } else {
            m->mutable_delete_()->set_path(sub.path);
          }
        }
        multi.SerializeToString(&bytes);
        break;
      case Kind::kPing:
        heartbeat.SerializeToString(&bytes);
        break;
    }
  }
};

class GrpcDriver final : public Driver {
 public:
  GrpcDriver(const DriverConfig& config, const Workload& workload)
      : config_(config), workload_(workload) {}

  absl::Status Connect() override {
    const size_t threads = static_cast<size_t>(Threads());
    const size_t servers = config_.servers.size();
    // channels_[t * servers + k]: thread t's connection to server k.
    for (size_t t = 0; t < threads; ++t) {
      for (size_t k = 0; k < servers; ++k) {
        grpc::ChannelArguments args;
        // A connection of its own per thread and server.
        args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
        args.SetInt("rkbench.channel", static_cast<int>(t * servers + k));
        channels_.push_back(grpc::CreateCustomChannel(
            config_.servers[k].text(), grpc::InsecureChannelCredentials(),
            args));
      }
    }
    sessions_.resize(static_cast<size_t>(config_.sessions));
    for (int i = 0; i < config_.sessions; ++i) {
      GrpcSession& s = sessions_[static_cast<size_t>(i)];
      workload_.InitSession(&s.state, i);
      s.server = static_cast<size_t>(i) % servers;
      s.channel = (static_cast<size_t>(i) % threads) * servers + s.server;
      const std::string target = config_.servers[s.server].text();
      auto stub = pb::Rockeeper::NewStub(channels_[s.channel]);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(10));
      pb::ConnectRequest req;
      req.set_timeout_ms(config_.session_timeout_ms);
      pb::ConnectResponse resp;
      grpc::Status st = stub->Connect(&ctx, req, &resp);
      if (!st.ok()) {
        return absl::UnavailableError("gRPC Connect to " + target + ": " +
                                      st.error_message());
      }
      if (resp.header().err() != 0) {
        return absl::UnavailableError("gRPC Connect: " +
                                      resp.header().err_name());
      }
      s.id = resp.session_id();
      // Heartbeat at a third of the negotiated timeout.
      ping_ns_ = std::min(
          ping_ns_,
          static_cast<int64_t>(std::max(resp.timeout_ms(), 3)) * 1'000'000 / 3);
      s.id_text = std::to_string(s.id);
      for (int k = 0; k <= config_.outstanding; ++k) {
        s.calls.push_back(std::make_unique<Call>());
        s.calls.back()->session = &s;
        s.free.push_back(s.calls.back().get());
      }
    }
    return absl::OkStatus();
  }

  PhaseResult Run(OpSource& source, const Limits& limits) override {
    int threads = Threads();
    std::vector<PhaseResult> results(static_cast<size_t>(threads));
    std::vector<std::thread> workers;
    int64_t start = NowNs();
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        RunThread(t, threads, source, limits, &results[static_cast<size_t>(t)]);
      });
    }
    for (auto& w : workers) w.join();
    PhaseResult total;
    for (const auto& r : results) total.Merge(r);
    total.elapsed_ns = NowNs() - start;
    return total;
  }

  void Close() override {
    for (size_t i = 0; i < sessions_.size(); ++i) {
      if (sessions_[i].id == 0) continue;  // never connected
      auto stub = pb::Rockeeper::NewStub(channels_[sessions_[i].channel]);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(5));
      ctx.AddMetadata("rk-session-id", sessions_[i].id_text);
      pb::CloseRequest req;
      pb::CloseResponse resp;
      (void)stub->Close(&ctx, req, &resp);
    }
  }

 private:
  int Threads() const {
    return std::max(1, std::min(config_.threads, config_.sessions));
  }

  // `stubs`: the thread's stub per server.
  void Start(GrpcSession* s, const Op& op, bool ping,
             std::vector<grpc::GenericStub>* stubs, grpc::CompletionQueue* cq,
             Encoder* enc, int64_t now) {
    Call* call = s->free.back();
    s->free.pop_back();
    enc->Serialize(op, workload_);
    grpc::Slice slice(enc->bytes);
    grpc::ByteBuffer request(&slice, 1);
    call->ctx.reset();
    call->ctx.emplace();
    call->ctx->AddMetadata("rk-session-id", s->id_text);
    call->response.Clear();
    call->start_ns = now;
    call->tag = op.tag;
    call->ping = ping;
    call->reader = (*stubs)[s->server].PrepareUnaryCall(
        &*call->ctx, MethodOf(op.kind), request, cq);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
    s->last_send_ns = now;
    if (ping) {
      s->ping_outstanding = true;
    } else {
      ++s->outstanding;
    }
  }

  void RunThread(int t, int threads, OpSource& source, const Limits& limits,
                 PhaseResult* result) {
    const size_t servers = config_.servers.size();
    std::vector<grpc::GenericStub> stubs;
    stubs.reserve(servers);
    for (size_t k = 0; k < servers; ++k) {
      stubs.emplace_back(channels_[static_cast<size_t>(t) * servers + k]);
    }
    grpc::CompletionQueue cq;
    Encoder enc;
    Op op;
    Op ping;
    ping.kind = Kind::kPing;
    std::vector<GrpcSession*> mine;
    for (size_t i = static_cast<size_t>(t); i < sessions_.size();
         i += static_cast<size_t>(threads)) {
      mine.push_back(&sessions_[i]);
      sessions_[i].done = false;
    }
    const int64_t ping_ns = ping_ns_;
    int in_flight = 0;
    bool cancelled = false;
    auto fill = [&](GrpcSession* s, int64_t now, bool stop) {
      while (!stop && !s->done && s->outstanding < config_.outstanding &&
             !s->free.empty()) {
        if (limits.budget != nullptr &&
            limits.budget->fetch_sub(1, std::memory_order_relaxed) <= 0) {
          s->done = true;
          break;
        }
        if (!source.Next(&s->state, &op)) {
          s->done = true;
          break;
        }
        Start(s, op, false, &stubs, &cq, &enc, now);
        ++in_flight;
      }
      if (!s->ping_outstanding && !s->free.empty() &&
          now - s->last_send_ns > ping_ns) {
        Start(s, ping, true, &stubs, &cq, &enc, now);
        ++in_flight;
      }
    };
    int64_t now = NowNs();
    for (GrpcSession* s : mine) fill(s, now, false);
    int64_t stop_at = 0;
    while (in_flight > 0) {
      now = NowNs();
      bool stop = limits.deadline_ns != 0 && now >= limits.deadline_ns;
      if (stop && stop_at == 0) stop_at = now;
      if (stop_at != 0 && !cancelled && now - stop_at > limits.drain_ns) {
        for (GrpcSession* s : mine) {
          for (auto& c : s->calls) {
            if (c->ctx.has_value()) c->ctx->TryCancel();
          }
        }
        cancelled = true;
      }
      void* tag;
      bool ok;
      auto r = cq.AsyncNext(
          &tag, &ok,
          std::chrono::system_clock::now() + std::chrono::milliseconds(50));
      if (r == grpc::CompletionQueue::TIMEOUT) {
        // Idle sessions still need their heartbeat.
        for (GrpcSession* s : mine) fill(s, NowNs(), stop);
        continue;
      }
      if (r != grpc::CompletionQueue::GOT_EVENT) break;
      now = NowNs();
      Call* call = static_cast<Call*>(tag);
      GrpcSession* s = call->session;
      --in_flight;
      int err = 0;
      if (!call->status.ok()) {
        err = kGrpcErrorBase + static_cast<int>(call->status.error_code());
      } else {
        // Every response has `ResponseHeader header = 1`: parse it alone.
        pb::HeartbeatResponse header_only;
        grpc::Status st = grpc::GenericDeserialize<grpc::ProtoBufferReader,
                                                   pb::HeartbeatResponse>(
            &call->response, &header_only);
        err = st.ok() ? header_only.header().err()
                      : kGrpcErrorBase + static_cast<int>(st.error_code());
      }
      call->reader.reset();
      s->free.push_back(call);
      if (call->ping) {
        s->ping_outstanding = false;
      } else {
        --s->outstanding;
        ++result->ops;
        completed_.fetch_add(1, std::memory_order_relaxed);
        if (err == limits.ok_code) err = 0;
        if (err != 0) ++result->errors[err];
        if (limits.record_latency) {
          result->latency.Record(static_cast<uint64_t>(now - call->start_ns));
        }
        source.Complete(&s->state, call->tag, err);
      }
      fill(s, now, stop);
    }
    cq.Shutdown();
    void* tag;
    bool ok;
    while (cq.Next(&tag, &ok)) {
    }
    for (GrpcSession* s : mine) {
      for (auto& c : s->calls) c->ctx.reset();
    }
  }

  DriverConfig config_;
  const Workload& workload_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  int64_t ping_ns_ = INT64_MAX;
  std::deque<GrpcSession> sessions_;  // stable addresses (Call::session)
};

}  // namespace

std::unique_ptr<Driver> MakeGrpcDriver(const DriverConfig& config,
                                       const Workload& workload) {
  return std::make_unique<GrpcDriver>(config, workload);
}

}  // namespace rockeeper::rkbench
