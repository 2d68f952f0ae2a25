#include "core/io_pool.hpp"

#include "core/post_batch.hpp"
#include "core/wake_queue.hpp"

#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fcntl.h>
#include <unistd.h>
#include <pthread.h>
#include <string>
#include <type_traits>

namespace puff::core {

namespace asio = boost::asio;

struct IoPool::Loop {
  asio::io_context ctx{1};  // concurrency hint 1: only its own thread runs it
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(ctx);
};

/** The driven context and what wait_driven() watches from inside it: the wake queue's eventfd
 *  and the caller's extra fd, each on a dup() (the descriptors close their own copies). */
struct IoPool::Driven {
  // Declared before `loop`, so that they outlive it: handlers destroyed with the loop may still
  // call use_driven() (a connection's hold on driven()).
  std::atomic<int> users{0};
  std::atomic<WakeQueue*> sleeping_on{nullptr};  // the queue the owner sleeps on while users == 0
  Loop loop;
  struct Watch {
    std::unique_ptr<asio::posix::stream_descriptor> sd;
    int fd = -1;     // the fd watched (the caller's number, not the dup)
    bool armed = false;
  };
  Watch queue, extra;
  bool woken = false;
  bool extra_ready = false;
  std::thread::id owner = std::this_thread::get_id();

  /** Arms `w` on `fd` (re-created when the fd changed); its wait sets `woken`. */
  void arm(Watch& w, int fd) {
    if (w.fd != fd || !w.sd) {
      w.sd.reset();
      w.armed = false;
      w.fd = -1;
      int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
      if (dup < 0) return;
      w.sd = std::make_unique<asio::posix::stream_descriptor>(loop.ctx);
      boost::system::error_code ec;
      w.sd->assign(dup, ec);
      if (ec) {
        ::close(dup);
        w.sd.reset();
        return;
      }
      w.fd = fd;
    }
    if (w.armed) return;
    w.armed = true;
    w.sd->async_wait(asio::posix::stream_descriptor::wait_read, [this, &w](const boost::system::error_code&) {
      w.armed = false;
      woken = true;
      if (&w == &extra) extra_ready = true;
    });
  }
};

namespace {
thread_local int t_index = -1;
// IoPool::watch_driven(): the watched loop and the queue to wake for posts to it.
std::atomic<asio::io_context*> g_watched{nullptr};
std::atomic<WakeQueue*> g_watcher{nullptr};
}  // namespace

IoPool::IoPool(std::size_t threads) : driven_(std::make_unique<Driven>()) {
  if (threads == 0) threads = 1;
  if (pthread_getcpuclockid(pthread_self(), &owner_clock_) != 0) owner_clock_ = -1;
  set_own_loop(&driven_->loop.ctx);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  for (std::size_t i = 0; i < threads; ++i) contexts_.push_back(std::make_unique<Loop>());
  for (std::size_t i = 0; i < threads; ++i) {
    threads_.emplace_back([this, i] {
      t_index = static_cast<int>(i);
      std::string name = "puff-io-" + std::to_string(i);  // shown by top -H, perf, gdb
      pthread_setname_np(pthread_self(), name.c_str());
      contexts_[i]->ctx.run();
    });
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

IoPool::~IoPool() { stop(); }

void IoPool::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (auto& l : contexts_) {
    l->guard.reset();
    l->ctx.stop();
  }
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  driven_->loop.guard.reset();
  driven_->loop.ctx.stop();
  if (on_driven_owner()) set_own_loop(nullptr);
  if (g_watched.load() == &driven_->loop.ctx) watch_driven(nullptr);
}

asio::io_context& IoPool::driven() noexcept { return driven_->loop.ctx; }

namespace {

// Asio keeps its epoll descriptor private. An explicit instantiation may name private members,
// which gives a pointer to it without touching Asio's headers; a rename in Asio fails to
// compile here rather than misbehave.
using Reactor = asio::detail::epoll_reactor;
static_assert(std::is_same_v<asio::detail::reactor, Reactor>, "Puff expects Asio's epoll reactor");
int Reactor::*epoll_fd_member();
template <int Reactor::*M>
struct EpollFdAccess {
  friend int Reactor::*epoll_fd_member() { return M; }
};
template struct EpollFdAccess<&Reactor::epoll_fd_>;

}  // namespace

void IoPool::watch_driven(WakeQueue* q) noexcept {
  g_watcher.store(nullptr, std::memory_order_release);
  g_watched.store(q ? &driven_->loop.ctx : nullptr, std::memory_order_release);
  g_watcher.store(q, std::memory_order_release);
}

int IoPool::driven_fd() noexcept {
  try {
    auto& reactor = asio::use_service<Reactor>(driven_->loop.ctx);
    reactor.init_task();  // so that poll() also polls the reactor before any socket exists
    // The reactor signals its interrupter when it starts: consume that, or the descriptor is
    // readable until the first poll (an outside loop watching it would spin).
    if (on_driven_owner()) driven_->loop.ctx.poll();
    return reactor.*epoll_fd_member();
  } catch (const std::exception&) {
    return -1;
  }
}

std::size_t IoPool::poll_driven(bool even_unused) noexcept {
  if (!even_unused && driven_->users.load(std::memory_order_relaxed) == 0) return 0;
  try {
    return driven_->loop.ctx.poll();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "puff: a handler on the hub's I/O loop failed: %s\n", e.what());
    return 1;
  }
}

void IoPool::use_driven(int delta) noexcept {
  int before = driven_->users.fetch_add(delta, std::memory_order_seq_cst);
  // A connection put on driven() from another thread while the owner sleeps on its queue alone
  // would never start: wake the owner, which then sleeps in the loop instead.
  if (before == 0 && delta > 0)
    if (WakeQueue* q = driven_->sleeping_on.load(std::memory_order_seq_cst)) q->wake();
}

bool IoPool::driven_in_use() const noexcept { return driven_->users.load(std::memory_order_relaxed) > 0; }

std::chrono::nanoseconds IoPool::owner_cpu_time() const noexcept {
  timespec ts{};
  if (owner_clock_ == -1 || ::clock_gettime(owner_clock_, &ts) != 0) return std::chrono::nanoseconds(-1);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

std::chrono::nanoseconds IoPool::owner_spin_time() const noexcept {
  return std::chrono::nanoseconds(spun_ns_.load(std::memory_order_relaxed));
}

std::shared_ptr<void> IoPool::hold_driven() {
  use_driven(1);
  // Through Driven itself, not this->driven_: a hold may go while the loop is destroyed, when
  // driven_ may already read null; `users` outlives `loop` (declared before it).
  Driven* d = driven_.get();
  return std::shared_ptr<void>(nullptr, [d](void*) { d->users.fetch_sub(1, std::memory_order_seq_cst); });
}

bool IoPool::on_driven_owner() const noexcept { return std::this_thread::get_id() == driven_->owner; }

bool IoPool::wait_driven(WakeQueue& q, std::chrono::microseconds spin, int extra_fd) noexcept {
  // The spin's share of this wait (all of it if it ended within the spin): CPU that is not the
  // application's, for owner_spin_time().
  struct SpinClock {
    std::atomic<std::int64_t>& total;
    std::chrono::microseconds spin;
    std::chrono::steady_clock::time_point t0 = spin.count() > 0 ? std::chrono::steady_clock::now()
                                                                : std::chrono::steady_clock::time_point{};
    ~SpinClock() {
      if (spin.count() <= 0) return;
      auto spent = std::min<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0, spin);
      total.fetch_add(spent.count(), std::memory_order_relaxed);
    }
  } clock{spun_ns_, spin};
  Driven& d = *driven_;
  auto& ctx = d.loop.ctx;
  d.sleeping_on.store(&q, std::memory_order_seq_cst);  // before reading users: see use_driven()
  if (d.users.load(std::memory_order_seq_cst) == 0) {
    q.wait(spin, -1, extra_fd);
    d.sleeping_on.store(nullptr, std::memory_order_relaxed);
    return extra_fd >= 0;
  }
  d.sleeping_on.store(nullptr, std::memory_order_relaxed);
  d.extra_ready = false;
  try {
    // Spin: run what is ready (a send, a result that just arrived) and watch the queue.
    auto until = std::chrono::steady_clock::now() + spin;
    do {
      if (q.has_items()) return false;
      ctx.poll();
      if (q.has_items()) return false;
    } while (std::chrono::steady_clock::now() < until);
    // Sleep in the loop itself, with the queue's eventfd and the extra fd among its sockets.
    d.woken = false;
    d.arm(d.queue, q.fd());
    if (extra_fd >= 0) d.arm(d.extra, extra_fd);
    while (!d.woken && !q.has_items() && !ctx.stopped()) ctx.run_one();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "puff: a handler on the hub's I/O loop failed: %s\n", e.what());
  }
  return d.extra_ready;
}

asio::io_context& IoPool::context(std::size_t i) noexcept { return contexts_[i]->ctx; }

asio::io_context& IoPool::next() noexcept {
  std::size_t i = rr_.fetch_add(1, std::memory_order_relaxed) % contexts_.size();
  return contexts_[i]->ctx;
}

int IoPool::current_index() noexcept { return t_index; }

void post(IoPool& pool, std::function<void()> fn) { asio::post(pool.next(), std::move(fn)); }

}  // namespace puff::core

#include <boost/asio/steady_timer.hpp>

namespace puff::core {

namespace {

void arm(asio::io_context& ctx, std::uint64_t ms, std::function<void()> fn) {
  if (ms == 0) {
    asio::post(ctx, std::move(fn));
    return;
  }
  auto timer = std::make_shared<asio::steady_timer>(ctx, std::chrono::milliseconds(ms));
  timer->async_wait([timer, fn = std::move(fn)](const boost::system::error_code&) mutable { fn(); });
}

}  // namespace

void run_after(IoPool& pool, std::uint64_t ms, std::function<void()> fn) { arm(pool.next(), ms, std::move(fn)); }

void run_after_here(IoPool& pool, std::uint64_t ms, std::function<void()> fn) {
  int i = IoPool::current_index();
  arm(i >= 0 ? pool.context(static_cast<std::size_t>(i)) : pool.next(), ms, std::move(fn));
}

void post_to(IoPool& pool, std::size_t index, std::function<void()> fn) {
  asio::post(index < pool.size() ? pool.context(index) : pool.next(), std::move(fn));
}

}  // namespace puff::core

#include "core/post_batch.hpp"

namespace puff::core {

namespace {

struct PostBatch {
  bool open = false;
  /** One group per executor posted to this round. Groups outlive the round with their lists
   *  emptied, so a list does not grow again from nothing every round (64 responses a round
   *  regrew it through six allocations, the larger ones consolidating malloc's fast bins). */
  std::vector<std::pair<asio::any_io_executor, std::vector<std::function<void()>>>> groups;
};

thread_local PostBatch t_batch;
thread_local asio::io_context* t_own_loop = nullptr;

}  // namespace

void post_io(const asio::any_io_executor& ex, std::function<void()> fn) {
  asio::post(ex, std::move(fn));
  WakeQueue* q = g_watcher.load(std::memory_order_acquire);
  if (!q) return;
  asio::io_context* watched = g_watched.load(std::memory_order_acquire);
  if (watched && ex == asio::any_io_executor(watched->get_executor()) &&
      !watched->get_executor().running_in_this_thread())
    q->wake();
}

void post_batched(const asio::any_io_executor& ex, std::function<void()> fn) {
  PostBatch& b = t_batch;
  if (!b.open) {
    post_io(ex, std::move(fn));
    return;
  }
  decltype(b.groups)::value_type* spare = nullptr;
  for (auto& g : b.groups) {
    if (g.first == ex) {
      g.second.push_back(std::move(fn));
      return;
    }
    if (!spare && g.second.empty()) spare = &g;
  }
  if (!spare) spare = &b.groups.emplace_back();
  spare->first = ex;
  spare->second.push_back(std::move(fn));
}

void open_post_batch() noexcept { t_batch.open = true; }

void set_own_loop(asio::io_context* ctx) noexcept { t_own_loop = ctx; }

namespace {

template <class F>
void run_reporting(F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "puff: a handler on the hub's I/O loop failed: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "puff: a handler on the hub's I/O loop failed\n");
  }
}

}  // namespace

void flush_post_batch() {
  PostBatch& b = t_batch;
  b.open = false;
  // A handler run below may post again (a batch of its own): work on a local list.
  std::vector<std::pair<asio::any_io_executor, std::vector<std::function<void()>>>> groups;
  groups.swap(b.groups);
  for (auto& g : groups) {
    if (g.second.empty()) continue;  // kept from an earlier round
    if (t_own_loop && g.first == asio::any_io_executor(t_own_loop->get_executor()) &&
        !t_own_loop->get_executor().running_in_this_thread()) {
      for (auto& f : g.second) run_reporting(f);
      g.second.clear();
      // What they finished at once (a write the socket took whole) completes in the loop.
      run_reporting([] { t_own_loop->poll(); });
      continue;
    }
    if (g.second.size() == 1) {
      post_io(g.first, std::move(g.second.front()));
    } else {
      post_io(g.first, [fns = std::move(g.second)]() mutable {
        for (auto& f : fns) f();
      });
    }
    g.second.clear();  // valid after the move: empty, ready for the next round
  }
  if (b.groups.empty()) b.groups.swap(groups);  // keep the groups and their capacity
}

}  // namespace puff::core
