#include "core/task_pool.hpp"

#include <condition_variable>
#include <csignal>
#include <deque>
#include <mutex>
#include <pthread.h>
#include <thread>

namespace puff::core {

namespace {

struct Pool {
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::function<void()>> jobs;
  std::size_t threads = 0, idle = 0;

  void worker() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> lock(m);
        ++idle;
        cv.wait(lock, [this] { return !jobs.empty(); });
        --idle;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      job();
    }
  }
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: its threads are detached
  return *p;
}

}  // namespace

void post_blocking_io(std::function<void()> fn) {
  Pool& p = pool();
  std::unique_lock<std::mutex> lock(p.m);
  p.jobs.push_back(std::move(fn));
  if (p.idle == 0 && p.threads < kMaxFileThreads) {
    ++p.threads;
    lock.unlock();
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    std::thread([&p] { p.worker(); }).detach();
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return;
  }
  lock.unlock();
  p.cv.notify_one();
}

}  // namespace puff::core
