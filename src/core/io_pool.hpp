// The I/O threads: N threads, each running its own asio::io_context (h2o/uWebSockets style:
// a loop per thread, no strands, no shared-context locking).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <time.h>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace puff::core {

class WakeQueue;

class IoPool {
 public:
  /** Starts `threads` I/O threads (at least 1). Signals are blocked in them so that SIGINT and
   *  SIGTERM always reach the Python thread. */
  explicit IoPool(std::size_t threads);
  /** Stops the loops and joins the threads; handlers not yet run are destroyed, not run. */
  ~IoPool();
  IoPool(const IoPool&) = delete;
  IoPool& operator=(const IoPool&) = delete;

  std::size_t size() const noexcept { return contexts_.size(); }

  /** The context of thread `i`. Valid for the pool's lifetime. */
  boost::asio::io_context& context(std::size_t i) noexcept;

  /** Picks a thread round-robin. Any thread. */
  boost::asio::io_context& next() noexcept;

  /** Index of the I/O thread we are on, or -1 when called from another thread. */
  static int current_index() noexcept;

  /** Stops the loops (idempotent) and joins the threads. */
  void stop();

  /** A context that no I/O thread runs: the thread that owns it (the Python thread's hub) runs
   *  it inside wait_driven() and poll_driven(), so a socket on it needs no hand-off between
   *  threads (uvloop's model, for the connections that want it). next() and size() never
   *  include it. Valid for the pool's lifetime; posting to it is allowed from any thread. */
  boost::asio::io_context& driven() noexcept;
  /** Owner thread only. Runs driven()'s ready handlers while watching `q` for up to `spin`, then
   *  sleeps in driven() until `q` has items, `extra_fd` (if >= 0) is readable or stop(). True
   *  when it woke for `extra_fd` (or may have). A handler's exception is reported on stderr and
   *  swallowed. While nobody uses driven() (use_driven()), it is q.wait(spin, -1, extra_fd):
   *  a spin on memory, without the loop's syscalls. */
  bool wait_driven(WakeQueue& q, std::chrono::microseconds spin, int extra_fd) noexcept;
  /** Any thread: +1 / -1 for each user that keeps sockets on driven(). The first user wakes an
   *  owner asleep in wait_driven()'s queue-only wait, so that its loop starts running. */
  void use_driven(int delta) noexcept;
  /** use_driven(1) now and use_driven(-1) when the last copy of the result goes (a connection
   *  placed on driven() holds it for its lifetime). Any thread. */
  std::shared_ptr<void> hold_driven();
  /** CPU time the owner thread (the Python thread) has used so far; negative if unknown.
   *  Any thread (a syscall: call it now and then, not per request). */
  std::chrono::nanoseconds owner_cpu_time() const noexcept;
  /** How much of that the owner spent spinning in wait_driven() (an estimate: a wait's spin, or
   *  all of it when it ended within the spin). Any thread. */
  std::chrono::nanoseconds owner_spin_time() const noexcept;
  /** True while some user keeps sockets on driven() (use_driven()). Any thread. */
  bool driven_in_use() const noexcept;
  /** True on the thread that created the pool: the one that runs driven() (the Python thread). */
  bool on_driven_owner() const noexcept;
  /** Owner thread only. Runs driven()'s ready handlers (none while nobody uses driven(), unless
   *  `even_unused`: an outside loop found driven_fd() readable, which only a poll clears); how
   *  many ran. */
  std::size_t poll_driven(bool even_unused = false) noexcept;
  /** A descriptor that is readable while driven() has I/O or timers ready (its epoll set), for
   *  an outside loop that owns the thread (asyncio) to watch and then call poll_driven(). */
  int driven_fd() noexcept;
  /** While an outside loop runs the owner thread and polls driven() only when driven_fd() or
   *  `q`'s eventfd is readable, handlers posted to driven() (core::post_io) wake `q`: Asio's
   *  reactor, never blocked in by anyone then, would not make driven_fd() readable for them.
   *  Null when the outside loop stops. */
  void watch_driven(WakeQueue* q) noexcept;

 private:
  struct Loop;
  struct Driven;
  std::unique_ptr<Driven> driven_;
  clockid_t owner_clock_ = -1;  // the creating thread's CPU-time clock
  std::atomic<std::int64_t> spun_ns_{0};  // owner_spin_time()
  std::vector<std::unique_ptr<Loop>> contexts_;
  std::vector<std::thread> threads_;
  std::atomic<std::size_t> rr_{0};
  bool stopped_ = false;
};

/** Runs `fn` on some I/O thread of `pool`. Any thread. */
void post(IoPool& pool, std::function<void()> fn);

}  // namespace puff::core

namespace puff::core {

/** Runs `fn` on an I/O thread after `ms` milliseconds (0 = as soon as possible). Any thread.
 *  If the pool stops first, `fn` is destroyed without running. */
void run_after(IoPool& pool, std::uint64_t ms, std::function<void()> fn);

/** Same, on the I/O thread we are on (saves a hop). I/O threads only. */
void run_after_here(IoPool& pool, std::uint64_t ms, std::function<void()> fn);

/** Runs `fn` on I/O thread `index` (round-robin if out of range). Any thread. */
void post_to(IoPool& pool, std::size_t index, std::function<void()> fn);

}  // namespace puff::core
