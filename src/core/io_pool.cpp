#include "core/io_pool.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <csignal>
#include <pthread.h>
#include <string>

namespace puff::core {

namespace asio = boost::asio;

struct IoPool::Loop {
  asio::io_context ctx{1};  // concurrency hint 1: only its own thread runs it
  asio::executor_work_guard<asio::io_context::executor_type> guard = asio::make_work_guard(ctx);
};

namespace {
thread_local int t_index = -1;
}

IoPool::IoPool(std::size_t threads) {
  if (threads == 0) threads = 1;
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
  std::vector<std::pair<asio::any_io_executor, std::vector<std::function<void()>>>> groups;
};

thread_local PostBatch t_batch;

}  // namespace

void post_batched(const asio::any_io_executor& ex, std::function<void()> fn) {
  PostBatch& b = t_batch;
  if (!b.open) {
    asio::post(ex, std::move(fn));
    return;
  }
  for (auto& g : b.groups) {
    if (g.first == ex) {
      g.second.push_back(std::move(fn));
      return;
    }
  }
  b.groups.emplace_back(ex, std::vector<std::function<void()>>{});
  b.groups.back().second.push_back(std::move(fn));
}

void open_post_batch() noexcept { t_batch.open = true; }

void flush_post_batch() {
  PostBatch& b = t_batch;
  b.open = false;
  for (auto& g : b.groups) {
    if (g.second.size() == 1) {
      asio::post(g.first, std::move(g.second.front()));
    } else {
      asio::post(g.first, [fns = std::move(g.second)]() mutable {
        for (auto& f : fns) f();
      });
    }
  }
  b.groups.clear();
}

}  // namespace puff::core
