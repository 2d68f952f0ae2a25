// Placement (http/placement.hpp): where `http_thread = "auto"` puts a new connection when cores
// are left over. Pure logic, fed with made-up samples; tests/py/test_http_thread.py checks the
// placement end to end with a cheap and an expensive app.
#include "http/placement.hpp"

#include <gtest/gtest.h>

#include <algorithm>

using namespace puff::http;
using namespace std::chrono_literals;

namespace {

/** Feeds Placement samples: `units` more units of work at `us_per_unit` of Python-thread CPU
 *  each, over a window in which that thread was running `busy` of the time (or over `dt`). */
struct Feed {
  Placement p;
  Placement::Clock::time_point now = Placement::Clock::now();
  std::chrono::nanoseconds cpu{5s};  // what the thread used before the server started
  std::uint64_t units = 0;
  int cpu_reads = 0;

  bool next(std::uint64_t more_units, double us_per_unit, double busy = 0.9) {
    double used_us = us_per_unit * static_cast<double>(more_units);
    auto dt = std::chrono::microseconds(static_cast<long long>(busy > 0 ? used_us / busy : 0));
    return next_over(more_units, us_per_unit, std::max<std::chrono::microseconds>(dt, 100ms));
  }
  bool next_over(std::uint64_t more_units, double us_per_unit, std::chrono::microseconds dt) {
    units += more_units;
    cpu += std::chrono::nanoseconds(static_cast<long long>(us_per_unit * 1000.0 * static_cast<double>(more_units)));
    now += dt;
    return p.place([this] { return units; }, now, [this] {
      ++cpu_reads;
      return cpu;
    });
  }
};

TEST(Placement, ThePythonThreadUntilAWindowWasMeasured) {
  Feed f;
  EXPECT_TRUE(f.next(0, 0));  // the first connection: nothing known yet (sets the base)
  EXPECT_LT(f.p.estimate_us(), 0);
  EXPECT_EQ(f.cpu_reads, 1);
  EXPECT_EQ(f.p.placed_on_python(), 1u);
  EXPECT_EQ(f.p.placed_on_io(), 0u);
}

TEST(Placement, ABusyExpensiveAppGoesToTheIoThreads) {
  Feed f;
  f.next(0, 0);
  EXPECT_FALSE(f.next(10000, 45.0));  // 450 ms of CPU at 90% busy
  EXPECT_NEAR(f.p.estimate_us(), 45.0, 0.01);
  EXPECT_NEAR(f.p.busy(), 0.9, 0.01);
  EXPECT_FALSE(f.next(10000, 45.0));
  EXPECT_EQ(f.p.placed_on_python(), 1u);
  EXPECT_EQ(f.p.placed_on_io(), 2u);
}

TEST(Placement, ABusyCheapAppStaysOnThePythonThread) {
  Feed f;
  f.next(0, 0);
  EXPECT_TRUE(f.next(50000, 11.0));  // the figure on the Python thread, socket work included
  EXPECT_NEAR(f.p.estimate_us(), 11.0, 0.01);
}

TEST(Placement, AQuietThreadTakesTheConnectionsWhateverTheyCost) {
  // At low load every request pays for waking the thread, so its CPU per request says little;
  // what counts is that the thread has room.
  Feed f;
  f.next(0, 0);
  EXPECT_FALSE(f.next(10000, 45.0));
  EXPECT_TRUE(f.next(1000, 60.0, 0.2));
}

TEST(Placement, BetweenTheThresholdsTheLastChoiceHolds) {
  Feed f;
  f.next(0, 0);
  EXPECT_TRUE(f.next(10000, 20.0));   // on the Python thread (socket work included): not too dear
  EXPECT_FALSE(f.next(10000, 30.0));  // dearer: the I/O threads
  EXPECT_FALSE(f.next(10000, 20.0));  // from the I/O threads, 20 µs is not cheap enough
  EXPECT_TRUE(f.next(10000, 10.0));   // this is
}

TEST(Placement, AShortWindowDoesNotCountUntilItIsLongEnough) {
  Feed f;
  f.next(0, 0);
  EXPECT_TRUE(f.next_over(1000, 45.0, 10ms));  // too short a time: no estimate, nothing read
  EXPECT_EQ(f.cpu_reads, 1);
  EXPECT_LT(f.p.estimate_us(), 0);
  EXPECT_FALSE(f.next_over(1000, 45.0, 40ms));  // 50 ms, 2000 units, 90 ms of CPU: counts
  EXPECT_NEAR(f.p.estimate_us(), 45.0, 0.01);
}

TEST(Placement, TooLittleWorkKeepsTheBaseAndAccumulates) {
  Feed f;
  f.next(0, 0);
  EXPECT_TRUE(f.next(100, 450.0));  // 100 units: below min_units, the window stays open
  EXPECT_LT(f.p.estimate_us(), 0);
  EXPECT_FALSE(f.next(150, 450.0));  // 250 units since the base
  EXPECT_NEAR(f.p.estimate_us(), 450.0, 0.01);
}

TEST(Placement, ACountReadBeforeTheBaseMovedIsNotAWindow) {
  // Another acceptor may have closed a window with a later count: fewer units than the base
  // must not wrap around into a huge window of nearly free work.
  Feed f;
  f.next(0, 0);
  EXPECT_FALSE(f.next(10000, 45.0));
  f.units -= 5000;  // as if read long ago
  EXPECT_FALSE(f.next(0, 0.0));
  EXPECT_NEAR(f.p.estimate_us(), 45.0, 0.01);
}

TEST(Placement, ThresholdsCanBeSet) {
  Placement::Thresholds t;
  t.to_python_us = 50;
  t.to_io_us = 80;
  Feed f{Placement(t)};
  f.next(0, 0);
  EXPECT_TRUE(f.next(10000, 60.0));
  EXPECT_FALSE(f.next(10000, 90.0));
}

}  // namespace
