#include "pg/listener.hpp"

#include "core/io_pool.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <chrono>
#include <stdexcept>

namespace puff::pg {

namespace asio = boost::asio;

namespace {

using Wakes = std::vector<std::function<void()>>;

void run_all(Wakes& w) {
  for (auto& f : w) f();
  w.clear();
}

ErrorInfo closed_error() {
  return ErrorInfo::make(sqlstate::kConnectionDoesNotExist, "the Postgres listener was closed", true);
}

}  // namespace

// ---- Subscription -----------------------------------------------------------------------------

Subscription::Subscription(core::IoPool& io, std::weak_ptr<Listener> owner, std::vector<std::string> channels)
    : io_(io), owner_(std::move(owner)), channels_(std::move(channels)) {}

void Subscription::wait(std::int64_t timeout_ms, std::function<void()> wake) {
  std::unique_lock<std::mutex> lock(m_);
  if (!queue_.empty() || closed_) {
    lock.unlock();
    wake();
    return;
  }
  std::uint64_t id = ++next_id_;
  Waiter w{id, std::move(wake), nullptr};
  if (timeout_ms >= 0) {
    // The timer lives on one I/O thread: armed and cancelled by handlers posted there, in the
    // order of these posts (made under the lock, so a wake-up's cancel never overtakes the arming).
    auto& ctx = io_.next();
    auto timer = std::make_shared<asio::steady_timer>(ctx);
    std::weak_ptr<Subscription> weak = weak_from_this();
    timers_.fetch_add(1, std::memory_order_relaxed);
    asio::post(ctx, [timer, weak, id, timeout_ms] {
      timer->expires_after(std::chrono::milliseconds(timeout_ms));
      timer->async_wait([timer, weak, id](const boost::system::error_code& ec) {
        auto s = weak.lock();
        if (!s) return;
        s->timers_.fetch_sub(1, std::memory_order_relaxed);
        if (!ec) s->timeout(id);
      });
    });
    w.cancel_timer = [timer] { asio::post(timer->get_executor(), [timer] { timer->cancel(); }); };
  }
  waiters_.push_back(std::move(w));
}

void Subscription::take_waiters_locked(Wakes& out) {
  for (auto& w : waiters_) {
    out.push_back(std::move(w.wake));
    if (w.cancel_timer) out.push_back(std::move(w.cancel_timer));
  }
  waiters_.clear();
}

void Subscription::timeout(std::uint64_t id) {
  std::function<void()> wake;
  {
    std::lock_guard<std::mutex> lock(m_);
    auto it = std::find_if(waiters_.begin(), waiters_.end(), [id](const Waiter& w) { return w.id == id; });
    if (it == waiters_.end()) return;
    wake = std::move(it->wake);
    waiters_.erase(it);
  }
  wake();
}

void Subscription::wake_all() {
  Wakes wakes;
  {
    std::lock_guard<std::mutex> lock(m_);
    take_waiters_locked(wakes);
  }
  run_all(wakes);
}

std::optional<Notification> Subscription::pop() {
  std::lock_guard<std::mutex> lock(m_);
  if (queue_.empty()) return std::nullopt;
  Notification n = std::move(queue_.front());
  queue_.pop_front();
  return n;
}

bool Subscription::closed() const {
  std::lock_guard<std::mutex> lock(m_);
  return closed_;
}

std::vector<std::function<void()>> Subscription::push(const Notification& n) {
  Wakes wakes;
  std::lock_guard<std::mutex> lock(m_);
  if (closed_) return wakes;
  if (queue_.size() >= kMaxQueued) {
    queue_.pop_front();
    dropped_.fetch_add(1, std::memory_order_relaxed);
  }
  queue_.push_back(n);
  take_waiters_locked(wakes);
  return wakes;
}

std::vector<std::function<void()>> Subscription::shut() {
  Wakes wakes;
  std::lock_guard<std::mutex> lock(m_);
  closed_ = true;
  take_waiters_locked(wakes);
  return wakes;
}

void Subscription::close() {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (closed_) return;
  }
  if (auto owner = owner_.lock()) owner->unsubscribe(this);
  Wakes wakes = shut();
  run_all(wakes);
}

// ---- Listener ---------------------------------------------------------------------------------

std::shared_ptr<Listener> Listener::make(core::IoPool& io, const PoolSettings& settings) {
  std::string err;
  auto info = ConnInfo::make(settings, &err);
  if (!info) throw std::invalid_argument("postgres '" + settings.name + "': invalid url: " + err);
  return std::make_shared<Listener>(io, std::move(info));
}

Listener::Listener(core::IoPool& io, std::shared_ptr<const ConnInfo> info) : io_(io), info_(std::move(info)) {}

Listener::~Listener() { close(); }

std::string Listener::quote_ident(const std::string& name) {
  std::string out = "\"";
  for (char ch : name) {
    if (ch == '"') out.push_back('"');
    out.push_back(ch);
  }
  out.push_back('"');
  return out;
}

void Listener::subscribe(std::vector<std::string> channels, Done done) {
  auto sub = std::make_shared<Subscription>(io_, weak_from_this(), std::move(channels));
  Wakes after;
  {
    std::lock_guard<std::mutex> lock(m_);
    if (closed_) {
      ErrorInfo e = closed_error();
      after.push_back([done, e] { done(nullptr, &e); });
    } else {
      subs_.push_back(sub);
      for (const auto& ch : sub->channels()) ++channels_[ch];
      if (ready_ && conn_) {
        // Queued under the lock: the connection runs LISTEN and UNLISTEN in the order the
        // channel counts changed (an UNLISTEN queued by another thread's unsubscribe cannot
        // overtake this LISTEN and leave the channel unheard).
        send_listens(conn_, sub->channels(), "LISTEN", [sub, done](const ErrorInfo* e) {
          if (e) {
            sub->close();
            done(nullptr, e);
          } else {
            done(sub, nullptr);
          }
        });
      } else {
        pending_.push_back(PendingSub{sub, done});
        connect_locked(after);
      }
    }
  }
  run_all(after);
}

void Listener::send_listens(const std::shared_ptr<Connection>& c, const std::vector<std::string>& channels,
                            const std::string& verb, std::function<void(const ErrorInfo*)> done) {
  if (channels.empty()) {  // never inline: callers hold m_ (send_listens always runs under it)
    if (done) asio::post(c->context(), [done = std::move(done)] { done(nullptr); });
    return;
  }
  struct Count {
    std::atomic<std::size_t> left{0};
    std::mutex m;
    std::optional<ErrorInfo> error;
    std::function<void(const ErrorInfo*)> done;
  };
  auto count = std::make_shared<Count>();
  count->left = channels.size();
  count->done = std::move(done);
  for (const auto& ch : channels) {
    auto req = std::make_shared<detail::Request>();
    req->query.sql = verb + " " + quote_ident(ch);
    req->query.prepare = false;
    req->exclusive = true;  // on a dead connection it fails (no pool to hand it back to)
    req->done = [count](Result&& r) {
      if (!r.ok()) {
        std::lock_guard<std::mutex> lock(count->m);
        if (!count->error) count->error = r.error();
      }
      if (count->left.fetch_sub(1, std::memory_order_acq_rel) == 1 && count->done)
        count->done(count->error ? &*count->error : nullptr);
    };
    c->load().fetch_add(1, std::memory_order_relaxed);
    outbox_.push_back(Outgoing{c, std::move(req)});
  }
  // One handler submits the outbox in the order it was filled (under m_). Posting each command
  // would not keep that order: Asio runs a post made on the connection's own thread after
  // one made meanwhile from another thread.
  if (!outbox_posted_) {
    outbox_posted_ = true;
    asio::post(c->context(), [self = shared_from_this()] { self->flush_outbox(); });
  }
}

void Listener::flush_outbox() {
  std::vector<Outgoing> out;
  {
    std::lock_guard<std::mutex> lock(m_);
    out.swap(outbox_);
    outbox_posted_ = false;
  }
  for (auto& o : out) {
    if (o.c->context().get_executor().running_in_this_thread()) {
      o.c->submit(o.req);
    } else {  // a connection replaced meanwhile, on another thread (its commands then fail)
      asio::post(o.c->context(), [c = o.c, req = o.req] { c->submit(req); });
    }
  }
}

void Listener::connect_locked(Wakes& after) {
  if (conn_ || closed_) return;
  std::weak_ptr<Listener> weak = weak_from_this();
  Connection::Events ev;
  ev.ready = [weak](Connection& c) {
    if (auto self = weak.lock()) self->on_ready(c);
  };
  ev.failed = [weak](Connection& c, const ErrorInfo& e) {
    if (auto self = weak.lock()) self->on_down(c, e, false);
  };
  ev.lost = [weak](Connection& c, const ErrorInfo& e) {
    if (auto self = weak.lock()) self->on_down(c, e, true);
  };
  ev.notify = [weak](std::string_view channel, std::string_view payload, int pid) {
    if (auto self = weak.lock()) self->on_notify(channel, payload, pid);
  };
  // No offload: PQconnectStartParams runs on the I/O thread (a DNS lookup for a host name blocks
  // that thread briefly, once per (re)connect).
  auto c = std::make_shared<Connection>(io_.next(), info_, std::move(ev));
  conn_ = c;
  ready_ = false;
  after.push_back([c] { asio::post(c->context(), [c] { c->start(); }); });
}

void Listener::on_ready(Connection& c) {
  std::lock_guard<std::mutex> lock(m_);
  if (closed_ || conn_.get() != &c) return;
  ready_ = true;
  failures_ = 0;
  std::vector<PendingSub> pending;
  pending.swap(pending_);
  std::vector<std::string> channels;
  for (const auto& [ch, n] : channels_) channels.push_back(ch);
  // Every channel (again, after a reconnect); the pending subscribes are confirmed with them.
  // Queued under the lock, like every LISTEN and UNLISTEN (subscribe()).
  send_listens(conn_, channels, "LISTEN", [pending](const ErrorInfo* e) {
    for (const auto& p : pending) {
      if (e) {
        p.sub->close();
        p.done(nullptr, e);
      } else {
        p.done(p.sub, nullptr);
      }
    }
  });
}

void Listener::on_down(Connection& c, const ErrorInfo& e, bool was_ready) {
  std::vector<PendingSub> failed;
  Wakes after;
  {
    std::lock_guard<std::mutex> lock(m_);
    if (closed_ || conn_.get() != &c) return;
    conn_.reset();
    ready_ = false;
    auto expired = [](const std::weak_ptr<Subscription>& w) { return w.expired(); };
    subs_.erase(std::remove_if(subs_.begin(), subs_.end(), expired), subs_.end());
    if (was_ready) {
      failures_ = 0;
      for (auto& w : subs_)
        if (auto s = w.lock()) s->interruptions_.fetch_add(1, std::memory_order_relaxed);
    } else {
      ++failures_;
      failed.swap(pending_);  // nothing waits through an outage: they fail now
    }
    auto still_subscribed = [&failed](const std::weak_ptr<Subscription>& w) {
      auto s = w.lock();
      if (!s) return false;
      for (const auto& p : failed)
        if (p.sub == s) return false;
      return true;
    };
    bool wanted = !pending_.empty() || std::any_of(subs_.begin(), subs_.end(), still_subscribed);
    if (wanted) {
      if (failures_ == 0) {
        connect_locked(after);
      } else if (!retry_armed_) {
        retry_armed_ = true;
        unsigned shift = std::min(failures_ - 1, 6u);
        std::uint64_t delay = std::min<std::uint64_t>(50u << shift, 2000);
        std::weak_ptr<Listener> weak = weak_from_this();
        after.push_back([this, weak, delay] {
          core::run_after(io_, delay, [weak] {
            auto self = weak.lock();
            if (!self) return;
            Wakes later;
            {
              std::lock_guard<std::mutex> lock(self->m_);
              self->retry_armed_ = false;
              self->connect_locked(later);
            }
            run_all(later);
          });
        });
      }
    }
  }
  run_all(after);
  for (auto& p : failed) {
    p.sub->close();
    p.done(nullptr, &e);
  }
}

void Listener::on_notify(std::string_view channel, std::string_view payload, int pid) {
  Notification n{std::string(channel), std::string(payload), pid};
  Wakes wakes;
  {
    std::lock_guard<std::mutex> lock(m_);
    for (auto& w : subs_) {
      auto s = w.lock();
      if (!s) continue;
      const auto& chs = s->channels();
      if (std::find(chs.begin(), chs.end(), n.channel) == chs.end()) continue;
      for (auto& f : s->push(n)) wakes.push_back(std::move(f));
    }
  }
  run_all(wakes);
}

void Listener::unsubscribe(Subscription* sub) {
  std::vector<std::string> unlisten;
  {
    std::lock_guard<std::mutex> lock(m_);
    auto it = std::find_if(subs_.begin(), subs_.end(), [sub](const std::weak_ptr<Subscription>& w) {
      auto s = w.lock();
      return s.get() == sub;
    });
    if (it == subs_.end()) return;
    subs_.erase(it);
    for (const auto& ch : sub->channels()) {
      auto ci = channels_.find(ch);
      if (ci == channels_.end()) continue;
      if (--ci->second == 0) {
        channels_.erase(ci);
        unlisten.push_back(ch);
      }
    }
    if (ready_ && conn_) send_listens(conn_, unlisten, "UNLISTEN", nullptr);  // in order: subscribe()
  }
}

void Listener::close() {
  std::shared_ptr<Connection> c;
  std::vector<PendingSub> pending;
  std::vector<std::weak_ptr<Subscription>> subs;
  {
    std::lock_guard<std::mutex> lock(m_);
    if (closed_) return;
    closed_ = true;
    c = std::move(conn_);
    conn_.reset();
    ready_ = false;
    pending.swap(pending_);
    subs.swap(subs_);
    channels_.clear();
  }
  ErrorInfo e = closed_error();
  if (c) asio::post(c->context(), [c, e] { c->close(e); });
  for (auto& p : pending) p.done(nullptr, &e);
  for (auto& w : subs) {
    if (auto s = w.lock()) {
      Wakes wakes = s->shut();
      run_all(wakes);
    }
  }
}

}  // namespace puff::pg
