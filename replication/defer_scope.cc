#include "replication/defer_scope.h"

#include <utility>

namespace rockeeper::replication {
namespace {

thread_local DeferScope* t_scope = nullptr;

}  // namespace

DeferScope::DeferScope() : outer_(t_scope) { t_scope = this; }

DeferScope::~DeferScope() {
  // Deferred closures may defer more: run until none is left.
  for (size_t i = 0; i < deferred_.size(); ++i) {
    std::function<void()> fn = std::move(deferred_[i]);
    fn();
  }
  t_scope = outer_;
}

bool DeferScope::Active() { return t_scope != nullptr; }

void DeferScope::Defer(std::function<void()> fn) {
  t_scope->deferred_.push_back(std::move(fn));
}

}  // namespace rockeeper::replication
