#include "core/wake_queue.hpp"

#include <cerrno>
#include <cstdint>
#include <poll.h>
#include <stdexcept>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>

namespace puff::core {

WakeQueue::WakeQueue() {
  efd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd_ < 0) throw std::runtime_error("eventfd failed");
}

WakeQueue::~WakeQueue() {
  if (efd_ >= 0) ::close(efd_);
}

void WakeQueue::push(WakeNode* node) noexcept {
  WakeNode* old = head_.load(std::memory_order_relaxed);
  do {
    node->next = old;
  } while (!head_.compare_exchange_weak(old, node, std::memory_order_release, std::memory_order_relaxed));
  if (old == nullptr) wake();
}

void WakeQueue::push_quiet(WakeNode* node) noexcept {
  WakeNode* old = head_.load(std::memory_order_relaxed);
  do {
    node->next = old;
  } while (!head_.compare_exchange_weak(old, node, std::memory_order_release, std::memory_order_relaxed));
}

WakeNode* WakeQueue::pop_all() noexcept {
  WakeNode* list = head_.exchange(nullptr, std::memory_order_acquire);
  // The stack is newest-first; reverse it so items are handled in arrival order.
  WakeNode* fifo = nullptr;
  while (list) {
    WakeNode* next = list->next;
    list->next = fifo;
    fifo = list;
    list = next;
  }
  return fifo;
}

void WakeQueue::wake() noexcept {
  uint64_t one = 1;
  ssize_t r;
  do {
    r = ::write(efd_, &one, sizeof one);
  } while (r < 0 && errno == EINTR);
  // After the write: whenever the eventfd is readable, written_ is (or is about to be) set, so
  // clear_wakeup() never leaves it readable for good.
  written_.store(true, std::memory_order_release);
}

void WakeQueue::clear_wakeup() noexcept {
  if (!written_.exchange(false, std::memory_order_acq_rel)) return;
  uint64_t v;
  ssize_t r;
  do {
    r = ::read(efd_, &v, sizeof v);
  } while (r < 0 && errno == EINTR);
}

bool WakeQueue::wait(std::chrono::microseconds spin, int timeout_ms, int extra_fd) noexcept {
  if (spin.count() > 0) {
    auto until = std::chrono::steady_clock::now() + spin;
    unsigned n = 0;
    while (!has_items()) {
      if ((++n & 63) == 0 && std::chrono::steady_clock::now() >= until) break;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (has_items()) return true;
  }
  pollfd fds[2] = {{efd_, POLLIN, 0}, {extra_fd, POLLIN, 0}};
  int r = ::poll(fds, extra_fd >= 0 ? 2 : 1, timeout_ms);
  if (r < 0) return true;  // EINTR: let the caller look at signals
  return r > 0;
}

}  // namespace puff::core
