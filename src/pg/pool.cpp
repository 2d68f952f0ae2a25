#include "pg/pool.hpp"

#include "core/io_pool.hpp"
#include "core/post_batch.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace puff::pg {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

/** Helper threads for libpq's blocking calls (PQconnectStartParams' DNS lookup, PQcancel).
 *  Started on demand, at most kThreads; stop() drops queued jobs and joins. */
class Runner {
 public:
  static constexpr std::size_t kThreads = 2;

  void post(std::function<void()> job) {
    std::lock_guard<std::mutex> lock(m_);
    if (stopped_) return;
    jobs_.push_back(std::move(job));
    if (idle_ == 0 && threads_.size() < kThreads) {
      threads_.emplace_back([this] { loop(); });
    } else {
      cv_.notify_one();
    }
  }

  void stop() {
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(m_);
      if (stopped_) return;
      stopped_ = true;
      jobs_.clear();
      threads.swap(threads_);
    }
    cv_.notify_all();
    for (auto& t : threads)
      if (t.joinable()) t.join();
  }

  ~Runner() { stop(); }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(m_);
    for (;;) {
      ++idle_;
      cv_.wait(lock, [this] { return stopped_ || !jobs_.empty(); });
      --idle_;
      if (stopped_) return;
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      job();
      job = nullptr;
      lock.lock();
    }
  }

  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  std::size_t idle_ = 0;
  bool stopped_ = false;
};

/** Work decided under the pool lock, run after it is released. */
struct Deferred {
  std::vector<std::function<void()>> fns;
  void add(std::function<void()> f) { fns.push_back(std::move(f)); }
  void run() {
    for (auto& f : fns) f();
    fns.clear();
  }
};

void post_to(Connection& c, std::function<void()> fn) { core::post_io(c.context().get_executor(), std::move(fn)); }

}  // namespace

namespace detail {

struct AcquireState {
  std::function<void(Lease&&)> cb;
  bool waiting = false;  // in the pool's queue (pool mutex)
  bool may_use_driven = true;  // as Request::may_use_driven
};

struct LeaseState {
  std::weak_ptr<PoolCore> core;
  std::shared_ptr<Connection> conn;
  std::shared_ptr<const ErrorInfo> error;
  int pid = 0;
  std::atomic<bool> released{false};
};

struct PoolCore : std::enable_shared_from_this<PoolCore> {
  struct Slot {
    std::shared_ptr<Connection> conn;
    bool ready = false;
    bool pinned = false;
    bool driven = false;  // lives on io.driven(): only for requests from its owner thread
  };

  PoolCore(core::IoPool& io_pool, PoolSettings s, std::shared_ptr<const ConnInfo> ci)
      : io(io_pool), settings(without_lone_driven(std::move(s))), info(std::move(ci)) {}

  /** Callers on other threads never use the hub's connection: with no other one they would wait. */
  static PoolSettings without_lone_driven(PoolSettings s) {
    if (s.pool_size < 2) s.first_on_driven = false;
    return s;
  }
  ~PoolCore() {
    if (uses_driven) io.use_driven(-1);
  }

  core::IoPool& io;
  const PoolSettings settings;
  const std::shared_ptr<const ConnInfo> info;
  bool uses_driven = false;  // has put a connection on io.driven() (the hub then polls it)
  std::shared_ptr<Runner> runner = std::make_shared<Runner>();

  mutable std::mutex m;
  std::vector<Slot> slots;
  std::deque<std::shared_ptr<Request>> waiting;
  std::deque<std::shared_ptr<AcquireState>> waiting_excl;
  bool closed = false;
  bool started = false;
  std::function<void(const ErrorInfo*)> start_cb;
  unsigned failures = 0;  // consecutive connect failures
  Clock::time_point next_attempt{};
  bool timer_armed = false;
  std::size_t next_thread = 0;
  std::uint64_t opened = 0, lost = 0, reconnects = 0, connect_failures = 0;
  std::uint64_t owed = 0;  // lost connections not yet replaced

  // ---- helpers (lock held) ----

  Slot* find(const Connection* c) {
    for (auto& s : slots)
      if (s.conn.get() == c) return &s;
    return nullptr;
  }

  void erase(const Connection* c) {
    slots.erase(std::remove_if(slots.begin(), slots.end(), [c](const Slot& s) { return s.conn.get() == c; }), slots.end());
  }

  Slot* least_loaded(bool may_use_driven) {
    Slot* best = nullptr;
    int best_load = 0;
    for (auto& s : slots) {
      if (!s.ready || s.pinned || (s.driven && !may_use_driven)) continue;
      int l = s.conn->load().load(std::memory_order_relaxed);
      if (!best || l < best_load) {
        best = &s;
        best_load = l;
      }
    }
    return best;
  }

  std::size_t count_connecting() const {
    std::size_t n = 0;
    for (const auto& s : slots) n += s.ready ? 0 : 1;
    return n;
  }

  std::size_t count_ready() const { return slots.size() - count_connecting(); }

  void route(const std::shared_ptr<Request>& req, Deferred& d) {
    Slot* s = least_loaded(req->may_use_driven);
    if (!s) {
      req->in_pool_queue = true;
      waiting.push_back(req);
      ensure_connecting(d);
      return;
    }
    // Every shared connection busy: open another (pipelining on this one meanwhile). Decided
    // before sending, but grown after: grow() appends to `slots`, which invalidates `s`.
    bool busy = s->conn->load().load(std::memory_order_relaxed) > 0;
    send_to(*s, req, d);
    if (busy) grow(d);
  }

  void send_to(Slot& s, const std::shared_ptr<Request>& req, Deferred& d) {
    req->in_pool_queue = false;
    req->conn = s.conn;
    s.conn->load().fetch_add(1, std::memory_order_relaxed);
    auto c = s.conn;
    // Posted now, under the pool lock, not deferred: a query routed by another thread just
    // after this one must not reach the connection first (statements keep the order in which
    // they were routed — found by PgPool.ErrorInPipelineFailsOnlyItsOwnQuery under TSan).
    // post_io runs nothing inline, so posting under the lock is safe.
    post_to(*c, [c, req] { c->submit(req); });
    (void)d;
  }

  void grow(Deferred& d) {
    if (slots.size() >= settings.pool_size || count_connecting() > 0) return;
    if (failures > 0 && Clock::now() < next_attempt) return;
    open(d);
  }

  /** There is demand: make sure a connection is on its way (now, or when the backoff ends). */
  void ensure_connecting(Deferred& d) {
    if (closed || count_connecting() > 0 || slots.size() >= settings.pool_size) return;
    if (failures > 0 && Clock::now() < next_attempt) {
      arm_timer(d);
      return;
    }
    open(d);
  }

  void arm_timer(Deferred& d) {
    if (timer_armed) return;
    timer_armed = true;
    auto delay = std::chrono::duration_cast<std::chrono::milliseconds>(next_attempt - Clock::now()).count();
    if (delay < 0) delay = 0;
    std::weak_ptr<PoolCore> weak = shared_from_this();
    core::IoPool* iop = &io;
    d.add([iop, weak, delay] {
      core::run_after(*iop, static_cast<std::uint64_t>(delay), [weak] {
        auto self = weak.lock();
        if (!self) return;
        Deferred d2;
        {
          std::lock_guard<std::mutex> lock(self->m);
          self->timer_armed = false;
          if (self->wants_connection()) self->ensure_connecting(d2);
        }
        d2.run();
      });
    });
  }

  bool wants_connection() const {
    if (closed) return false;
    if (!waiting.empty() || !waiting_excl.empty()) return true;
    return started && slots.size() < settings.min_connections;
  }

  std::chrono::milliseconds backoff() const {
    // 50 ms, 100 ms, ... capped at 2 s. The first reconnect after a loss is immediate.
    unsigned shift = std::min(failures > 0 ? failures - 1 : 0u, 6u);
    return std::min(std::chrono::milliseconds(50 << shift), std::chrono::milliseconds(2000));
  }

  void open(Deferred& d) {
    std::weak_ptr<PoolCore> weak = shared_from_this();
    Connection::Events ev;
    ev.ready = [weak](Connection& c) {
      if (auto self = weak.lock()) self->on_ready(c);
    };
    ev.failed = [weak](Connection& c, const ErrorInfo& e) {
      if (auto self = weak.lock()) self->on_failed(c, e);
    };
    ev.lost = [weak](Connection& c, const ErrorInfo& e) {
      if (auto self = weak.lock()) self->on_lost(c, e);
    };
    ev.handback = [weak](std::vector<std::shared_ptr<Request>>&& reqs) {
      auto self = weak.lock();
      if (!self) {
        for (auto& r : reqs) r->finish(Result::failure(closed_error()));
        return;
      }
      self->on_handback(std::move(reqs));
    };
    std::weak_ptr<Runner> runner = this->runner;
    ev.offload = [runner](std::function<void()> job) {
      if (auto r = runner.lock()) r->post(std::move(job));
    };
    asio::io_context* ctx = nullptr;
    if (settings.first_on_driven) {
      ctx = &io.driven();
      for (const auto& s : slots)
        if (&s.conn->context() == ctx) ctx = nullptr;  // it has one already
    }
    if (!ctx) ctx = &io.context(next_thread++ % io.size());
    auto c = std::make_shared<Connection>(*ctx, info, std::move(ev));
    if (ctx == &io.driven()) {
      if (!uses_driven) io.use_driven(+1);
      uses_driven = true;
      slots.insert(slots.begin(), Slot{c, false, false, true});  // first: least_loaded() prefers it on ties
      d.add([c] { post_to(*c, [c] { c->start(); }); });
      return;
    }
    slots.push_back(Slot{c, false, false});
    d.add([c] { post_to(*c, [c] { c->start(); }); });
  }

  static ErrorInfo closed_error() {
    return ErrorInfo::make(sqlstate::kConnectionDoesNotExist, "the Postgres pool was closed", true);
  }

  void fail_later(std::shared_ptr<Request> req, ErrorInfo e, Deferred& d) {
    core::IoPool* iop = &io;
    d.add([iop, req, e] { core::post(*iop, [req, e] { req->finish(Result::failure(e)); }); });
  }

  void grant(Slot& s, std::shared_ptr<AcquireState> st, Deferred& d) {
    s.pinned = true;
    auto ls = std::make_shared<LeaseState>();
    ls->core = weak_from_this();
    ls->conn = s.conn;
    auto c = s.conn;
    d.add([c, ls, st] {
      post_to(*c, [c, ls, st] {
        c->pin();
        ls->pid = c->backend_pid();
        Lease lease;
        lease.s_ = ls;
        auto cb = std::move(st->cb);
        if (cb) cb(std::move(lease));  // a lease the callback drops is released by ~Lease
      });
    });
  }

  void refuse(std::shared_ptr<AcquireState> st, ErrorInfo e, Deferred& d) {
    auto ls = std::make_shared<LeaseState>();
    ls->error = std::make_shared<const ErrorInfo>(std::move(e));
    ls->released = true;
    core::IoPool* iop = &io;
    d.add([iop, ls, st] {
      core::post(*iop, [ls, st] {
        Lease lease;
        lease.s_ = ls;
        auto cb = std::move(st->cb);
        if (cb) cb(std::move(lease));
      });
    });
  }

  /** Hands waiting work to whatever can take it now. */
  void dispatch(Deferred& d) {
    // A request from another thread cannot take the hub's connection: it keeps its place while
    // the ones behind it that may are served (each caller's own requests keep their order).
    for (auto it = waiting.begin(); it != waiting.end();) {
      Slot* s = least_loaded((*it)->may_use_driven);
      if (!s) {
        ++it;
        continue;
      }
      auto req = std::move(*it);
      it = waiting.erase(it);
      send_to(*s, req, d);
    }
    for (auto it = waiting_excl.begin(); it != waiting_excl.end();) {
      Slot* s = least_loaded((*it)->may_use_driven);
      if (!s) {
        ++it;
        continue;
      }
      auto st = std::move(*it);
      it = waiting_excl.erase(it);
      st->waiting = false;
      grant(*s, std::move(st), d);
    }
    if (!waiting.empty() || !waiting_excl.empty()) ensure_connecting(d);
  }

  // ---- connection events (on the connection's thread) ----

  void on_ready(Connection& c) {
    Deferred d;
    {
      std::lock_guard<std::mutex> lock(m);
      Slot* s = find(&c);
      if (!s || closed) return;
      s->ready = true;
      failures = 0;
      ++opened;
      if (owed > 0) {
        --owed;
        ++reconnects;
      }
      if (start_cb) {
        auto cb = std::move(start_cb);
        start_cb = nullptr;
        d.add([cb] { cb(nullptr); });
      }
      dispatch(d);
      if (started && slots.size() < settings.min_connections) ensure_connecting(d);
    }
    d.run();
  }

  void on_failed(Connection& c, const ErrorInfo& e) {
    Deferred d;
    {
      std::lock_guard<std::mutex> lock(m);
      if (!find(&c) || closed) return;
      erase(&c);
      ++connect_failures;
      ++failures;
      next_attempt = Clock::now() + backoff();
      if (start_cb) {
        auto cb = std::move(start_cb);
        start_cb = nullptr;
        d.add([cb, e] { cb(&e); });
      }
      if (count_ready() == 0 && count_connecting() == 0) {
        // Nothing can serve the waiters now: fail them (callers see OperationalError) rather than
        // let them wait through an outage.
        for (auto& r : waiting) {
          r->in_pool_queue = false;
          fail_later(r, e, d);
        }
        waiting.clear();
        for (auto& st : waiting_excl) {
          st->waiting = false;
          refuse(st, e, d);
        }
        waiting_excl.clear();
      }
      if (wants_connection()) arm_timer(d);
    }
    d.run();
  }

  void on_lost(Connection& c, const ErrorInfo&) {
    Deferred d;
    {
      std::lock_guard<std::mutex> lock(m);
      if (!find(&c) || closed) return;
      erase(&c);
      ++lost;
      ++owed;
      if (wants_connection()) ensure_connecting(d);
    }
    d.run();
  }

  void on_handback(std::vector<std::shared_ptr<Request>>&& reqs) {
    Deferred d;
    {
      std::lock_guard<std::mutex> lock(m);
      for (auto& r : reqs) {
        if (closed)
          fail_later(r, closed_error(), d);
        else
          route(r, d);
      }
    }
    d.run();
  }

  void on_released(Connection& c) {
    Deferred d;
    {
      std::lock_guard<std::mutex> lock(m);
      Slot* s = find(&c);
      if (!s || closed) return;
      s->pinned = false;
      dispatch(d);
    }
    d.run();
  }
};

}  // namespace detail

// ---- QueryHandle / AcquireHandle --------------------------------------------------------------

void QueryHandle::cancel() const {
  if (!req_ || req_->finished()) return;
  auto core = core_.lock();
  std::shared_ptr<Connection> conn;
  bool was_waiting = false;
  if (core) {
    std::lock_guard<std::mutex> lock(core->m);
    if (req_->in_pool_queue) {
      auto& w = core->waiting;
      w.erase(std::remove(w.begin(), w.end(), req_), w.end());
      req_->in_pool_queue = false;
      was_waiting = true;
    } else {
      conn = req_->conn.lock();
    }
  } else {
    conn = req_->conn.lock();
  }
  auto req = req_;
  if (was_waiting) {
    core::post(core->io, [req] {
      req->finish(Result::failure(ErrorInfo::make(sqlstate::kQueryCanceled, "canceling statement due to user request (before it was sent)")));
    });
  } else if (conn) {
    post_to(*conn, [conn, req] { conn->cancel(req); });
  }
}

void AcquireHandle::cancel() const {
  auto core = core_.lock();
  if (!s_ || !core) return;
  Deferred d;
  {
    std::lock_guard<std::mutex> lock(core->m);
    if (!s_->waiting) return;
    auto& w = core->waiting_excl;
    w.erase(std::remove(w.begin(), w.end(), s_), w.end());
    s_->waiting = false;
    core->refuse(s_, ErrorInfo::make(sqlstate::kQueryCanceled, "canceled while waiting for a connection"), d);
  }
  d.run();
}

// ---- Lease ------------------------------------------------------------------------------------

Lease::Lease(Lease&& o) noexcept = default;

Lease& Lease::operator=(Lease&& o) noexcept {
  if (this != &o) {
    release();
    s_ = std::move(o.s_);
  }
  return *this;
}

Lease::~Lease() { release(); }

Lease::operator bool() const noexcept { return s_ && s_->conn && !s_->released.load(std::memory_order_acquire); }

const ErrorInfo* Lease::error() const noexcept { return s_ && s_->error ? s_->error.get() : nullptr; }

int Lease::backend_pid() const noexcept { return s_ ? s_->pid : 0; }

QueryHandle Lease::query(Query q, Callback cb) const {
  auto req = std::make_shared<detail::Request>();
  req->query = std::move(q);
  req->done = std::move(cb);
  req->exclusive = true;
  QueryHandle h;
  h.req_ = req;
  if (!s_ || !s_->conn || s_->released.load(std::memory_order_acquire)) {
    ErrorInfo e = s_ && s_->error ? *s_->error
                                  : ErrorInfo::make(sqlstate::kConnectionDoesNotExist, "the lease was released", true);
    auto core = s_ ? s_->core.lock() : nullptr;
    if (core) {
      core::post(core->io, [req, e] { req->finish(Result::failure(e)); });
    } else {
      // No I/O thread to defer to: the pool is gone.
      req->finish(Result::failure(e));
    }
    return h;
  }
  auto core = s_->core.lock();
  h.core_ = core;
  auto c = s_->conn;
  if (core) {
    std::lock_guard<std::mutex> lock(core->m);
    req->conn = c;
  } else {
    req->conn = c;
  }
  c->load().fetch_add(1, std::memory_order_relaxed);
  post_to(*c, [c, req] { c->submit(req); });
  return h;
}

void Lease::release() {
  if (!s_ || !s_->conn) return;
  if (s_->released.exchange(true, std::memory_order_acq_rel)) return;
  auto c = s_->conn;
  std::weak_ptr<detail::PoolCore> weak = s_->core;
  post_to(*c, [c, weak] {
    Connection* raw = c.get();  // the callback runs inside c: no owning capture (no cycle)
    c->unpin([raw, weak] {
      if (auto core = weak.lock()) core->on_released(*raw);
    });
  });
}

// ---- Pool -------------------------------------------------------------------------------------

Pool::Pool(core::IoPool& io, PoolSettings settings) {
  if (settings.pool_size == 0) throw std::invalid_argument("postgres '" + settings.name + "': pool_size must be at least 1");
  std::string err;
  auto info = ConnInfo::make(settings, &err);
  if (!info) throw std::invalid_argument("postgres '" + settings.name + "': invalid url: " + err);
  settings.min_connections = std::min(settings.min_connections, settings.pool_size);
  core_ = std::make_shared<detail::PoolCore>(io, std::move(settings), std::move(info));
}

Pool::~Pool() {
  close();
  core_->runner->stop();
}

const PoolSettings& Pool::settings() const noexcept { return core_->settings; }

void Pool::start(std::function<void(const ErrorInfo*)> done) {
  Deferred d;
  {
    std::lock_guard<std::mutex> lock(core_->m);
    if (core_->closed) {
      ErrorInfo e = detail::PoolCore::closed_error();
      core::IoPool* iop = &core_->io;
      d.add([iop, done, e] { core::post(*iop, [done, e] { done(&e); }); });
    } else {
      core_->started = true;
      if (core_->count_ready() > 0) {
        core::IoPool* iop = &core_->io;
        d.add([iop, done] { core::post(*iop, [done] { done(nullptr); }); });
      } else {
        core_->start_cb = std::move(done);
      }
      for (std::size_t i = core_->slots.size(); i < core_->settings.min_connections; ++i) core_->open(d);
    }
  }
  d.run();
}

QueryHandle Pool::query(Query q, Callback cb) {
  auto req = std::make_shared<detail::Request>();
  std::string kw = leading_keyword(q.sql);
  req->query = std::move(q);
  req->done = std::move(cb);
  req->may_use_driven = core_->io.on_driven_owner();
  QueryHandle h;
  h.req_ = req;
  h.core_ = core_;
  Deferred d;
  {
    std::lock_guard<std::mutex> lock(core_->m);
    if (core_->closed) {
      core_->fail_later(req, detail::PoolCore::closed_error(), d);
    } else if (req->query.copy != CopyStep::None) {
      core_->fail_later(req, ErrorInfo::make(sqlstate::kInvalidTransactionState, "COPY needs an exclusive connection (a Lease)"), d);
    } else if (kw == "BEGIN" || kw == "START") {
      core_->fail_later(req,
                        ErrorInfo::make(sqlstate::kInvalidTransactionState,
                                        "transactions need an exclusive connection (Pool::acquire_exclusive): a shared "
                                        "connection's pipeline carries other callers' statements"),
                        d);
    } else {
      core_->route(req, d);
    }
  }
  d.run();
  return h;
}

AcquireHandle Pool::acquire_exclusive(std::function<void(Lease&&)> cb) {
  auto st = std::make_shared<detail::AcquireState>();
  st->cb = std::move(cb);
  st->may_use_driven = core_->io.on_driven_owner();
  AcquireHandle h;
  h.s_ = st;
  h.core_ = core_;
  Deferred d;
  {
    std::lock_guard<std::mutex> lock(core_->m);
    if (core_->closed) {
      core_->refuse(st, detail::PoolCore::closed_error(), d);
    } else if (auto* s = core_->least_loaded(st->may_use_driven)) {
      bool busy = s->conn->load().load(std::memory_order_relaxed) > 0;
      core_->grant(*s, st, d);
      if (busy) core_->grow(d);  // after grant(): grow() appends to `slots`, invalidating `s`
    } else {
      st->waiting = true;
      core_->waiting_excl.push_back(st);
      core_->ensure_connecting(d);
    }
  }
  d.run();
  return h;
}

void Pool::close() {
  Deferred d;
  std::vector<std::shared_ptr<Connection>> conns;
  {
    std::lock_guard<std::mutex> lock(core_->m);
    if (core_->closed) return;
    core_->closed = true;
    ErrorInfo e = detail::PoolCore::closed_error();
    for (auto& r : core_->waiting) {
      r->in_pool_queue = false;
      core_->fail_later(r, e, d);
    }
    core_->waiting.clear();
    for (auto& st : core_->waiting_excl) {
      st->waiting = false;
      core_->refuse(st, e, d);
    }
    core_->waiting_excl.clear();
    if (core_->start_cb) {
      auto cb = std::move(core_->start_cb);
      core_->start_cb = nullptr;
      core::IoPool* iop = &core_->io;
      d.add([iop, cb, e] { core::post(*iop, [cb, e] { cb(&e); }); });
    }
    for (auto& s : core_->slots) conns.push_back(s.conn);
    core_->slots.clear();
  }
  d.run();
  ErrorInfo e = detail::PoolCore::closed_error();
  for (auto& c : conns) post_to(*c, [c, e] { c->close(e); });
}

PoolStats Pool::stats() const {
  std::lock_guard<std::mutex> lock(core_->m);
  PoolStats st;
  for (const auto& s : core_->slots) {
    if (s.ready)
      ++st.connections;
    else
      ++st.connecting;
    if (s.pinned) ++st.pinned;
    st.in_flight += static_cast<std::size_t>(std::max(0, s.conn->load().load(std::memory_order_relaxed)));
  }
  st.waiting = core_->waiting.size();
  st.waiting_exclusive = core_->waiting_excl.size();
  st.opened = core_->opened;
  st.lost = core_->lost;
  st.reconnects = core_->reconnects;
  st.connect_failures = core_->connect_failures;
  return st;
}

}  // namespace puff::pg
