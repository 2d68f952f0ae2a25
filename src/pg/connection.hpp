// One libpq connection in non-blocking pipeline mode, owned by one I/O thread.
//
// State machine (docs/postgres-internals.md §1):
//
//   Idle --start()--> Connecting --PQconnectPoll OK--> Ready --socket error / EOF--> Closed
//                          |  timeout or FAILED             |  close()
//                          v                                v
//                        Closed (failed event)            Closed (lost event)
//
// In Ready, every request is its own pipeline segment: [Parse] Bind/Execute, then Sync. The
// server commits each segment's implicit transaction at its Sync and recovers from an error at
// the next Sync, so an error (or a cancel) in one request never aborts another caller's request,
// and never rolls back another caller's write. Results come back in FIFO order.
//
// Threads: everything here runs on the connection's I/O thread (the io_context given to the
// constructor), except the constructor, context() and load(), which any thread may call. The
// Pool posts work to that thread. Callbacks (Events, request callbacks) run on that thread.
#pragma once

#include "pg/query.hpp"

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace puff::pg {

class Connection;

/** The pool's settings (one per [[postgres]] entry). */
struct PoolSettings {
  std::string name = "default";
  /** libpq URL (postgres://user:pass@host:port/db?sslmode=...) or key=value string. Every libpq
   *  option passes through (sslmode, sslrootcert, application_name, options, target_session_attrs,
   *  ...). */
  std::string url;
  std::uint32_t pool_size = 10;
  std::uint32_t connect_timeout_ms = 5000;
  /** 0 = off; otherwise sent at connect time as `options=-c statement_timeout=<ms>` (appended to
   *  any `options` of the URL): no extra round trip. */
  std::uint32_t statement_timeout_ms = 0;
  /** Prepared statements kept per connection (LRU; evicted ones are DEALLOCATEd). 0 = no cache:
   *  every query runs as an unnamed statement. */
  std::uint32_t max_prepared = 256;
  /** Connections opened by Pool::start() and kept open (reconnected) while the pool lives. */
  std::uint32_t min_connections = 1;
  /** The first connection (and whichever replaces it) lives on IoPool::driven(), the loop the
   *  Python thread runs while it waits, instead of on an I/O thread: a caller that runs one query
   *  at a time gets it (routing prefers the first connection among idle ones) and its round trip
   *  needs no thread hand-off. Only for a driven() that its owner keeps running. */
  bool first_on_driven = false;
};

/** Connection keywords resolved from the settings, ready for PQconnectStartParams. */
class ConnInfo {
 public:
  /** Parses `s.url` (either form) with PQconninfoParse. Null with `*error` set on a bad URL. */
  static std::shared_ptr<const ConnInfo> make(const PoolSettings& s, std::string* error);

  const char* const* keywords() const noexcept { return kw_ptrs_.data(); }
  const char* const* values() const noexcept { return val_ptrs_.data(); }
  /** "host:port/dbname" for messages (never the password). */
  const std::string& describe() const noexcept { return describe_; }
  std::uint32_t connect_timeout_ms() const noexcept { return connect_timeout_ms_; }
  std::uint32_t max_prepared() const noexcept { return max_prepared_; }

 private:
  std::vector<std::string> keys_, vals_;
  std::vector<const char*> kw_ptrs_, val_ptrs_;
  std::string describe_;
  std::uint32_t connect_timeout_ms_ = 5000;
  std::uint32_t max_prepared_ = 256;
};

namespace detail {

/** One submitted query: shared by the pool, its handle and the connection running it. */
struct Request {
  Query query;
  Callback done;
  /** Delivers `r` to the callback unless already delivered. Any thread; exactly once. */
  bool finish(Result&& r);
  bool finished() const noexcept { return finished_.load(std::memory_order_acquire); }

  // Guarded by the pool's mutex:
  std::weak_ptr<Connection> conn;  // where it was routed (for cancel)
  bool in_pool_queue = false;

  // Set before routing, then read only:
  bool exclusive = false;  // sent on a lease (inside the lease's session/transaction)

  /** Set by cancel() on the thread of the connection it was routed to (which may be a previous
   *  one, if it was handed back and re-routed meanwhile); read by whichever runs it. */
  std::atomic<bool> cancel_requested{false};

  // The running connection's thread only:
  bool retried = false;  // re-sent once after a cancel meant for another request hit it
  /** Submitted on the thread that runs IoPool::driven() (the Python thread): it may run on the
   *  connection that lives there. From any other thread it must not, since that thread's caller
   *  may be what the Python thread is waiting for (a deadlock). */
  bool may_use_driven = true;
  std::uint8_t cancels_sent = 0;

 private:
  std::atomic<bool> finished_{false};
};

}  // namespace detail

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  enum class State : std::uint8_t { Idle, Connecting, Ready, Closed };

  /** What the connection tells its owner. All on the connection's thread. */
  struct Events {
    std::function<void(Connection&)> ready;                    // pipeline mode on, ready for work
    std::function<void(Connection&, const ErrorInfo&)> failed;  // connect failed (before Ready)
    std::function<void(Connection&, const ErrorInfo&)> lost;    // was Ready; now Closed
    /** Shared requests that never reached the wire (queued here when it died, or submitted after):
     *  the owner may route them elsewhere. Called after `lost`. */
    std::function<void(std::vector<std::shared_ptr<detail::Request>>&&)> handback;
    /** Runs a blocking call (PQconnectStartParams' DNS lookup, PQcancel) off the I/O thread. */
    std::function<void(std::function<void()>)> offload;
    /** A NOTIFY for a channel this connection LISTENs to (channel, payload, sender's pid). Unset:
     *  notifications are dropped (a shared connection that ran LISTEN does not accumulate them). */
    std::function<void(std::string_view, std::string_view, int)> notify;
  };

  /** Any thread. `ctx` is the I/O thread's context; the connection lives on it. */
  Connection(boost::asio::io_context& ctx, std::shared_ptr<const ConnInfo> info, Events events);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  boost::asio::io_context& context() const noexcept { return ctx_; }
  /** Requests routed here and not finished (the pool's "in flight"). Any thread; the pool adds
   *  one when it routes a request here, the connection subtracts when it finishes or hands one
   *  back. */
  std::atomic<int>& load() noexcept { return load_; }

  // ---- the connection's thread only ----
  State state() const noexcept { return state_; }
  /** Starts the asynchronous connect (offloaded PQconnectStartParams, then PQconnectPoll on the
   *  socket), bounded by the connect timeout. Ends in Events::ready or Events::failed. */
  void start();
  /** Queues `req` (sent when the pipeline has room). On a dead connection: shared requests are
   *  handed back, exclusive ones fail with 08006. */
  void submit(std::shared_ptr<detail::Request> req);
  /** Cancels `req`: not yet sent -> removed and finished with 57014; in flight -> PQcancel (off
   *  the I/O thread) once it is at the head of the pipeline, so the cancel cannot hit a request
   *  ahead of it; finished -> nothing. */
  void cancel(const std::shared_ptr<detail::Request>& req);
  /** Exclusive use begins: only the lease's requests arrive from now on (the pool sees to it). */
  void pin();
  /** Exclusive use ends: once the lease's requests are done, a transaction still open is rolled
   *  back, then `done` runs (on this thread). Not called if the connection dies first. */
  void unpin(std::function<void()> done);
  bool pinned() const noexcept { return pinned_; }
  /** Fails everything with `why` and closes. No events. */
  void close(const ErrorInfo& why);
  int backend_pid() const noexcept { return pid_; }
  std::size_t prepared_count() const noexcept { return stmts_.size(); }
  std::size_t in_pipeline() const noexcept { return inflight_.size(); }
  /** Between a COPY's Start and its final result (pipeline mode is off meanwhile). */
  bool in_copy() const noexcept { return copy_ != CopyMode::Off; }

  /** Requests sent but not answered, at most (more wait in the connection's queue). */
  static constexpr std::size_t kMaxPipelineDepth = 2048;
  /** COPY OUT: a Read returns once this many bytes of rows are buffered (or no more are ready). */
  static constexpr std::size_t kCopyChunk = 64 * 1024;
  /** PQcancel attempts per request (one, then retries 200 ms apart while it still runs). */
  static constexpr int kMaxCancels = 5;

 private:
  struct Io;
  struct Stmt {
    std::string name;  // s<N>
    std::string key;   // sql + '\0' + parameter type oids
    bool failed = false;  // its Parse failed: requests that ran it report the Parse error
    std::shared_ptr<const ErrorInfo> parse_error;
  };
  enum class Kind : std::uint8_t { User, Deallocate, Rollback };
  struct Pending {
    std::shared_ptr<detail::Request> req;  // null for internal statements
    Kind kind = Kind::User;
    std::shared_ptr<Stmt> stmt;  // when run as a prepared statement
    bool parse_sent = false;     // this segment starts with the Parse of `stmt`
    bool commit = false;         // COMMIT/END on a lease: its own result decides the outcome
    int step = 0;                // which command of the segment the next result belongs to
    bool have_result = false;
    Result result;               // the Bind/Execute result
    std::uint64_t seq = 0;
  };

  void connect_started(PGconn* conn);
  void poll_connect(int want_write);
  void connect_failed(ErrorInfo e);
  void established();
  bool sync_socket();  // (re)wraps a dup() of PQsocket when libpq switched sockets
  void arm_read();
  void arm_write();
  /** arm_read()/arm_write()'s wait: one socket readiness wait, then on_readable()/on_writable(). */
  void wait_socket(bool for_write);
  void on_readable();
  void on_writable();
  void pump();
  bool send_one(const std::shared_ptr<detail::Request>& req);
  bool send_internal(Kind kind, const std::string& sql);
  void drain();
  void complete_head();
  void lose(std::string reason);
  void fail_all(const ErrorInfo& base, bool handback);
  void maybe_issue_cancel();
  void cancel_returned();
  void check_unpin();
  std::shared_ptr<Stmt> lookup_stmt(const Query& q, bool* created);
  void drop_stmt(const std::shared_ptr<Stmt>& s);
  void finish(const std::shared_ptr<detail::Request>& req, Result&& r);
  void deliver_notifies();

  // COPY (connection_copy.cpp): pipeline mode is left for its duration.
  enum class CopyMode : std::uint8_t { Off, Starting, In, Out, Ending };
  /** Serves queued COPY steps; false when the ordinary pipeline may run (no COPY involved). */
  bool copy_pump();
  void copy_start(std::shared_ptr<detail::Request> req);
  void copy_step(std::shared_ptr<detail::Request> req);
  /** After input arrived or output drained: advances the COPY in progress. */
  void copy_io();
  void copy_read();
  void copy_finished();
  void copy_cancel();

  boost::asio::io_context& ctx_;
  std::shared_ptr<const ConnInfo> info_;
  Events ev_;
  std::unique_ptr<Io> io_;
  PGconn* pg_ = nullptr;
  State state_ = State::Idle;
  std::atomic<int> load_{0};
  int pid_ = 0;
  std::uint64_t gen_ = 0;  // bumps when the socket wrapper changes: stale handlers ignore themselves
  bool reading_ = false;
  bool writing_ = false;
  bool flush_pending_ = false;  // libpq holds output the socket did not take
  bool pump_posted_ = false;    // a pump() is queued on the loop
  bool got_result_ = false;     // a result arrived since the last NULL/Sync boundary
  std::string fatal_;           // a FATAL message the server sent before closing

  std::deque<std::shared_ptr<detail::Request>> unsent_;
  std::deque<Pending> inflight_;
  std::uint64_t seq_ = 0;

  // Prepared statements: LRU list (front = most recent) and index by key.
  std::list<std::shared_ptr<Stmt>> lru_;
  std::unordered_map<std::string, std::list<std::shared_ptr<Stmt>>::iterator> stmts_;
  std::vector<std::string> to_deallocate_;
  std::uint64_t stmt_counter_ = 0;

  // Exclusive use.
  bool pinned_ = false;
  bool unpinning_ = false;
  bool rollback_sent_ = false;
  int rollbacks_ = 0;  // ROLLBACKs sent for the current unpin
  std::function<void()> unpinned_;

  // COPY in progress.
  CopyMode copy_ = CopyMode::Off;
  std::shared_ptr<detail::Request> copy_req_;  // the step being served
  std::string copy_buf_;                        // COPY OUT rows read for the pending Read
  bool copy_have_final_ = false;
  bool copy_done_ = false;     // Ending: every result of the COPY statement has arrived
  bool copy_discard_ = false;  // COPY OUT given up (End/Fail): rows are read and dropped
  Result copy_final_;          // the COPY statement's own result

  // Cancel: one PQcancel at a time; requests sent up to `collateral_hi_` may have been hit by it.
  bool cancel_running_ = false;
  std::shared_ptr<detail::Request> cancel_target_;
  std::uint64_t collateral_hi_ = 0;
};

}  // namespace puff::pg
