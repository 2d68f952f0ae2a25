// A Postgres pool per [[postgres]] entry: up to pool_size pipelined libpq connections spread over
// the I/O threads, shared by every caller, plus exclusive leases for transactions.
//
// THREAD RULES (docs/postgres-internals.md §5)
//  - Pool, QueryHandle, Lease and AcquireHandle methods may be called from any thread: the Python
//    thread (the bridge), an I/O thread (an Op's run()), a test's main thread. They never block
//    on I/O and never run a callback before returning.
//  - Each Connection lives on one I/O thread; the pool posts work to it. All libpq calls for a
//    connection happen on its thread, except the blocking PQconnectStartParams (DNS) and PQcancel,
//    which run on the pool's own helper threads.
//  - Query callbacks run on the I/O thread of the connection that ran the query. A query that fails
//    before reaching a connection (pool closed, no server, cancelled while waiting) is failed on
//    some I/O thread. Acquire callbacks run on the leased connection's I/O thread (or some I/O
//    thread on failure). start() callbacks likewise. No pool lock is held while a callback runs.
//  - Callbacks must not block; they may call into the pool again (submit, release, ...).
//  - The pool's shared state (routing, waiters, counters) is behind one mutex, held only for
//    bookkeeping. Each connection's pipeline state is touched by its own thread only.
//  - Ownership: the Pool owns its connections. The core::IoPool must outlive the Pool. Results,
//    handles and leases may outlive the Pool (queries then fail with 08003, "pool closed").
//
// EVERY query completes exactly once: with its result, with the server's error, with a
// connection error (ErrorInfo::connection, SQLSTATE class 08), or with 57014 when cancelled.
#pragma once

#include "pg/connection.hpp"
#include "pg/query.hpp"

#include <cstdint>
#include <functional>
#include <memory>

namespace puff::core {
class IoPool;
}

namespace puff::pg {

namespace detail {
struct PoolCore;
struct LeaseState;
struct AcquireState;
}  // namespace detail

/** A submitted query: cancel it. Copyable; empty handles do nothing. */
class QueryHandle {
 public:
  QueryHandle() = default;
  /** Any thread. Waiting in the pool or queued on a connection: removed, completes with 57014
   *  at once. Running: the server is asked to cancel it (PQcancel, off-loop); it completes with
   *  57014 if the cancel lands before it finishes, else with its result. Finished: nothing. */
  void cancel() const;
  explicit operator bool() const noexcept { return static_cast<bool>(req_); }

 private:
  friend class Pool;
  friend class Lease;
  std::shared_ptr<detail::Request> req_;
  std::weak_ptr<detail::PoolCore> core_;
};

/** One connection pinned for exclusive use (a transaction). Move-only; releasing (or destroying)
 *  it returns the connection to shared use once its queries are done, with a ROLLBACK first if a
 *  transaction is still open. A lease whose connection died fails its remaining queries with
 *  08006; the pool replaces the connection. */
class Lease {
 public:
  Lease() = default;
  Lease(Lease&&) noexcept;
  Lease& operator=(Lease&&) noexcept;
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease();

  /** False when acquiring failed (see error()) or after release(). */
  explicit operator bool() const noexcept;
  /** Why acquiring failed (null on success). */
  const ErrorInfo* error() const noexcept;
  /** Any thread. Runs `q` on the pinned connection, pipelined after the lease's earlier queries
   *  (send BEGIN, the statements and COMMIT without waiting in between if you like: each is its
   *  own segment, and a failed statement makes the later ones fail with 25P02 until ROLLBACK).
   *  COMMIT/END's own result decides the transaction's fate: success means committed (even if
   *  the connection drops right after), a COMMIT answered "ROLLBACK" fails with 25P02, and a
   *  connection lost before COMMIT's answer fails with 08007 (outcome unknown). */
  QueryHandle query(Query q, Callback cb) const;
  /** Any thread; idempotent. */
  void release();
  /** The server process id of the pinned connection (0 if none). */
  int backend_pid() const noexcept;

 private:
  friend class Pool;
  friend struct detail::PoolCore;
  std::shared_ptr<detail::LeaseState> s_;
};

/** A pending acquire_exclusive(): cancel it while it waits. */
class AcquireHandle {
 public:
  AcquireHandle() = default;
  /** Any thread. Still waiting: the callback gets a failed Lease (57014). Already granted: no
   *  effect (the callback runs with the lease, which the caller releases or drops). */
  void cancel() const;

 private:
  friend class Pool;
  std::shared_ptr<detail::AcquireState> s_;
  std::weak_ptr<detail::PoolCore> core_;
};

struct PoolStats {
  std::size_t connections = 0;  // ready
  std::size_t connecting = 0;
  std::size_t pinned = 0;       // leased for exclusive use
  std::size_t in_flight = 0;    // requests routed to connections and not finished
  std::size_t waiting = 0;      // shared queries waiting for a connection
  std::size_t waiting_exclusive = 0;
  std::uint64_t opened = 0;     // successful connects
  std::uint64_t lost = 0;       // connections that died while ready
  std::uint64_t reconnects = 0;  // connections opened to replace lost ones
  std::uint64_t connect_failures = 0;
};

class Pool {
 public:
  /** Any thread. Throws std::invalid_argument (with libpq's message) on a malformed URL or
   *  pool_size 0. Opens nothing until start() or the first query. */
  Pool(core::IoPool& io, PoolSettings settings);
  /** close(), then waits for the helper threads (a PQcancel in progress) to return. */
  ~Pool();
  Pool(const Pool&) = delete;
  Pool& operator=(const Pool&) = delete;

  /** Eager start: opens min_connections connections; `done(nullptr)` when the first is ready, or
   *  `done(&error)` when the first attempt failed (e.g. "could not connect ... Connection refused";
   *  08001) — startup should report that and stop. Afterwards the pool keeps min_connections
   *  open, retrying with backoff. */
  void start(std::function<void(const ErrorInfo*)> done);

  /** A query outside any transaction: pipelined on the shared connection with the fewest requests
   *  in flight (a new connection is opened, up to pool_size, when all are busy). With no ready
   *  connection it waits for one; if connecting fails while nothing is open, waiting queries fail
   *  with 08001 (nothing waits forever). BEGIN/START TRANSACTION is refused (25000): take a
   *  Lease. Session-changing statements (SET, LISTEN, temp tables) affect whoever shares the
   *  connection: use a Lease for those too. */
  QueryHandle query(Query q, Callback cb);

  /** Pins a connection for exclusive use and passes the Lease to `cb`. An unpinned ready
   *  connection is taken at once (shared queries already in its pipeline finish first, as their
   *  own transactions); otherwise a new connection is opened if below pool_size, else the caller
   *  waits (FIFO) for a release. While every connection is pinned, shared queries wait too. */
  AcquireHandle acquire_exclusive(std::function<void(Lease&&)> cb);

  /** Any thread; idempotent. Fails waiting and in-flight queries with 08003 and closes every
   *  connection (on their threads, asynchronously). */
  void close();

  PoolStats stats() const;
  const PoolSettings& settings() const noexcept;

 private:
  std::shared_ptr<detail::PoolCore> core_;
};

}  // namespace puff::pg
