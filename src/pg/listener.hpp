// LISTEN/NOTIFY: one dedicated connection per pool (not one of its pool_size connections) that
// LISTENs to every channel someone subscribed to, and fans notifications out to subscriptions.
//
// The connection is opened on the first subscribe. If it is lost (Postgres restarted, backend
// terminated) it is reopened — at once, then with a backoff of 50 ms .. 2 s while connecting
// fails — and every channel is LISTENed again. Notifications sent while it was down are lost:
// delivery is at most once (each Subscription counts these gaps in interruptions()).
//
// THREADS: Listener and Subscription methods may be called from any thread and never block on
// I/O. Callbacks (subscribe's `done`, wait's `wake`) run on an I/O thread, or inline in the call
// that made them due (never under a lock). The core::IoPool must outlive the Listener.
#pragma once

#include "pg/connection.hpp"

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace puff::core {
class IoPool;
}

namespace puff::pg {

struct Notification {
  std::string channel;
  std::string payload;
  int pid = 0;  // the notifying backend
};

class Listener;

/** One subscriber: a queue of the notifications for its channels. */
class Subscription : public std::enable_shared_from_this<Subscription> {
 public:
  /** Queued notifications beyond this drop the oldest (counted in dropped()). */
  static constexpr std::size_t kMaxQueued = 100000;

  Subscription(core::IoPool& io, std::weak_ptr<Listener> owner, std::vector<std::string> channels);
  /** `wake` runs once the queue is not empty, after `timeout_ms` (< 0: no timeout), when
   *  wake_all() is called or when the subscription closes — whichever comes first. It may run
   *  inline. Take the notification with pop(); several waiters may race for one. */
  void wait(std::int64_t timeout_ms, std::function<void()> wake);
  /** Runs every pending wake now (a waiter gave up). */
  void wake_all();
  std::optional<Notification> pop();
  /** Unsubscribes (UNLISTEN for channels nobody else listens to) and wakes waiters. Idempotent. */
  void close();

  bool closed() const;
  const std::vector<std::string>& channels() const noexcept { return channels_; }
  std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }
  /** Times the listening connection was lost since subscribing (notifications may be missing). */
  std::uint64_t interruptions() const noexcept { return interruptions_.load(std::memory_order_relaxed); }
  /** Timeout timers of wait() still pending on an I/O thread (a woken waiter's timer is cancelled,
   *  not left to expire: a subscriber that waits with a long timeout for each of many
   *  notifications would otherwise keep one timer per notification alive until it expired). */
  std::size_t pending_timeouts() const noexcept { return timers_.load(std::memory_order_relaxed); }

 private:
  friend class Listener;
  struct Waiter {
    std::uint64_t id;
    std::function<void()> wake;
    std::function<void()> cancel_timer;  // set when wait() armed a timeout
  };
  /** Removes every waiter: their wakes, and the cancels of their timers, to run unlocked. */
  void take_waiters_locked(std::vector<std::function<void()>>& out);
  /** Listener: queues `n` (under the listener's lock); returns the wakes to run after unlocking. */
  std::vector<std::function<void()>> push(const Notification& n);
  std::vector<std::function<void()>> shut();
  void timeout(std::uint64_t id);

  core::IoPool& io_;
  std::weak_ptr<Listener> owner_;
  const std::vector<std::string> channels_;
  mutable std::mutex m_;
  std::deque<Notification> queue_;
  std::vector<Waiter> waiters_;
  std::uint64_t next_id_ = 0;
  bool closed_ = false;
  std::atomic<std::uint64_t> dropped_{0};
  std::atomic<std::uint64_t> interruptions_{0};
  std::atomic<std::size_t> timers_{0};
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  using Done = std::function<void(std::shared_ptr<Subscription>, const ErrorInfo*)>;

  /** Throws std::invalid_argument on a malformed URL. Opens nothing until subscribe(). */
  static std::shared_ptr<Listener> make(core::IoPool& io, const PoolSettings& settings);
  Listener(core::IoPool& io, std::shared_ptr<const ConnInfo> info);
  ~Listener();

  /** LISTENs to `channels` and calls `done(subscription, nullptr)` once the server confirmed
   *  every LISTEN (a NOTIFY committed after that is delivered), or `done(nullptr, &error)` if
   *  connecting or a LISTEN failed. */
  void subscribe(std::vector<std::string> channels, Done done);
  /** Closes the connection and every subscription; pending subscribes fail with 08003. */
  void close();

  /** `LISTEN "name"` with the identifier quoted. */
  static std::string quote_ident(const std::string& name);

 private:
  friend class Subscription;
  struct PendingSub {
    std::shared_ptr<Subscription> sub;
    Done done;
  };
  void unsubscribe(Subscription* sub);
  void connect_locked(std::vector<std::function<void()>>& after);
  void on_ready(Connection& c);
  void on_down(Connection& c, const ErrorInfo& e, bool was_ready);
  void on_notify(std::string_view channel, std::string_view payload, int pid);
  /** Queues `verb channel` for each channel on `c`, in order with every other such command;
   *  `done` once all ran. Called with m_ held. */
  void send_listens(const std::shared_ptr<Connection>& c, const std::vector<std::string>& channels,
                    const std::string& verb, std::function<void(const ErrorInfo*)> done);
  /** Submits the outbox (on the connection's thread). */
  void flush_outbox();

  core::IoPool& io_;
  const std::shared_ptr<const ConnInfo> info_;
  std::mutex m_;
  std::shared_ptr<Connection> conn_;
  bool ready_ = false;
  bool closed_ = false;
  bool retry_armed_ = false;
  unsigned failures_ = 0;
  std::vector<std::weak_ptr<Subscription>> subs_;
  std::unordered_map<std::string, int> channels_;  // channel -> subscriptions listening to it
  std::vector<PendingSub> pending_;                // waiting for the connection
  struct Outgoing {
    std::shared_ptr<Connection> c;
    std::shared_ptr<detail::Request> req;
  };
  std::vector<Outgoing> outbox_;  // LISTEN / UNLISTEN commands in the order they were decided
  bool outbox_posted_ = false;    // a flush_outbox() is on its way
};

}  // namespace puff::pg
