// DeferScope: closures deferred while a scope is open on a thread run when
// it closes, on that thread.
//
// The ZooKeeper front end defers a connection's socket write this way, so
// the replies completed by one batch of work (a WorkQueue batch, one epoll
// round, one lone batch the log thread applied) leave with one send(). The
// commit pipeline opens one around a batch its log thread applies itself, so
// that a front end may finish that batch's requests there, once the apply
// and its locks are done, instead of waking another thread.
//
// Not copyable; scopes nest (the innermost open scope of the thread takes
// the deferred closures). Thread-compatible: a scope belongs to its thread.
#ifndef ROCKEEPER_REPLICATION_DEFER_SCOPE_H_
#define ROCKEEPER_REPLICATION_DEFER_SCOPE_H_

#include <functional>
#include <vector>

namespace rockeeper::replication {

class DeferScope {
 public:
  DeferScope();
  ~DeferScope();  // runs the deferred closures in order (and theirs)
  DeferScope(const DeferScope&) = delete;
  DeferScope& operator=(const DeferScope&) = delete;

  // Is a scope open on this thread?
  static bool Active();
  // Runs `fn` when the thread's innermost scope closes. REQUIRES: Active().
  static void Defer(std::function<void()> fn);
  // As Defer, but after every closure deferred with Defer (also those that
  // the later ones defer): for slow work, such as a log write, that must not
  // hold back the scope's quick replies. REQUIRES: Active().
  static void DeferLast(std::function<void()> fn);

 private:
  DeferScope* const outer_;
  std::vector<std::function<void()>> deferred_;
  std::vector<std::function<void()>> last_;
};

}  // namespace rockeeper::replication

#endif  // ROCKEEPER_REPLICATION_DEFER_SCOPE_H_
