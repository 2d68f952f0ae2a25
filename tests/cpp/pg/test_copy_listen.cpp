// COPY on a lease (src/pg/connection_copy.cpp) and LISTEN/NOTIFY (src/pg/listener.cpp) against a
// real server (PUFF_TEST_POSTGRES_URL; skipped when unset). Every wait has a deadline.
#include "pg/listener.hpp"
#include "pg/pool.hpp"

#include "core/io_pool.hpp"
#include "pg_test_util.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <unistd.h>

using namespace std::chrono_literals;
using namespace puff::pg;
using namespace pgtest;

#define REQUIRE_PG()                                 \
  const std::string url = env_url();                 \
  if (url.empty()) GTEST_SKIP() << "PUFF_TEST_POSTGRES_URL is not set"

namespace {

PoolSettings settings_for(const std::string& url, std::uint32_t size) {
  PoolSettings s;
  s.url = url;
  s.pool_size = size;
  s.connect_timeout_ms = 3000;
  return s;
}

std::string unique(const char* base) { return std::string(base) + "_" + std::to_string(::getpid()); }

Query step(CopyStep s, std::string data = {}) {
  Query q;
  q.sql = std::move(data);
  q.prepare = false;
  q.copy = s;
  return q;
}

std::shared_ptr<std::optional<Lease>> take_lease(Pool& pool) {
  auto lb = std::make_shared<std::optional<Lease>>();
  auto got = box();
  pool.acquire_exclusive([lb, got](Lease&& l) {
    *lb = std::move(l);
    got->callback()(Result());
  });
  got->wait();
  return lb;
}

/** Waits for the next notification (nullopt after `d`). */
std::optional<Notification> next(Subscription& s, std::chrono::milliseconds d) {
  auto deadline = std::chrono::steady_clock::now() + d;
  for (;;) {
    if (auto n = s.pop()) return n;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto woke = box();
    s.wait(left.count(), [woke] { woke->callback()(Result()); });
    woke->wait(left + 1000ms);
  }
}

std::shared_ptr<Subscription> subscribe(Listener& l, std::vector<std::string> chs, std::string* error = nullptr) {
  auto done = box();
  auto out = std::make_shared<std::shared_ptr<Subscription>>();
  l.subscribe(std::move(chs), [done, out](std::shared_ptr<Subscription> s, const ErrorInfo* e) {
    *out = std::move(s);
    done->callback()(e ? Result::failure(*e) : Result());
  });
  Result r = done->wait();
  if (error && r.error().sqlstate.size()) *error = r.error().message;
  return *out;
}

}  // namespace

TEST(PgCopy, InAndOutOnALeaseThenThePipelineAgain) {
  REQUIRE_PG();
  const std::string t = unique("puff_copy");
  Admin admin(url);
  admin.exec("DROP TABLE IF EXISTS " + t);
  ASSERT_EQ(admin.exec("CREATE TABLE " + t + " (id int primary key, s text)"), "");
  puff::core::IoPool io(2);
  Pool pool(io, settings_for(url, 2));
  {
    auto lb = take_lease(pool);
    ASSERT_TRUE(lb->has_value() && static_cast<bool>(**lb));
    Lease& lease = **lb;
    ASSERT_TRUE(run(lease, sql("SELECT 1")).ok());  // pipeline first, then COPY
    Result r = run(lease, step(CopyStep::Start, "COPY " + t + " FROM STDIN"));
    ASSERT_EQ(r.status(), Result::Status::CopyIn) << r.error().message;
    EXPECT_EQ(r.column_count(), 2);
    // 20 000 rows in chunks of ~100 KB.
    std::string chunk;
    for (int i = 0; i < 20000; ++i) {
      chunk += std::to_string(i) + "\trow " + std::to_string(i) + " " + std::string(40, 'x') + "\n";
      if (chunk.size() > 100000 || i == 19999) {
        r = run(lease, step(CopyStep::Write, chunk));
        ASSERT_EQ(r.status(), Result::Status::CopyData) << r.error().message;
        chunk.clear();
      }
    }
    r = run(lease, step(CopyStep::End));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r.command_tag(), "COPY 20000");
    // Pipeline mode again: prepared statements work.
    r = run(lease, sql1("SELECT count(*)::int4 FROM " + t + " WHERE id >= $1::int4", "0"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(int4(r.cell(0, 0)), 20000);

    r = run(lease, step(CopyStep::Start, "COPY (SELECT * FROM " + t + " ORDER BY id) TO STDOUT"));
    ASSERT_EQ(r.status(), Result::Status::CopyOut) << r.error().message;
    std::string all;
    int reads = 0;
    for (;;) {
      r = run(lease, step(CopyStep::Read));
      ASSERT_TRUE(r.ok()) << r.error().message;
      if (r.status() != Result::Status::CopyData) break;
      ASSERT_LE(r.copy_data().size(), Connection::kCopyChunk + 100);
      ASSERT_EQ(r.copy_data().back(), '\n');  // whole rows
      all += r.copy_data();
      ++reads;
    }
    EXPECT_EQ(r.command_tag(), "COPY 20000");
    EXPECT_GT(reads, 10);
    EXPECT_EQ(all.substr(0, 6), "0\trow ");
    EXPECT_EQ(std::count(all.begin(), all.end(), '\n'), 20000);

    // A bad row: the error comes with End, and the lease stays usable.
    ASSERT_EQ(run(lease, step(CopyStep::Start, "COPY " + t + " FROM STDIN")).status(), Result::Status::CopyIn);
    ASSERT_TRUE(run(lease, step(CopyStep::Write, "notanint\tx\n")).ok());
    r = run(lease, step(CopyStep::End));
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().sqlstate, "22P02");
    EXPECT_FALSE(r.error().connection);
    // Fail aborts; a duplicate key too.
    ASSERT_EQ(run(lease, step(CopyStep::Start, "COPY " + t + " FROM STDIN")).status(), Result::Status::CopyIn);
    r = run(lease, step(CopyStep::Fail, "changed my mind"));
    EXPECT_EQ(r.error().sqlstate, "57014");
    ASSERT_EQ(run(lease, step(CopyStep::Start, "COPY " + t + " FROM STDIN")).status(), Result::Status::CopyIn);
    ASSERT_TRUE(run(lease, step(CopyStep::Write, "1\tdup\n")).ok());
    EXPECT_EQ(run(lease, step(CopyStep::End)).error().sqlstate, "23505");
    // A COPY OUT given up early (End) drops the rest; a wrong-direction step is refused.
    ASSERT_EQ(run(lease, step(CopyStep::Start, "COPY " + t + " TO STDOUT")).status(), Result::Status::CopyOut);
    EXPECT_FALSE(run(lease, step(CopyStep::Write, "x")).ok());
    ASSERT_EQ(run(lease, step(CopyStep::Read)).status(), Result::Status::CopyData);
    r = run(lease, step(CopyStep::End));
    EXPECT_EQ(r.command_tag(), "COPY 20000");
    // Several statements (the simple protocol allows it): the COPY's own result is the outcome.
    ASSERT_EQ(run(lease, step(CopyStep::Start, "SET LOCAL work_mem = '8MB'; COPY " + t + " FROM STDIN")).status(),
              Result::Status::CopyIn);
    ASSERT_TRUE(run(lease, step(CopyStep::Write, "30000\tlast\n")).ok());
    EXPECT_EQ(run(lease, step(CopyStep::End)).command_tag(), "COPY 1");
    // Not a COPY to/from the client: its own result (or error).
    EXPECT_EQ(run(lease, step(CopyStep::Start, "COPY nope_" + t + " FROM STDIN")).error().sqlstate, "42P01");
    r = run(lease, sql("SELECT 7"));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(int4(r.cell(0, 0)), 7);
  }
  // The shared pool refuses COPY steps.
  EXPECT_EQ(run(pool, step(CopyStep::Start, "COPY " + t + " FROM STDIN")).error().sqlstate, "25000");
  EXPECT_EQ(admin.exec("SELECT count(*) FROM " + t), "20001");
  EXPECT_EQ(pool.stats().lost, 0u);
  admin.exec("DROP TABLE " + t);
}

TEST(PgCopy, LeaseReleasedMidCopyDropsTheConnection) {
  REQUIRE_PG();
  puff::core::IoPool io(1);
  Pool pool(io, settings_for(url, 1));
  {
    auto lb = take_lease(pool);
    ASSERT_TRUE(lb->has_value() && static_cast<bool>(**lb));
    Result r = run(**lb, step(CopyStep::Start, "COPY (SELECT g FROM generate_series(1, 1000000) g) TO STDOUT"));
    ASSERT_EQ(r.status(), Result::Status::CopyOut);
    ASSERT_EQ(run(**lb, step(CopyStep::Read)).status(), Result::Status::CopyData);
    (*lb)->release();
  }
  Result r = run(pool, sql("SELECT 3"));  // a fresh connection replaces it
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(int4(r.cell(0, 0)), 3);
}

TEST(PgListen, NotifyReachesSubscribersAndSurvivesABackendTermination) {
  REQUIRE_PG();
  puff::core::IoPool io(2);
  auto listener = Listener::make(io, settings_for(url, 1));
  const std::string ch = unique("puff_ch") + "_Mixed";
  std::string err;
  auto a = subscribe(*listener, {ch, "other_" + ch}, &err);
  ASSERT_TRUE(a) << err;
  auto b = subscribe(*listener, {ch});
  ASSERT_TRUE(b);
  Admin admin(url);
  std::string quoted = Listener::quote_ident(ch);
  ASSERT_EQ(admin.exec("NOTIFY " + quoted + ", 'one'"), "");
  auto n = next(*a, 3000ms);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->channel, ch);
  EXPECT_EQ(n->payload, "one");
  EXPECT_GT(n->pid, 0);
  n = next(*b, 3000ms);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->payload, "one");
  // Timeouts.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(next(*a, 100ms));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 90ms);

  // Kill the listening backend: the listener reconnects and LISTENs again.
  std::string pid = admin.exec("SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN%" + ch + "%' LIMIT 1");
  ASSERT_FALSE(pid.empty());
  EXPECT_EQ(admin.exec("SELECT pg_terminate_backend(" + pid + ")::text"), "true");
  bool got = false;
  for (int i = 0; i < 100 && !got; ++i) {
    admin.exec("NOTIFY " + quoted + ", 'after'");
    auto m = next(*a, 100ms);
    got = m && m->payload == "after";
  }
  EXPECT_TRUE(got);
  EXPECT_EQ(a->interruptions(), 1u);

  // Unsubscribe b: a still gets them; closing wakes a waiter.
  b->close();
  EXPECT_TRUE(b->closed());
  while (a->pop()) {
  }
  admin.exec("NOTIFY " + quoted + ", 'two'");
  n = next(*a, 3000ms);
  ASSERT_TRUE(n);
  EXPECT_EQ(n->payload, "two");
  auto woke = box();
  a->wait(-1, [woke] { woke->callback()(Result()); });
  listener->close();
  woke->wait(2000ms);
  EXPECT_EQ(woke->calls, 1);
  EXPECT_TRUE(a->closed());
  EXPECT_FALSE(subscribe(*listener, {ch}));
}

TEST(PgListen, ASubscriptionHearsItsChannelWhileAnotherThreadComesAndGoes) {
  // LISTEN and UNLISTEN reach the connection in the order the channel's subscriber count
  // changed: an UNLISTEN from a thread whose subscription just left must not overtake the
  // LISTEN of one that just came, or the newcomer would never hear its channel.
  REQUIRE_PG();
  puff::core::IoPool io(2);
  auto listener = Listener::make(io, settings_for(url, 1));
  const std::string ch = unique("puff_churn");
  std::atomic<bool> stop{false};
  std::thread churn([&] {
    while (!stop) {
      if (auto s = subscribe(*listener, {ch})) s->close();
    }
  });
  Admin admin(url);
  int heard = 0, rounds = 150;
  for (int i = 0; i < rounds; ++i) {
    auto s = subscribe(*listener, {ch});
    if (!s) break;
    std::string payload("n");
    payload += std::to_string(i);
    admin.exec("NOTIFY " + Listener::quote_ident(ch) + ", '" + payload + "'");
    for (auto n = next(*s, 3000ms); n; n = next(*s, 3000ms)) {
      if (n->payload == payload) {
        ++heard;
        break;
      }
    }
    s->close();
  }
  stop = true;
  churn.join();
  EXPECT_EQ(heard, rounds);
  listener->close();
}

TEST(PgListen, SubscribeFailsWhenNothingAnswers) {
  puff::core::IoPool io(1);
  PoolSettings s;
  s.url = "postgresql://nobody@127.0.0.1:1/none";
  s.connect_timeout_ms = 2000;
  auto listener = Listener::make(io, s);
  std::string err;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(subscribe(*listener, {"x"}, &err));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_FALSE(err.empty());
}

TEST(PgListen, AWokenWaitLeavesNoTimerBehind) {
  // A subscriber that waits with a long timeout for each of many notifications: each wait that a
  // notification (here wake_all) ends must cancel its timer, not leave it pending until it expires
  // (the timers piled up: memory grew with notifications x timeout).
  puff::core::IoPool io(2);
  auto sub = std::make_shared<Subscription>(io, std::weak_ptr<Listener>(), std::vector<std::string>{"x"});
  std::atomic<int> woken{0};
  for (int i = 0; i < 1000; ++i) {
    sub->wait(600000, [&woken] { woken.fetch_add(1); });
    sub->wake_all();
  }
  EXPECT_EQ(woken.load(), 1000);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (sub->pending_timeouts() > 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(sub->pending_timeouts(), 0u);
  // A timeout still fires when nothing wakes the waiter.
  auto fired = std::make_shared<std::atomic<bool>>(false);
  sub->wait(20, [fired] { fired->store(true); });
  deadline = std::chrono::steady_clock::now() + 5s;
  while (!fired->load() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(fired->load());
  sub->wait(600000, [] {});
  sub->close();  // closing wakes it and cancels its timer too
  deadline = std::chrono::steady_clock::now() + 5s;
  while (sub->pending_timeouts() > 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(sub->pending_timeouts(), 0u);
}
