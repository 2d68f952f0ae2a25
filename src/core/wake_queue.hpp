// Cross-thread hand-off to one consumer thread: an intrusive MPSC list plus an eventfd.
//
// Producers (any thread) push nodes with one CAS and no allocation. The consumer drains the
// whole list per wake-up (h2o's multithread queue idea: one wake-up, many messages). The
// eventfd is written only when a push finds the list empty, so a busy consumer sees no
// syscalls at all.
#pragma once

#include <atomic>
#include <chrono>

namespace puff::core {

/** A queued item. Owned by whoever pushed it until the consumer pops it. */
struct WakeNode {
  WakeNode* next = nullptr;
};

class WakeQueue {
 public:
  WakeQueue();
  ~WakeQueue();
  WakeQueue(const WakeQueue&) = delete;
  WakeQueue& operator=(const WakeQueue&) = delete;

  /** Any thread. Never blocks; writes the eventfd when the queue was empty. */
  void push(WakeNode* node) noexcept;

  /** Consumer thread only, while it is awake and will look at the queue before it sleeps (the
   *  hub running its own I/O loop): queues without the eventfd write. */
  void push_quiet(WakeNode* node) noexcept;

  /** Consumer thread only. Takes every queued node, oldest first (a singly linked list). */
  WakeNode* pop_all() noexcept;

  /** Consumer thread only. True when something is queued (a relaxed peek). */
  bool has_items() const noexcept { return head_.load(std::memory_order_acquire) != nullptr; }

  /** Consumer thread only. Blocks until an item is queued, `extra_fd` is readable or the timeout
   *  passes (negative = forever). Spins for `spin` first: waking a sleeping vCPU costs more than
   *  the spin on these machines. Returns false on timeout. EINTR returns true (caller re-checks). */
  bool wait(std::chrono::microseconds spin, int timeout_ms, int extra_fd = -1) noexcept;

  /** Any thread. Forces the consumer out of wait(). */
  void wake() noexcept;

  /** The eventfd, for registering with another loop (asyncio add_reader). */
  int fd() const noexcept { return efd_; }

  /** Consumer thread only. Consumes a pending wake-up; call before pop_all(). No syscall when
   *  nothing was written since the last call. */
  void clear_wakeup() noexcept;

 private:
  std::atomic<WakeNode*> head_{nullptr};
  std::atomic<bool> written_{false};  // set after each eventfd write, taken by clear_wakeup()
  int efd_ = -1;
};

}  // namespace puff::core
