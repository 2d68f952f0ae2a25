// Helpers for the Postgres pool tests: synchronous waits with deadlines, a blocking admin
// connection, a scratch Postgres cluster that may be stopped and restarted, and a tiny fake server
// that misbehaves on COMMIT.
#pragma once

#include "pg/pool.hpp"

#include <libpq-fe.h>

#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace pgtest {

using namespace std::chrono_literals;
using puff::pg::Format;
using puff::pg::Query;
using puff::pg::Result;

inline std::string env_url() {
  const char* u = std::getenv("PUFF_TEST_POSTGRES_URL");
  return u ? u : "";
}

inline Query sql(std::string text, bool prepare = true) {
  Query q;
  q.sql = std::move(text);
  q.prepare = prepare;
  return q;
}

inline Query sql1(std::string text, const std::string& param, bool prepare = true) {
  Query q = sql(std::move(text), prepare);
  q.params.add(param);
  return q;
}

inline std::int32_t int4(const Result::Cell& c) {
  std::uint32_t v = 0;
  std::memcpy(&v, c.data, 4);
  return static_cast<std::int32_t>(ntohl(v));
}

inline std::int64_t int8(const Result::Cell& c) {
  std::uint32_t hi = 0, lo = 0;
  std::memcpy(&hi, c.data, 4);
  std::memcpy(&lo, c.data + 4, 4);
  return static_cast<std::int64_t>((static_cast<std::uint64_t>(ntohl(hi)) << 32) | ntohl(lo));
}

/** One result, delivered once (extra deliveries are counted). Shared so a late callback after a
 *  failed wait does not touch a dead stack frame. */
struct Box {
  std::mutex m;
  std::condition_variable cv;
  std::optional<Result> result;
  int calls = 0;

  puff::pg::Callback callback() {
    return [self = this](Result&& r) {
      std::lock_guard<std::mutex> lock(self->m);
      ++self->calls;
      if (!self->result) self->result = std::move(r);
      self->cv.notify_all();
    };
  }
  /** The result, or a synthetic "TIMEOUT" error after `d`. */
  Result wait(std::chrono::milliseconds d = 10000ms) {
    std::unique_lock<std::mutex> lock(m);
    if (!cv.wait_for(lock, d, [&] { return result.has_value(); }))
      return Result::failure(puff::pg::ErrorInfo::make("TIMEOUT", "no result in time"));
    return *result;
  }
};

inline std::shared_ptr<Box> box() { return std::make_shared<Box>(); }

/** Callback keeping `b` alive. */
inline puff::pg::Callback into(const std::shared_ptr<Box>& b) {
  return [b](Result&& r) { b->callback()(std::move(r)); };
}

inline Result run(puff::pg::Pool& pool, Query q, std::chrono::milliseconds d = 10000ms) {
  auto b = box();
  pool.query(std::move(q), into(b));
  return b->wait(d);
}

inline Result run(const puff::pg::Lease& lease, Query q, std::chrono::milliseconds d = 10000ms) {
  auto b = box();
  lease.query(std::move(q), into(b));
  return b->wait(d);
}

/** Counts completions; wait_for(n) with a deadline. */
struct Counter {
  std::mutex m;
  std::condition_variable cv;
  int n = 0;
  void add() {
    std::lock_guard<std::mutex> lock(m);
    ++n;
    cv.notify_all();
  }
  bool wait_for(int target, std::chrono::milliseconds d) {
    std::unique_lock<std::mutex> lock(m);
    return cv.wait_for(lock, d, [&] { return n >= target; });
  }
  int get() {
    std::lock_guard<std::mutex> lock(m);
    return n;
  }
};

/** A blocking libpq connection for set-up and inspection (never through the pool under test). */
class Admin {
 public:
  explicit Admin(const std::string& url) : c_(PQconnectdb(url.c_str())) {}
  ~Admin() { PQfinish(c_); }
  bool ok() const { return PQstatus(c_) == CONNECTION_OK; }
  std::string error() const { return PQerrorMessage(c_); }
  /** Runs `q`; returns the first cell of the first row as text ("" if none), or "ERROR: ...". */
  std::string exec(const std::string& q) {
    PGresult* r = PQexec(c_, q.c_str());
    std::string out;
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK) {
      if (PQntuples(r) > 0 && PQnfields(r) > 0) out = PQgetvalue(r, 0, 0);
    } else if (st != PGRES_COMMAND_OK) {
      out = std::string("ERROR: ") + PQresultErrorMessage(r);
    }
    PQclear(r);
    return out;
  }
  PGconn* raw() { return c_; }

 private:
  PGconn* c_;
};

/** A throwaway Postgres 15 cluster on a free port: stop()/start() it at will without disturbing the
 *  shared test server. Needs /usr/lib/postgresql/15/bin (or PUFF_PG_BIN); as root, runs the server
 *  as the `postgres` user. */
class ScratchPostgres {
 public:
  ScratchPostgres();
  ~ScratchPostgres();
  /** Empty when the cluster could not be created (the reason is in error()). */
  const std::string& url() const { return url_; }
  const std::string& error() const { return error_; }
  bool stop(const char* mode = "fast");
  bool start();

 private:
  std::string as_pg(const std::string& cmd) const;
  std::string bin_, dir_, url_, error_;
  int port_ = 0;
  bool root_ = false;
};

/** A fake Postgres that speaks just enough of the protocol for BEGIN/INSERT/COMMIT and then, on
 *  COMMIT, either answers CommandComplete and drops the connection before ReadyForQuery, or drops
 *  it without answering. */
class FakeServer {
 public:
  enum class OnCommit { AnswerThenDrop, DropSilently };
  explicit FakeServer(OnCommit mode);
  ~FakeServer();
  int port() const { return port_; }
  std::string url() const {
    return "postgresql://fake@127.0.0.1:" + std::to_string(port_) + "/fake?sslmode=disable&gssencmode=disable";
  }

 private:
  void run();
  bool serve(int fd);
  OnCommit mode_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace pgtest
