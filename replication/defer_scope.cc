#include "replication/defer_scope.h"

#include <utility>

namespace rockeeper::replication {
namespace {

thread_local DeferScope* t_scope = nullptr;

}  // namespace

DeferScope::DeferScope() : outer_(t_scope) { t_scope = this; }

DeferScope::~DeferScope() {
  // Deferred closures may defer more: run until none is left.
  size_t next = 0;
  size_t next_last = 0;
  for (;;) {
    if (next < deferred_.size()) {
      std::function<void()> fn = std::move(deferred_[next++]);
      fn();
    } else if (next_last < last_.size()) {
      std::function<void()> fn = std::move(last_[next_last++]);
      fn();
    } else {
      break;
    }
  }
  t_scope = outer_;
}

bool DeferScope::Active() { return t_scope != nullptr; }

void DeferScope::Defer(std::function<void()> fn) {
  t_scope->deferred_.push_back(std::move(fn));
}

void DeferScope::DeferLast(std::function<void()> fn) {
  t_scope->last_.push_back(std::move(fn));
}

}  // namespace rockeeper::replication
