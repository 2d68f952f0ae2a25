#include "pg/connection.hpp"

#include "core/post_batch.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace puff::pg {

namespace asio = boost::asio;

namespace {

std::string trimmed(const char* s) {
  std::string out = s ? s : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

bool is_fatal(const Result& r) {
  const std::string& sev = r.error().severity;
  return !r.ok() && (sev == "FATAL" || sev == "PANIC");
}

bool is_aborted(const Result& r) { return r.pg() && PQresultStatus(r.pg()) == PGRES_PIPELINE_ABORTED; }

/** An ERROR the server sent about the statement itself (not FATAL, not one libpq made up when the
 *  connection broke, which has no SQLSTATE): the statement did not take effect. */
bool is_statement_error(const Result& r) { return !r.ok() && !is_fatal(r) && !is_aborted(r) && !r.error().sqlstate.empty(); }

/** COMMIT answered with the tag ROLLBACK (the transaction had failed): a failure, not a success. */
Result commit_outcome(Result&& r) {
  if (r.ok() && r.command_tag() == "ROLLBACK")
    return Result::failure(ErrorInfo::make(sqlstate::kInFailedTransaction,
                                           "COMMIT did not commit: the transaction had failed and was rolled back"));
  return std::move(r);
}

// Owns a PGconn between the offloaded PQconnectStartParams and the I/O thread taking it over (the
// hand-off is dropped, not run, if the loop stops first).
struct ConnHolder {
  PGconn* conn = nullptr;
  ~ConnHolder() {
    if (conn) PQfinish(conn);
  }
  PGconn* take() noexcept {
    PGconn* c = conn;
    conn = nullptr;
    return c;
  }
};

}  // namespace

// ---- ConnInfo ---------------------------------------------------------------------------------

std::shared_ptr<const ConnInfo> ConnInfo::make(const PoolSettings& s, std::string* error) {
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(s.url.c_str(), &err);
  if (!opts) {
    if (error) *error = err ? trimmed(err) : std::string("out of memory parsing the connection URL");
    if (err) PQfreemem(err);
    return nullptr;
  }
  std::shared_ptr<ConnInfo> ci(new ConnInfo());
  std::string options, host, hostaddr, port, dbname, user;
  bool has_fallback = false;
  for (PQconninfoOption* o = opts; o->keyword; ++o) {
    if (!o->val) continue;
    std::string k = o->keyword;
    if (k == "options") {
      options = o->val;
      continue;
    }
    if (k == "fallback_application_name") has_fallback = true;
    if (k == "host") host = o->val;
    if (k == "hostaddr") hostaddr = o->val;
    if (k == "port") port = o->val;
    if (k == "dbname") dbname = o->val;
    if (k == "user") user = o->val;
    ci->keys_.push_back(k);
    ci->vals_.push_back(o->val);
  }
  PQconninfoFree(opts);
  if (s.statement_timeout_ms > 0) {
    if (!options.empty()) options += ' ';
    options += "-c statement_timeout=" + std::to_string(s.statement_timeout_ms);
  }
  if (!options.empty()) {
    ci->keys_.push_back("options");
    ci->vals_.push_back(options);
  }
  if (!has_fallback) {
    ci->keys_.push_back("fallback_application_name");
    ci->vals_.push_back("puff");
  }
  for (std::size_t i = 0; i < ci->keys_.size(); ++i) {
    ci->kw_ptrs_.push_back(ci->keys_[i].c_str());
    ci->val_ptrs_.push_back(ci->vals_[i].c_str());
  }
  ci->kw_ptrs_.push_back(nullptr);
  ci->val_ptrs_.push_back(nullptr);
  std::string h = !host.empty() ? host : !hostaddr.empty() ? hostaddr : std::string("localhost");
  ci->describe_ = h + ":" + (port.empty() ? "5432" : port) + "/" + (!dbname.empty() ? dbname : user);
  ci->connect_timeout_ms_ = s.connect_timeout_ms ? s.connect_timeout_ms : 5000;
  ci->max_prepared_ = s.max_prepared;
  return ci;
}

// ---- Request ----------------------------------------------------------------------------------

bool detail::Request::finish(Result&& r) {
  if (finished_.exchange(true, std::memory_order_acq_rel)) return false;
  Callback cb = std::move(done);
  done = nullptr;
  if (cb) cb(std::move(r));
  return true;
}

// ---- Connection -------------------------------------------------------------------------------

struct Connection::Io {
  explicit Io(asio::io_context& ctx) : timer(ctx), retry(ctx) {}
  asio::steady_timer timer;  // connect timeout
  asio::steady_timer retry;  // cancel retry
  std::unique_ptr<asio::posix::stream_descriptor> sock;  // on a dup() of PQsocket
  dev_t dev = 0;
  ino_t ino = 0;
};

Connection::Connection(asio::io_context& ctx, std::shared_ptr<const ConnInfo> info, Events events)
    : ctx_(ctx), info_(std::move(info)), ev_(std::move(events)), io_(std::make_unique<Io>(ctx)) {}

Connection::~Connection() {
  if (io_->sock) {
    boost::system::error_code ec;
    io_->sock->close(ec);
  }
  if (pg_) PQfinish(pg_);
}

void Connection::finish(const std::shared_ptr<detail::Request>& req, Result&& r) {
  load_.fetch_sub(1, std::memory_order_relaxed);
  req->finish(std::move(r));
}

// ---- connect ----------------------------------------------------------------------------------

void Connection::start() {
  if (state_ != State::Idle) return;
  state_ = State::Connecting;
  auto self = shared_from_this();
  io_->timer.expires_after(std::chrono::milliseconds(info_->connect_timeout_ms()));
  io_->timer.async_wait([self](const boost::system::error_code& ec) {
    if (ec || self->state_ != State::Connecting) return;
    self->connect_failed(ErrorInfo::make(sqlstate::kUnableToConnect,
                                         "timeout expired after " + std::to_string(self->info_->connect_timeout_ms()) +
                                             " ms connecting to " + self->info_->describe(),
                                         true));
  });
  // PQconnectStartParams resolves the first host name with a blocking getaddrinfo(): off the loop.
  auto job = [self] {
    auto holder = std::make_shared<ConnHolder>();
    holder->conn = PQconnectStartParams(self->info_->keywords(), self->info_->values(), 0);
    core::post_io(self->ctx_.get_executor(), [self, holder] { self->connect_started(holder->take()); });
  };
  if (ev_.offload)
    ev_.offload(std::move(job));
  else
    job();
}

void Connection::connect_started(PGconn* conn) {
  if (state_ != State::Connecting) {  // timed out or closed meanwhile
    if (conn) PQfinish(conn);
    return;
  }
  pg_ = conn;
  if (!pg_) {
    connect_failed(ErrorInfo::make(sqlstate::kUnableToConnect, "out of memory starting a connection", true));
    return;
  }
  if (PQstatus(pg_) == CONNECTION_BAD) {
    connect_failed(ErrorInfo::make(sqlstate::kUnableToConnect, trimmed(PQerrorMessage(pg_)), true));
    return;
  }
  poll_connect(1);  // libpq: behave as if PQconnectPoll had returned PGRES_POLLING_WRITING
}

void Connection::poll_connect(int want_write) {
  if (!sync_socket()) {
    connect_failed(ErrorInfo::make(sqlstate::kUnableToConnect, "connection has no usable socket: " + trimmed(PQerrorMessage(pg_)), true));
    return;
  }
  auto self = shared_from_this();
  std::uint64_t gen = gen_;
  io_->sock->async_wait(want_write ? asio::posix::stream_descriptor::wait_write : asio::posix::stream_descriptor::wait_read,
                        [self, gen](const boost::system::error_code& ec) {
                          if (gen != self->gen_ || self->state_ != State::Connecting) return;
                          if (ec == asio::error::operation_aborted) return;
                          // On a socket error PQconnectPoll itself reports what went wrong.
                          switch (PQconnectPoll(self->pg_)) {
                            case PGRES_POLLING_OK:
                              self->established();
                              break;
                            case PGRES_POLLING_READING:
                              self->poll_connect(0);
                              break;
                            case PGRES_POLLING_WRITING:
                              self->poll_connect(1);
                              break;
                            default:
                              self->connect_failed(ErrorInfo::make(sqlstate::kUnableToConnect, trimmed(PQerrorMessage(self->pg_)), true));
                              break;
                          }
                        });
}

bool Connection::sync_socket() {
  int fd = PQsocket(pg_);
  if (fd < 0) return false;
  struct stat st {};
  if (::fstat(fd, &st) != 0) return false;
  // Same socket as the one we wrap (compare identities, not numbers: libpq may close its socket
  // and get the same number back for a new one while our dup() keeps the old one open).
  if (io_->sock && io_->sock->is_open() && st.st_dev == io_->dev && st.st_ino == io_->ino) return true;
  if (io_->sock) {
    boost::system::error_code ec;
    io_->sock->close(ec);
  }
  ++gen_;
  reading_ = writing_ = false;
  int dupfd = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dupfd < 0) return false;
  io_->sock = std::make_unique<asio::posix::stream_descriptor>(ctx_);
  boost::system::error_code ec;
  io_->sock->assign(dupfd, ec);
  if (ec) {
    ::close(dupfd);
    io_->sock.reset();
    return false;
  }
  io_->dev = st.st_dev;
  io_->ino = st.st_ino;
  return true;
}

void Connection::connect_failed(ErrorInfo e) {
  if (state_ != State::Connecting) return;
  state_ = State::Closed;
  io_->timer.cancel();
  if (io_->sock) {
    boost::system::error_code ec;
    io_->sock->close(ec);
  }
  if (pg_) {
    PQfinish(pg_);
    pg_ = nullptr;
  }
  e.connection = true;
  auto self = shared_from_this();
  if (ev_.failed) ev_.failed(*this, e);
  fail_all(e, true);
}

void Connection::established() {
  io_->timer.cancel();
  if (PQsetnonblocking(pg_, 1) != 0 || PQenterPipelineMode(pg_) != 1) {
    connect_failed(ErrorInfo::make(sqlstate::kUnableToConnect, "could not enter pipeline mode: " + trimmed(PQerrorMessage(pg_)), true));
    return;
  }
  PQsetNoticeReceiver(pg_, [](void*, const PGresult*) {}, nullptr);
  if (!sync_socket()) {
    connect_failed(ErrorInfo::make(sqlstate::kUnableToConnect, "connection has no usable socket", true));
    return;
  }
  pid_ = PQbackendPID(pg_);
  state_ = State::Ready;
  auto self = shared_from_this();
  if (ev_.ready) ev_.ready(*this);
  pump();
}

// ---- the pipeline -----------------------------------------------------------------------------

void Connection::submit(std::shared_ptr<detail::Request> req) {
  if (req->finished()) {
    load_.fetch_sub(1, std::memory_order_relaxed);
    return;
  }
  if (req->cancel_requested) {  // cancelled while the submit was being posted here
    finish(req, Result::failure(ErrorInfo::make(sqlstate::kQueryCanceled, "canceling statement due to user request (before it was sent)")));
    return;
  }
  if (state_ == State::Closed) {
    if (!req->exclusive && ev_.handback) {
      load_.fetch_sub(1, std::memory_order_relaxed);
      std::vector<std::shared_ptr<detail::Request>> back{std::move(req)};
      ev_.handback(std::move(back));
    } else {
      finish(req, Result::failure(ErrorInfo::make(sqlstate::kConnectionFailure,
                                                   "connection to " + info_->describe() + " is closed", true)));
    }
    return;
  }
  unsent_.push_back(std::move(req));
  // Pump once per loop turn: submits posted back to back go out as one batch.
  if (!pump_posted_) {
    pump_posted_ = true;
    auto self = shared_from_this();
    core::post_io(ctx_.get_executor(), [self] {
      self->pump_posted_ = false;
      self->pump();
    });
  }
}

void Connection::pump() {
  if (state_ != State::Ready) return;
  if (copy_pump()) return;
  while (!flush_pending_ && !unsent_.empty() && inflight_.size() < kMaxPipelineDepth) {
    if (unsent_.front()->query.copy != CopyStep::None) break;  // a COPY waits for the pipeline to drain
    std::shared_ptr<detail::Request> req = std::move(unsent_.front());
    unsent_.pop_front();
    if (req->finished()) {
      load_.fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    if (!send_one(req)) return;
  }
  // Evicted statements are deallocated outside leases: inside one, a failed transaction would
  // refuse the DEALLOCATE (and the server would keep the statement).
  if (!pinned_ && !flush_pending_ && !to_deallocate_.empty()) {
    std::vector<std::string> names;
    names.swap(to_deallocate_);
    for (const auto& n : names)
      if (!send_internal(Kind::Deallocate, "DEALLOCATE " + n)) return;
  }
  check_unpin();
  if (state_ != State::Ready) return;
  arm_read();
  if (flush_pending_) arm_write();
}

std::shared_ptr<Connection::Stmt> Connection::lookup_stmt(const Query& q, bool* created) {
  std::string key;
  const auto& types = q.params.types();
  key.reserve(q.sql.size() + 1 + types.size() * sizeof(Oid));
  key.append(q.sql);
  key.push_back('\0');
  if (!types.empty()) key.append(reinterpret_cast<const char*>(types.data()), types.size() * sizeof(Oid));
  auto it = stmts_.find(key);
  if (it != stmts_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    *created = false;
    return *it->second;
  }
  auto s = std::make_shared<Stmt>();
  s->name = "s" + std::to_string(++stmt_counter_);
  s->key = std::move(key);
  lru_.push_front(s);
  stmts_.emplace(s->key, lru_.begin());
  while (stmts_.size() > info_->max_prepared()) {
    std::shared_ptr<Stmt> victim = lru_.back();
    stmts_.erase(victim->key);
    lru_.pop_back();
    // Sent after every request that used it (the wire is FIFO), so none of them loses it.
    if (!victim->failed) to_deallocate_.push_back(victim->name);
  }
  *created = true;
  return s;
}

void Connection::drop_stmt(const std::shared_ptr<Stmt>& s) {
  auto it = stmts_.find(s->key);
  if (it == stmts_.end() || *it->second != s) return;
  lru_.erase(it->second);
  stmts_.erase(it);
}

bool Connection::send_one(const std::shared_ptr<detail::Request>& req) {
  const Query& q = req->query;
  const Params& p = q.params;
  if (p.size() > 65535) {
    finish(req, Result::failure(ErrorInfo::make(sqlstate::kTooManyParameters, "a statement takes at most 65535 parameters")));
    return true;
  }
  // Queued before the send, so a failure below fails it as "lost" like everything in flight.
  inflight_.emplace_back();
  Pending& pend = inflight_.back();
  pend.req = req;
  pend.seq = ++seq_;
  if (req->exclusive) {
    std::string kw = leading_keyword(q.sql);
    pend.commit = kw == "COMMIT" || kw == "END";
  }
  const int n = static_cast<int>(p.size());
  const Oid* types = n ? p.types().data() : nullptr;
  const char* const* values = n ? p.values().data() : nullptr;
  const int* lengths = n ? p.lengths().data() : nullptr;
  const int* formats = n ? p.formats().data() : nullptr;
  const int rfmt = static_cast<int>(q.result_format);
  int ok;
  if (q.prepare && info_->max_prepared() > 0) {
    bool created = false;
    pend.stmt = lookup_stmt(q, &created);
    ok = 1;
    if (created) {
      pend.parse_sent = true;
      ok = PQsendPrepare(pg_, pend.stmt->name.c_str(), q.sql.c_str(), n, types);
    }
    if (ok) ok = PQsendQueryPrepared(pg_, pend.stmt->name.c_str(), n, values, lengths, formats, rfmt);
  } else {
    ok = PQsendQueryParams(pg_, q.sql.c_str(), n, types, values, lengths, formats, rfmt);
  }
  // One Sync per request: its own implicit transaction and its own error-recovery point.
  if (!ok || PQpipelineSync(pg_) != 1) {
    lose(trimmed(PQerrorMessage(pg_)));
    return false;
  }
  int f = PQflush(pg_);
  if (f < 0) {
    lose(trimmed(PQerrorMessage(pg_)));
    return false;
  }
  flush_pending_ = f == 1;
  return true;
}

bool Connection::send_internal(Kind kind, const std::string& sql) {
  inflight_.emplace_back();
  Pending& pend = inflight_.back();
  pend.kind = kind;
  pend.seq = ++seq_;
  if (!PQsendQueryParams(pg_, sql.c_str(), 0, nullptr, nullptr, nullptr, nullptr, 0) || PQpipelineSync(pg_) != 1) {
    lose(trimmed(PQerrorMessage(pg_)));
    return false;
  }
  int f = PQflush(pg_);
  if (f < 0) {
    lose(trimmed(PQerrorMessage(pg_)));
    return false;
  }
  flush_pending_ = f == 1;
  return true;
}

void Connection::arm_read() {
  if (reading_ || state_ != State::Ready) return;
  if (copy_ == CopyMode::Out && !copy_req_) return;  // COPY OUT: read only when asked (flow control)
  wait_socket(false);
}

void Connection::arm_write() {
  if (writing_ || state_ != State::Ready) return;
  wait_socket(true);
}

void Connection::wait_socket(bool for_write) {
  bool Connection::*busy = for_write ? &Connection::writing_ : &Connection::reading_;
  void (Connection::*ready)() = for_write ? &Connection::on_writable : &Connection::on_readable;
  this->*busy = true;
  auto self = shared_from_this();
  std::uint64_t gen = gen_;
  auto what = for_write ? asio::posix::stream_descriptor::wait_write : asio::posix::stream_descriptor::wait_read;
  io_->sock->async_wait(what, [self, gen, busy, ready](const boost::system::error_code& ec) {
    if (gen != self->gen_) return;
    (*self).*busy = false;
    if (self->state_ != State::Ready || ec == asio::error::operation_aborted) return;
    if (ec) {
      self->lose(ec.message());
      return;
    }
    ((*self).*ready)();
  });
}

void Connection::on_readable() {
  if (!PQconsumeInput(pg_)) {
    std::string why = trimmed(PQerrorMessage(pg_));
    drain();  // what arrived before the error (a FATAL message names the cause)
    lose(why);
    return;
  }
  if (copy_ != CopyMode::Off)
    copy_io();
  else
    drain();
  deliver_notifies();
  if (state_ != State::Ready) return;
  if (PQstatus(pg_) == CONNECTION_BAD) {
    lose(trimmed(PQerrorMessage(pg_)));
    return;
  }
  pump();
}

void Connection::on_writable() {
  // PQflush also reads what the server sent meanwhile: a server blocked on writing a large result
  // is never waiting for us while we wait for it (the read wait stays armed as well).
  int f = PQflush(pg_);
  if (f < 0) {
    lose(trimmed(PQerrorMessage(pg_)));
    return;
  }
  flush_pending_ = f == 1;
  if (copy_ != CopyMode::Off)
    copy_io();
  else
    drain();
  if (state_ != State::Ready) return;
  pump();
}

void Connection::deliver_notifies() {
  if (!pg_) return;
  while (PGnotify* n = PQnotifies(pg_)) {
    if (ev_.notify) ev_.notify(n->relname ? n->relname : "", n->extra ? n->extra : "", n->be_pid);
    PQfreemem(n);
  }
}

void Connection::drain() {
  while (state_ == State::Ready && !inflight_.empty()) {
    if (PQisBusy(pg_)) break;
    PGresult* raw = PQgetResult(pg_);
    if (!raw) {
      // NULL ends one command's results. Two in a row: nothing more is available yet.
      if (!got_result_) break;
      got_result_ = false;
      ++inflight_.front().step;
      continue;
    }
    if (PQresultStatus(raw) == PGRES_PIPELINE_SYNC) {
      PQclear(raw);
      got_result_ = false;
      complete_head();
      continue;
    }
    got_result_ = true;
    Pending& h = inflight_.front();
    Result res = Result::from_pg(raw);
    if (is_fatal(res)) fatal_ = res.error().message;
    if (h.parse_sent && h.step == 0) {
      if (!res.ok() && h.stmt && !h.stmt->failed) {
        h.stmt->failed = true;
        h.stmt->parse_error = std::make_shared<const ErrorInfo>(res.error());
        drop_stmt(h.stmt);
      }
    } else if (!h.have_result || (is_statement_error(res) && h.result.ok())) {
      // An ERROR after the statement's own result comes from the implicit COMMIT at the Sync
      // (a deferred constraint): the statement's work was rolled back, so the error is its result.
      // Not a FATAL or the error libpq makes up when the connection drops: that says nothing
      // about the statement (a COMMIT answered before the drop did commit; see fail_all).
      h.result = std::move(res);
      h.have_result = true;
    }
    if (PQstatus(pg_) == CONNECTION_BAD) break;
  }
}

void Connection::complete_head() {
  Pending h = std::move(inflight_.front());
  inflight_.pop_front();
  if (h.kind == Kind::Rollback) rollback_sent_ = false;
  if (h.kind == Kind::User && h.req) {
    Result r = h.have_result ? std::move(h.result)
                             : Result::failure(ErrorInfo::make(sqlstate::kProtocolViolation, "the server sent no result for the statement"));
    bool requeued = false;
    if (!r.ok()) {
      const ErrorInfo& e = r.error();
      bool missing_stmt = e.sqlstate == "26000";
      if ((is_aborted(r) || missing_stmt) && h.stmt && h.stmt->failed && h.stmt->parse_error) {
        r = Result::failure(*h.stmt->parse_error);  // the Parse's own error, not its echo
      } else if (is_aborted(r)) {
        r = Result::failure(ErrorInfo::make(sqlstate::kProtocolViolation, "the statement was skipped (pipeline aborted)"));
      } else if (h.stmt && (missing_stmt || (e.sqlstate == "0A000" && e.message.find("cached plan") != std::string::npos))) {
        // Deallocated behind our back (DISCARD ALL) or invalidated by a schema change: prepare
        // again next time. Not retried here: a caller inside a transaction must see the error.
        if (!missing_stmt) to_deallocate_.push_back(h.stmt->name);
        drop_stmt(h.stmt);
      } else if (e.sqlstate == sqlstate::kQueryCanceled && !h.req->cancel_requested && !h.req->exclusive &&
                 !h.req->retried && (cancel_running_ || h.seq <= collateral_hi_)) {
        // A cancel aimed at another request hit this one (the server cancels whatever runs when
        // the signal lands). Its implicit transaction rolled back, so running it again is safe.
        h.req->retried = true;
        requeued = true;
        if (pinned_ && ev_.handback) {
          // A lease pinned this connection after the request was sent: re-sent here it would run
          // inside the lease's session (its transaction). Another connection takes it.
          load_.fetch_sub(1, std::memory_order_relaxed);
          ev_.handback({h.req});
        } else {
          unsent_.push_front(h.req);
        }
      }
    } else if (h.commit) {
      r = commit_outcome(std::move(r));
    }
    if (!requeued) {
      if (cancel_target_ == h.req) cancel_target_.reset();
      finish(h.req, std::move(r));
    }
  }
  maybe_issue_cancel();
  check_unpin();
}

// ---- loss and close ---------------------------------------------------------------------------

void Connection::lose(std::string reason) {
  if (state_ == State::Connecting) {
    connect_failed(ErrorInfo::make(sqlstate::kUnableToConnect, std::move(reason), true));
    return;
  }
  if (state_ != State::Ready) return;
  state_ = State::Closed;
  if (io_->sock) {
    boost::system::error_code ec;
    io_->sock->close(ec);
  }
  io_->retry.cancel();
  if (pg_) {
    PQfinish(pg_);
    pg_ = nullptr;
  }
  std::string why = !fatal_.empty() ? fatal_ : reason.empty() ? std::string("connection closed") : reason;
  ErrorInfo e = ErrorInfo::make(sqlstate::kConnectionFailure, "connection to " + info_->describe() + " lost: " + why, true);
  auto self = shared_from_this();
  if (ev_.lost) ev_.lost(*this, e);
  fail_all(e, true);
}

void Connection::close(const ErrorInfo& why) {
  if (state_ == State::Closed) return;
  state_ = State::Closed;
  io_->timer.cancel();
  io_->retry.cancel();
  if (io_->sock) {
    boost::system::error_code ec;
    io_->sock->close(ec);
  }
  if (pg_) {
    PQfinish(pg_);
    pg_ = nullptr;
  }
  auto self = shared_from_this();
  fail_all(why, false);
}

void Connection::fail_all(const ErrorInfo& base, bool handback) {
  if (copy_req_) {
    auto req = std::move(copy_req_);
    copy_req_.reset();
    finish(req, Result::failure(base));
  }
  copy_ = CopyMode::Off;
  copy_buf_.clear();
  copy_final_ = Result();
  copy_have_final_ = copy_done_ = copy_discard_ = false;
  std::deque<Pending> inflight;
  inflight.swap(inflight_);
  for (Pending& p : inflight) {
    if (!p.req) continue;
    Result r;
    if (p.have_result && p.result.ok()) {
      if (p.commit) {
        r = commit_outcome(std::move(p.result));  // COMMIT's own result decides
      } else {
        ErrorInfo e = base;
        e.sqlstate = std::string(sqlstate::kResolutionUnknown);
        e.message += " (after the statement's result arrived, before its implicit commit was confirmed)";
        r = Result::failure(std::move(e));
      }
    } else if (p.have_result && is_statement_error(p.result)) {
      r = std::move(p.result);  // the server's own error: the statement did not take effect
    } else if (p.commit) {
      ErrorInfo e = base;
      e.sqlstate = std::string(sqlstate::kResolutionUnknown);
      e.message += " (during COMMIT: the transaction may or may not have been committed)";
      r = Result::failure(std::move(e));
    } else {
      r = Result::failure(base);
    }
    finish(p.req, std::move(r));
  }
  std::vector<std::shared_ptr<detail::Request>> back;
  std::deque<std::shared_ptr<detail::Request>> unsent;
  unsent.swap(unsent_);
  for (auto& q : unsent) {
    if (q->finished()) {
      load_.fetch_sub(1, std::memory_order_relaxed);
    } else if (handback && !q->exclusive && ev_.handback) {
      load_.fetch_sub(1, std::memory_order_relaxed);
      back.push_back(std::move(q));
    } else {
      finish(q, Result::failure(base));
    }
  }
  cancel_target_.reset();
  if (unpinning_) {
    unpinning_ = false;
    unpinned_ = nullptr;
  }
  if (!back.empty()) ev_.handback(std::move(back));
}

// ---- cancel -----------------------------------------------------------------------------------

void Connection::cancel(const std::shared_ptr<detail::Request>& req) {
  if (req->finished()) return;
  req->cancel_requested = true;
  if (req == copy_req_) {
    copy_cancel();
    return;
  }
  for (auto it = unsent_.begin(); it != unsent_.end(); ++it) {
    if (*it == req) {
      unsent_.erase(it);
      finish(req, Result::failure(ErrorInfo::make(sqlstate::kQueryCanceled, "canceling statement due to user request (before it was sent)")));
      return;
    }
  }
  // In flight: maybe_issue_cancel() sends it when `req` heads the pipeline. Not here at all: its
  // submit is still on the way, and submit() finishes it.
  maybe_issue_cancel();
}

void Connection::maybe_issue_cancel() {
  if (cancel_running_ || state_ != State::Ready || inflight_.empty()) return;
  const Pending& head = inflight_.front();
  if (!head.req || !head.req->cancel_requested || head.req->finished()) return;
  if (head.req->cancels_sent >= kMaxCancels) return;  // it ignores us: let it finish
  ++head.req->cancels_sent;
  PGcancel* c = PQgetCancel(pg_);
  if (!c) return;
  cancel_running_ = true;
  cancel_target_ = head.req;
  auto self = shared_from_this();
  std::shared_ptr<PGcancel> cancel(c, PQfreeCancel);  // freed even if the job is dropped
  auto job = [self, cancel] {
    char err[256];
    PQcancel(cancel.get(), err, sizeof err);  // blocking: connects to the server, sends CancelRequest
    core::post_io(self->ctx_.get_executor(), [self] { self->cancel_returned(); });
  };
  if (ev_.offload)
    ev_.offload(std::move(job));
  else
    job();
}

void Connection::cancel_returned() {
  cancel_running_ = false;
  collateral_hi_ = seq_;
  if (state_ != State::Ready) return;
  if (cancel_target_ && !inflight_.empty() && inflight_.front().req == cancel_target_ && !cancel_target_->finished()) {
    // Still running: the signal can land while the backend is between protocol messages, where
    // it is ignored. Ask again shortly.
    auto self = shared_from_this();
    io_->retry.expires_after(std::chrono::milliseconds(200));
    io_->retry.async_wait([self](const boost::system::error_code& ec) {
      if (!ec) self->maybe_issue_cancel();
    });
    return;
  }
  maybe_issue_cancel();
}

// ---- exclusive use ----------------------------------------------------------------------------

void Connection::pin() { pinned_ = true; }

void Connection::unpin(std::function<void()> done) {
  if (state_ == State::Closed) return;  // died meanwhile: the pool already dropped it
  unpinning_ = true;
  unpinned_ = std::move(done);
  check_unpin();
}

void Connection::check_unpin() {
  if (!unpinning_ || state_ != State::Ready) return;
  if (copy_ != CopyMode::Off) {
    // Released in the middle of a COPY (its greenlet was killed): the server still expects data
    // or still sends rows. Dropping the connection is the one clean way out.
    if (!copy_req_ && unsent_.empty()) lose("the lease was released during a COPY");
    return;
  }
  if (!unsent_.empty() || !inflight_.empty()) return;  // the lease's requests (or the ROLLBACK) first
  PGTransactionStatusType ts = PQtransactionStatus(pg_);
  if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
    // Released inside a transaction (a killed greenlet, an exception): roll it back before anyone
    // else's statements land in it.
    if (!rollback_sent_) {
      if (++rollbacks_ > 3) {
        lose("ROLLBACK did not end the transaction");
        return;
      }
      rollback_sent_ = true;
      if (!send_internal(Kind::Rollback, "ROLLBACK")) return;
      arm_read();
      if (flush_pending_) arm_write();
    }
    return;
  }
  if (ts != PQTRANS_IDLE) {
    lose("unexpected transaction state after a lease");
    return;
  }
  unpinning_ = false;
  pinned_ = false;
  rollbacks_ = 0;
  auto cb = std::move(unpinned_);
  unpinned_ = nullptr;
  if (cb) cb();
  pump();
}

}  // namespace puff::pg
