// Where a new connection runs when `http_thread = "auto"` leaves cores to spare: on the Python
// thread's own loop (IoPool::driven(): no hand-off between threads per request), or on an I/O
// thread (the socket work beside the application, on another core).
//
// The I/O threads pay only when the Python thread is the bottleneck and the application, not the
// socket work, is what keeps it busy. Measured on the 2-core bench machine (docs/http.md, "Which
// thread serves the connections"): with the I/O threads, a saturated Python thread spends ~7 µs
// per bare hello and ~45-50 µs per Flask or FastAPI request; serving on the Python thread makes
// the hello 1.1-1.4× faster and the frameworks 0.83-0.86× as fast. So, per window of work:
//  - the Python thread busy less than half the time: the Python thread (it has room for the
//    socket work, and a request skips two thread hops: lower latency). Before the first window,
//    too.
//  - busy: the Python thread while its CPU per request is low, the I/O threads once it is high.
//    Serving on the Python thread adds the socket work (~5 µs) to that figure: the two thresholds
//    leave that gap between them, so the choice does not flip back and forth around one value.
// Only new connections follow the decision; a connection stays where it started.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>

namespace puff::http {

class Placement {
 public:
  struct Thresholds {
    double to_python_us = 15;  // below this Python-thread CPU per unit of work: the Python thread
    double to_io_us = 24;      // above it: the I/O threads
    double busy = 0.5;         // the Python thread's share of a window's time that counts as busy
    std::uint64_t min_units = 200;                     // a window needs this much work...
    std::chrono::milliseconds min_window{50};          // ...and this much time to count
  };
  using Clock = std::chrono::steady_clock;

  Placement() = default;
  explicit Placement(Thresholds t) : t_(t) {}

  /** Where the next connection goes: true = the Python thread. `units()` is the work handed to
   *  the Python thread so far (requests and WebSocket messages), `cpu()` that thread's CPU time
   *  so far that was the application's (its spin left out); both are read under the lock, cpu()
   *  only when a window closes. Any thread (several acceptors may ask at once). */
  template <class UnitsFn, class CpuFn>
  bool place(UnitsFn&& units_fn, Clock::time_point now, CpuFn&& cpu) {
    std::unique_lock<std::mutex> lock(m_, std::try_to_lock);
    bool python;
    if (!lock.owns_lock()) {
      python = python_.load(std::memory_order_relaxed);  // another acceptor is sampling
    } else {
      std::uint64_t units = units_fn();
      if (!have_base_) {
        base_cpu_ = cpu();
        base_units_ = units;
        base_at_ = now;
        have_base_ = true;
      } else if (units >= base_units_ && now - base_at_ >= t_.min_window &&
                 units - base_units_ >= std::max<std::uint64_t>(t_.min_units, 1)) {
        std::chrono::nanoseconds c = cpu();
        double used = std::chrono::duration<double, std::micro>(c - base_cpu_).count();
        double us = used / static_cast<double>(units - base_units_);
        double busy = used / std::chrono::duration<double, std::micro>(now - base_at_).count();
        estimate_us_.store(us, std::memory_order_relaxed);
        busy_.store(busy, std::memory_order_relaxed);
        bool next = python_.load(std::memory_order_relaxed);
        if (busy < t_.busy || us < t_.to_python_us) next = true;
        else if (us > t_.to_io_us) next = false;
        python_.store(next, std::memory_order_relaxed);
        base_cpu_ = c;
        base_units_ = units;
        base_at_ = now;
      }
      python = python_.load(std::memory_order_relaxed);
    }
    (python ? on_python_ : on_io_).fetch_add(1, std::memory_order_relaxed);
    return python;
  }

  /** The last window's Python-thread CPU per unit of work, in µs; negative before the first. */
  double estimate_us() const noexcept { return estimate_us_.load(std::memory_order_relaxed); }
  /** The last window's share of time the Python thread was running; negative before the first. */
  double busy() const noexcept { return busy_.load(std::memory_order_relaxed); }
  /** Connections placed on the Python thread / on I/O threads so far. */
  std::uint64_t placed_on_python() const noexcept { return on_python_.load(std::memory_order_relaxed); }
  std::uint64_t placed_on_io() const noexcept { return on_io_.load(std::memory_order_relaxed); }

 private:
  Thresholds t_;
  std::mutex m_;
  bool have_base_ = false;
  std::chrono::nanoseconds base_cpu_{0};
  std::uint64_t base_units_ = 0;
  Clock::time_point base_at_{};
  std::atomic<bool> python_{true};
  std::atomic<double> estimate_us_{-1.0}, busy_{-1.0};
  std::atomic<std::uint64_t> on_python_{0}, on_io_{0};
};

}  // namespace puff::http
