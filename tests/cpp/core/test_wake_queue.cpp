#include "core/wake_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

using puff::core::WakeNode;
using puff::core::WakeQueue;

namespace {

struct Item : WakeNode {
  int producer = 0;
  int seq = 0;
};

std::vector<Item*> drain(WakeQueue& q) {
  std::vector<Item*> out;
  for (WakeNode* n = q.pop_all(); n;) {
    WakeNode* next = n->next;
    out.push_back(static_cast<Item*>(n));
    n = next;
  }
  return out;
}

}  // namespace

TEST(WakeQueue, EmptyPopReturnsNull) {
  WakeQueue q;
  EXPECT_EQ(q.pop_all(), nullptr);
  EXPECT_FALSE(q.has_items());
}

TEST(WakeQueue, PopAllIsFifo) {
  WakeQueue q;
  Item items[5];
  for (int i = 0; i < 5; ++i) {
    items[i].seq = i;
    q.push(&items[i]);
  }
  EXPECT_TRUE(q.has_items());
  auto got = drain(q);
  ASSERT_EQ(got.size(), 5u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(got[i]->seq, i);
  EXPECT_FALSE(q.has_items());
}

TEST(WakeQueue, WaitTimesOutWhenEmpty) {
  WakeQueue q;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(q.wait(std::chrono::microseconds(0), 20));
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(15));
}

TEST(WakeQueue, PushWakesBlockedConsumer) {
  WakeQueue q;
  Item item;
  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    q.push(&item);
  });
  EXPECT_TRUE(q.wait(std::chrono::microseconds(0), 5000));
  producer.join();
  q.clear_wakeup();
  auto got = drain(q);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], &item);
}

TEST(WakeQueue, NoLostWakeupAcrossClearAndPop) {
  // The consumer protocol is clear_wakeup() then pop_all(): an item pushed after the pop must
  // leave the eventfd readable so the next wait() returns at once.
  WakeQueue q;
  Item a, b;
  q.push(&a);
  q.clear_wakeup();
  EXPECT_EQ(drain(q).size(), 1u);
  q.push(&b);
  EXPECT_TRUE(q.wait(std::chrono::microseconds(0), 0));
  q.clear_wakeup();
  EXPECT_EQ(drain(q).size(), 1u);
}

TEST(WakeQueue, ManyProducersEveryItemOnceInPerProducerOrder) {
  constexpr int kProducers = 4;
  constexpr int kPerProducer = 50000;
  WakeQueue q;
  std::vector<std::vector<Item>> items(kProducers, std::vector<Item>(kPerProducer));
  std::vector<std::thread> threads;
  for (int p = 0; p < kProducers; ++p) {
    threads.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) {
        items[p][i].producer = p;
        items[p][i].seq = i;
        q.push(&items[p][i]);
      }
    });
  }
  std::vector<int> next(kProducers, 0);
  int total = 0;
  while (total < kProducers * kPerProducer) {
    q.wait(std::chrono::microseconds(50), 1000);
    q.clear_wakeup();
    for (Item* it : drain(q)) {
      ASSERT_EQ(it->seq, next[it->producer]) << "producer " << it->producer;
      ++next[it->producer];
      ++total;
    }
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(total, kProducers * kPerProducer);
  EXPECT_EQ(q.pop_all(), nullptr);
}
