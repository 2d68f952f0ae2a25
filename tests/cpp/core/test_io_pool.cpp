#include "core/io_pool.hpp"
#include "core/post_batch.hpp"
#include "core/wake_queue.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using puff::core::IoPool;

namespace {

/** Waits until `pred` is true or 5 s pass. */
template <class Pred>
bool eventually(Pred pred) {
  auto until = std::chrono::steady_clock::now() + 5s;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace

TEST(IoPool, RunsPostedWorkOnItsThreads) {
  IoPool pool(2);
  EXPECT_EQ(pool.size(), 2u);
  EXPECT_EQ(IoPool::current_index(), -1);
  std::mutex m;
  std::set<int> seen;
  std::atomic<int> done{0};
  for (int i = 0; i < 100; ++i) {
    puff::core::post(pool, [&] {
      std::lock_guard<std::mutex> lock(m);
      seen.insert(IoPool::current_index());
      ++done;
    });
  }
  ASSERT_TRUE(eventually([&] { return done.load() == 100; }));
  std::lock_guard<std::mutex> lock(m);
  EXPECT_EQ(seen, (std::set<int>{0, 1}));  // round-robin reaches both threads
}

TEST(IoPool, ZeroThreadsMeansOne) {
  IoPool pool(0);
  EXPECT_EQ(pool.size(), 1u);
}

TEST(IoPool, RunAfterWaitsAtLeastTheDelay) {
  IoPool pool(1);
  std::atomic<bool> fired{false};
  auto t0 = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point t1;
  puff::core::run_after(pool, 30, [&] {
    t1 = std::chrono::steady_clock::now();
    fired = true;
  });
  ASSERT_TRUE(eventually([&] { return fired.load(); }));
  EXPECT_GE(t1 - t0, 29ms);
}

TEST(IoPool, TimersFireInDeadlineOrder) {
  IoPool pool(1);
  std::mutex m;
  std::vector<int> order;
  for (int ms : {40, 10, 25}) {
    puff::core::run_after(pool, ms, [&, ms] {
      std::lock_guard<std::mutex> lock(m);
      order.push_back(ms);
    });
  }
  ASSERT_TRUE(eventually([&] {
    std::lock_guard<std::mutex> lock(m);
    return order.size() == 3;
  }));
  EXPECT_EQ(order, (std::vector<int>{10, 25, 40}));
}

TEST(IoPool, StopDropsPendingTimersWithoutRunningThem) {
  std::atomic<bool> fired{false};
  {
    IoPool pool(1);
    puff::core::run_after(pool, 60000, [&] { fired = true; });
    auto t0 = std::chrono::steady_clock::now();
    pool.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    pool.stop();  // idempotent
  }
  EXPECT_FALSE(fired.load());
}

TEST(IoPool, SignalsAreBlockedOnIoThreads) {
  IoPool pool(1);
  std::atomic<int> blocked{-1};
  puff::core::post(pool, [&] {
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, nullptr, &cur);
    blocked = sigismember(&cur, SIGINT) && sigismember(&cur, SIGTERM);
  });
  ASSERT_TRUE(eventually([&] { return blocked.load() != -1; }));
  EXPECT_EQ(blocked.load(), 1);
}

// ---- the driven context (run by its owner inside wait_driven / poll_driven) --------------------

namespace {

struct Item : puff::core::WakeNode {};

}  // namespace

TEST(IoPool, DrivenContextRunsOnlyInsideItsOwnersWaits) {
  IoPool pool(1);
  pool.use_driven(+1);  // without a user, wait_driven() is the queue's own wait
  puff::core::WakeQueue q;
  std::thread::id ran_on;
  Item item;
  boost::asio::post(pool.driven(), [&] {
    ran_on = std::this_thread::get_id();
    q.push(&item);  // a handler completing something for its owner
  });
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(ran_on, std::thread::id());  // no I/O thread ran it
  pool.wait_driven(q, 0us, -1);          // runs it, then sees the queue
  EXPECT_EQ(ran_on, std::this_thread::get_id());
  EXPECT_EQ(q.pop_all(), &item);
}

TEST(IoPool, WaitDrivenWakesForThePostsOfOtherThreadsAndForTheQueue) {
  IoPool pool(2);
  pool.use_driven(+1);
  puff::core::WakeQueue q;
  std::atomic<int> ran{0};
  std::thread other([&] {
    std::this_thread::sleep_for(30ms);
    boost::asio::post(pool.driven(), [&] { ++ran; });  // wakes the owner's sleep in the loop
    std::this_thread::sleep_for(30ms);
    static Item item;
    q.push(&item);  // the queue's eventfd, watched from inside the loop
  });
  auto t0 = std::chrono::steady_clock::now();
  while (!q.has_items()) pool.wait_driven(q, 10us, -1);
  EXPECT_EQ(ran.load(), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);
  other.join();
  q.clear_wakeup();
  EXPECT_NE(q.pop_all(), nullptr);
}

TEST(IoPool, OwnerSpinTimeCountsEachWaitsSpin) {
  // What the Python thread spent spinning is not the application's cost (http/placement.hpp
  // subtracts it): each wait adds its spin, or all of itself when it ended within the spin.
  IoPool pool(1);
  puff::core::WakeQueue q;
  EXPECT_EQ(pool.owner_spin_time().count(), 0);
  for (int users : {0, 1}) {  // the queue's own wait, and the wait inside the loop
    if (users) pool.use_driven(+1);
    auto before = pool.owner_spin_time();
    Item item;
    std::thread late([&] {
      std::this_thread::sleep_for(30ms);  // long after the 2 ms spin
      q.push(&item);
    });
    while (!q.has_items()) pool.wait_driven(q, 2000us, -1);
    late.join();
    q.clear_wakeup();
    EXPECT_EQ(q.pop_all(), &item);
    EXPECT_EQ(pool.owner_spin_time() - before, 2000us) << "users " << users;
  }
  // A wait that found an item at once spun for nothing.
  Item ready;
  q.push(&ready);
  auto before = pool.owner_spin_time();
  pool.wait_driven(q, 2000us, -1);
  EXPECT_LT(pool.owner_spin_time() - before, 2000us);
  q.clear_wakeup();
  EXPECT_EQ(q.pop_all(), &ready);
}

TEST(IoPool, WaitDrivenReturnsWhenTheExtraFdIsReadable) {
  for (int users : {0, 1}) {  // the queue's own wait, then the loop's
    IoPool pool(1);
    pool.use_driven(users);
    puff::core::WakeQueue q;
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    std::thread other([&] {
      std::this_thread::sleep_for(30ms);
      char c = 'x';
      ASSERT_EQ(::write(p[1], &c, 1), 1);
    });
    EXPECT_TRUE(pool.wait_driven(q, 0us, p[0]));  // returns once the pipe is readable
    char c;
    EXPECT_EQ(::read(p[0], &c, 1), 1);
    other.join();
    ::close(p[0]);
    ::close(p[1]);
  }
}

TEST(IoPool, DrivenFdIsReadableOnlyWhileTheLoopHasWork) {
  IoPool pool(1);
  pool.use_driven(+1);
  int fd = pool.driven_fd();
  ASSERT_GE(fd, 0);
  EXPECT_EQ(pool.driven_fd(), fd);
  auto readable = [fd](int ms) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, ms) == 1;
  };
  pool.poll_driven();
  EXPECT_FALSE(readable(0));  // an outside loop watching it would not spin
  bool fired = false;
  boost::asio::steady_timer timer(pool.driven(), 30ms);
  timer.async_wait([&](const boost::system::error_code&) { fired = true; });
  pool.poll_driven();
  EXPECT_FALSE(readable(0));
  EXPECT_TRUE(readable(3000));  // the timer expired
  pool.poll_driven();
  EXPECT_TRUE(fired);
  EXPECT_FALSE(readable(0));
  // A post from another thread does not reach the epoll set (Asio interrupts its reactor only
  // while a thread blocks in it, and the outside loop is not Asio): core::post_io wakes the
  // queue given to watch_driven() instead, which that outside loop also watches.
  puff::core::WakeQueue q;
  pool.watch_driven(&q);
  std::atomic<bool> ran{false};
  std::thread other([&] { puff::core::post_io(pool.driven().get_executor(), [&] { ran = true; }); });
  other.join();
  pollfd p{q.fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 3000), 1);
  pool.poll_driven();
  EXPECT_TRUE(ran.load());
  EXPECT_FALSE(readable(0));
  pool.watch_driven(nullptr);
  q.clear_wakeup();
  std::thread unwatched([&] { puff::core::post_io(pool.driven().get_executor(), [] {}); });
  unwatched.join();
  EXPECT_EQ(::poll(&p, 1, 0), 0);  // not watched: no wake-up
  pool.poll_driven();
}

TEST(PostBatch, PostsToTheOwnersLoopRunAtFlushOthersArePosted) {
  IoPool pool(1);
  bool own = false;
  std::atomic<bool> io{false};
  puff::core::open_post_batch();
  puff::core::post_batched(pool.driven().get_executor(), [&] { own = true; });
  puff::core::post_batched(pool.context(0).get_executor(), [&] { io = true; });
  EXPECT_FALSE(own);
  puff::core::flush_post_batch();
  EXPECT_TRUE(own);  // ran inside flush, on this thread, without polling the loop
  EXPECT_TRUE(eventually([&] { return io.load(); }));

  // From another thread, a post to the owner's loop waits for the owner.
  std::atomic<bool> late{false};
  std::thread other([&] {
    puff::core::open_post_batch();
    puff::core::post_batched(pool.driven().get_executor(), [&] { late = true; });
    puff::core::flush_post_batch();
  });
  other.join();
  std::this_thread::sleep_for(10ms);
  EXPECT_FALSE(late.load());
  pool.use_driven(+1);
  EXPECT_TRUE(eventually([&] { return pool.poll_driven() > 0 || late.load(); }));
  EXPECT_TRUE(late.load());
}

TEST(PostBatch, GroupsKeptAcrossRoundsDeliverEveryPostOnceInOrder) {
  // A round's groups stay (emptied) for the next rounds and are reused for other executors:
  // every post still runs once, in order, on the executor it was made for.
  IoPool pool(2);
  std::vector<int> own;
  std::mutex m;
  std::vector<std::pair<int, int>> io;  // (context, value)
  for (int round = 0; round < 6; ++round) {
    puff::core::open_post_batch();
    if (round % 2 == 0) {
      for (int i = 0; i < 70; ++i)
        puff::core::post_batched(pool.driven().get_executor(), [&own, round, i] { own.push_back(round * 100 + i); });
    }
    int ctx = round % 3 == 2 ? 1 : 0;  // rounds 2 and 5 use the other I/O thread only
    for (int i = 0; i < 3; ++i) {
      puff::core::post_batched(pool.context(ctx).get_executor(), [&, ctx, round, i] {
        std::lock_guard<std::mutex> l(m);
        io.emplace_back(ctx, round * 100 + i);
      });
    }
    puff::core::flush_post_batch();
  }
  std::vector<int> want_own;
  for (int round : {0, 2, 4})
    for (int i = 0; i < 70; ++i) want_own.push_back(round * 100 + i);
  EXPECT_EQ(own, want_own);
  EXPECT_TRUE(eventually([&] {
    std::lock_guard<std::mutex> l(m);
    return io.size() == 18;
  }));
  std::lock_guard<std::mutex> l(m);
  std::vector<int> by_ctx[2];
  for (auto [ctx, v] : io) by_ctx[ctx].push_back(v);
  EXPECT_EQ(by_ctx[0], (std::vector<int>{0, 1, 2, 100, 101, 102, 300, 301, 302, 400, 401, 402}));
  EXPECT_EQ(by_ctx[1], (std::vector<int>{200, 201, 202, 500, 501, 502}));
}
