// The HTTP server with its connections on IoPool::driven() (ServerOptions::on_driven), the loop
// the Python thread runs itself: accept, parse, dispatch and write all happen on the owner thread
// inside its waits, and responses written during a post batch leave at flush_post_batch().
// The rest of the server is tested end to end in tests/py (test_serve_*.py).
#include "core/io_pool.hpp"
#include "core/post_batch.hpp"
#include "core/wake_queue.hpp"
#include "http/server.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using puff::core::IoPool;
using puff::core::WakeQueue;

namespace {

struct Wake : puff::core::WakeNode {};

/** Collects requests and wakes the owner through its queue, as the Python bridge does. */
class Recorder final : public puff::http::Handler {
 public:
  explicit Recorder(WakeQueue& q) : q_(q) {}
  void on_request(std::shared_ptr<puff::http::Exchange> ex) override {
    threads.push_back(std::this_thread::get_id());
    pending.push_back(std::move(ex));
    q_.push(new Wake);
  }
  std::vector<std::thread::id> threads;
  std::vector<std::shared_ptr<puff::http::Exchange>> pending;

 private:
  WakeQueue& q_;
};

int connect_to(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

/** Reads until `count` occurrences of `marker` arrived (or EOF / timeout). */
std::string read_until(int fd, const std::string& marker, int count) {
  std::string got;
  char buf[4096];
  auto seen = [&] {
    int n = 0;
    for (std::size_t p = got.find(marker); p != std::string::npos; p = got.find(marker, p + 1)) ++n;
    return n;
  };
  while (seen() < count) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

void drain_queue(WakeQueue& q) {
  q.clear_wakeup();
  for (auto* n = q.pop_all(); n;) {
    auto* next = n->next;
    delete static_cast<Wake*>(n);
    n = next;
  }
}

/** Polls the owner's loop until `done()` or 5 s pass; returns done(). */
template <class Done>
bool poll_until(IoPool& pool, Done done) {
  auto until = std::chrono::steady_clock::now() + 5s;
  while (!done() && std::chrono::steady_clock::now() < until) {
    pool.poll_driven();
    std::this_thread::sleep_for(1ms);
  }
  return done();
}

/** An I/O pool with a server listening on its driven loop, and the queue its requests wake. */
struct DrivenServer {
  explicit DrivenServer(std::size_t io_threads) : pool(io_threads), rec(std::make_shared<Recorder>(q)) {
    puff::http::ServerOptions opts;
    opts.on_driven = true;
    server = std::make_unique<puff::http::Server>(pool, opts, rec);
    port = server->listen_tcp("127.0.0.1", 0).port;
  }
  IoPool pool;
  WakeQueue q;
  std::shared_ptr<Recorder> rec;
  std::unique_ptr<puff::http::Server> server;
  std::uint16_t port = 0;
};

}  // namespace

TEST(ServerOnDriven, ServesEveryRequestOnTheOwnerThread) {
  DrivenServer ds(1);
  ASSERT_NE(ds.port, 0);
  ASSERT_TRUE(ds.server->on_driven());

  std::atomic<bool> done{false};
  std::string replies;
  std::thread client([&] {
    int fd = connect_to(ds.port);
    if (fd >= 0) {
      // Two pipelined requests in one write, then a third after their answers.
      std::string two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
      (void)!::write(fd, two.data(), two.size());
      replies = read_until(fd, "\r\n\r\nok", 2);
      std::string third = "GET /c HTTP/1.1\r\nHost: x\r\n\r\n";
      (void)!::write(fd, third.data(), third.size());
      replies += read_until(fd, "\r\n\r\nok", 1);
      ::close(fd);
    }
    done = true;
    ds.q.push(new Wake);
  });

  std::vector<std::string> paths;
  auto until = std::chrono::steady_clock::now() + 10s;
  while (!done && std::chrono::steady_clock::now() < until) {
    ds.pool.wait_driven(ds.q, 0us, -1);
    drain_queue(ds.q);
    // Answer as the Python thread does: inside a post batch, whose flush writes the socket here.
    puff::core::open_post_batch();
    for (auto& ex : ds.rec->pending) {
      paths.emplace_back(ex->path);
      ex->write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true);
    }
    ds.rec->pending.clear();
    puff::core::flush_post_batch();
  }
  client.join();
  ASSERT_TRUE(done.load());
  EXPECT_EQ(paths, (std::vector<std::string>{"/a", "/b", "/c"}));
  for (auto id : ds.rec->threads) EXPECT_EQ(id, std::this_thread::get_id());
  EXPECT_EQ(replies.find("HTTP/1.1 200 OK"), 0u);
  int oks = 0;
  for (std::size_t p = replies.find("\r\n\r\nok"); p != std::string::npos; p = replies.find("\r\n\r\nok", p + 1)) ++oks;
  EXPECT_EQ(oks, 3);

  // Closing happens on the loop too: the owner polls it until the connections are gone.
  ds.server->stop_accepting();
  ds.server->close_all();
  EXPECT_TRUE(poll_until(ds.pool, [&] { return ds.server->connections() == 0; }));
  ds.server.reset();
  drain_queue(ds.q);
}

TEST(ServerOnDriven, NothingIsServedWhileTheOwnerDoesNotRunItsLoop) {
  DrivenServer ds(2);
  int fd = connect_to(ds.port);  // the kernel completes the handshake; nobody accepts yet
  ASSERT_GE(fd, 0);
  std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
  std::this_thread::sleep_for(50ms);
  EXPECT_TRUE(ds.rec->pending.empty());  // no I/O thread took it
  auto until = std::chrono::steady_clock::now() + 5s;
  while (ds.rec->pending.empty() && std::chrono::steady_clock::now() < until) ds.pool.wait_driven(ds.q, 0us, -1);
  ASSERT_EQ(ds.rec->pending.size(), 1u);
  ds.rec->pending.front()->write("HTTP/1.1 204 No Content\r\n\r\n", true);  // outside a batch: a plain post
  ds.rec->pending.clear();
  std::string got;
  std::atomic<bool> read{false};
  std::thread reader([&] {
    got = read_until(fd, "\r\n\r\n", 1);
    read = true;
  });
  poll_until(ds.pool, [&] { return read.load(); });
  reader.join();
  EXPECT_EQ(got.rfind("HTTP/1.1 204", 0), 0u);
  ::close(fd);
  ds.server->close_all();
  EXPECT_TRUE(poll_until(ds.pool, [&] { return ds.server->connections() == 0; }));
  ds.server.reset();
  drain_queue(ds.q);
}

namespace {

/** Like Recorder, for requests that arrive on I/O threads and on the owner's loop alike. */
class LockedRecorder final : public puff::http::Handler {
 public:
  explicit LockedRecorder(WakeQueue& q) : q_(q) {}
  void on_request(std::shared_ptr<puff::http::Exchange> ex) override {
    {
      std::lock_guard<std::mutex> lock(m);
      seen.emplace_back(std::string(ex->path), std::this_thread::get_id());
      pending.push_back(std::move(ex));
    }
    q_.push(new Wake);
  }
  std::mutex m;
  std::vector<std::pair<std::string, std::thread::id>> seen;
  std::vector<std::shared_ptr<puff::http::Exchange>> pending;

 private:
  WakeQueue& q_;
};

}  // namespace

TEST(ServerAdaptive, PlacesNewConnectionsOnTheOwnerLoopOrAnIoThread) {
  IoPool pool(1);
  WakeQueue q;
  auto rec = std::make_shared<LockedRecorder>(q);
  puff::http::ServerOptions opts;
  opts.adaptive = true;
  opts.placement.to_python_us = -1;  // once measured, whatever this thread costs is too dear
  opts.placement.to_io_us = -1;
  opts.placement.busy = -1;
  opts.placement.min_window = 0ms;
  opts.placement.min_units = 1;
  auto server = std::make_unique<puff::http::Server>(pool, opts, rec);
  std::uint16_t port = server->listen_tcp("127.0.0.1", 0).port;
  ASSERT_TRUE(server->on_driven());
  EXPECT_FALSE(pool.driven_in_use());  // listeners stay on the I/O threads

  std::atomic<bool> done{false};
  std::string replies;
  std::thread client([&] {
    for (const char* path : {"/first", "/second"}) {  // one request per connection
      int fd = connect_to(port);
      if (fd < 0) break;
      std::string req = std::string("GET ") + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
      (void)!::write(fd, req.data(), req.size());
      replies += read_until(fd, "\r\n\r\nok", 1);
      ::close(fd);
    }
    done = true;
    q.push(new Wake);
  });
  auto until = std::chrono::steady_clock::now() + 10s;
  while (!done && std::chrono::steady_clock::now() < until) {
    pool.wait_driven(q, 0us, -1);
    drain_queue(q);
    puff::core::open_post_batch();
    std::lock_guard<std::mutex> lock(rec->m);
    for (auto& ex : rec->pending) ex->write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true);
    rec->pending.clear();
    puff::core::flush_post_batch();
  }
  client.join();
  ASSERT_TRUE(done.load());
  {
    std::lock_guard<std::mutex> lock(rec->m);
    ASSERT_EQ(rec->seen.size(), 2u);
    EXPECT_EQ(rec->seen[0].first, "/first");
    EXPECT_EQ(rec->seen[0].second, std::this_thread::get_id());  // before any estimate: the owner's loop
    EXPECT_EQ(rec->seen[1].first, "/second");
    EXPECT_NE(rec->seen[1].second, std::this_thread::get_id());  // then an I/O thread
  }
  int oks = 0;
  for (std::size_t p = replies.find("\r\n\r\nok"); p != std::string::npos; p = replies.find("\r\n\r\nok", p + 1)) ++oks;
  EXPECT_EQ(oks, 2);
  puff::http::Server::PlacementStats st = server->placement();
  EXPECT_EQ(st.on_io, 1u);
  EXPECT_EQ(st.on_python, 1u);
  EXPECT_GE(st.python_us_per_unit, 0.0);

  // The connection on the owner's loop held it in use; closed, it let go.
  server->stop_accepting();
  server->close_all();
  EXPECT_TRUE(poll_until(pool, [&] { return server->connections() == 0 && !pool.driven_in_use(); }));
  server.reset();
  drain_queue(q);
}

TEST(ServerAdaptive, AConnectionPlacedJustBeforeTheServerStopsIsClosed) {
  IoPool pool(1);
  WakeQueue q;
  auto rec = std::make_shared<LockedRecorder>(q);
  puff::http::ServerOptions opts;
  opts.adaptive = true;  // nothing measured yet: the owner's loop
  auto server = std::make_unique<puff::http::Server>(pool, opts, rec);
  std::uint16_t port = server->listen_tcp("127.0.0.1", 0).port;
  int fd = connect_to(port);
  ASSERT_GE(fd, 0);
  // Accepted on the I/O thread and handed to the owner's loop, which has not run yet.
  auto until = std::chrono::steady_clock::now() + 5s;
  while (server->placement().on_python == 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
  ASSERT_EQ(server->placement().on_python, 1u);
  server->stop_accepting();
  server->close_all();
  std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  (void)!::write(fd, req.data(), req.size());
  std::atomic<bool> eof{false};
  std::thread reader([&] {
    char buf[64];
    eof = ::read(fd, buf, sizeof buf) <= 0;  // EOF, or a reset (the request was never read)
  });
  poll_until(pool, [&] { return eof.load() && !pool.driven_in_use(); });
  reader.join();
  EXPECT_TRUE(eof.load());  // closed, not answered by a stopped server
  EXPECT_FALSE(pool.driven_in_use());
  {
    std::lock_guard<std::mutex> lock(rec->m);
    EXPECT_TRUE(rec->seen.empty());
  }
  EXPECT_EQ(server->connections(), 0u);
  ::close(fd);
  server.reset();
  drain_queue(q);
}
