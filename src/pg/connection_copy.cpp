// COPY on a pinned connection (docs/postgres-internals.md §12). libpq's pipeline mode speaks the
// extended protocol only, and COPY needs the simple one: a COPY's Start waits until the lease's
// pipeline is empty, leaves pipeline mode, sends the statement with PQsendQuery, and the
// connection enters pipeline mode again once the COPY's final result has arrived. Each step
// (Start, Write, End, Fail, Read) is a request on the lease, served in order, one at a time.
//
// Flow control: a Write completes once its data is on the socket (libpq's buffer flushed), so a
// writer never gets ahead of the network by more than one chunk. COPY OUT reads the socket only
// while a Read is pending, so rows nobody asked for stay in the kernel's buffers and the server
// waits: memory stays bounded whatever the size of the result.
//
// Everything here runs on the connection's I/O thread.
#include "pg/connection.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

namespace puff::pg {

namespace asio = boost::asio;

namespace {

std::string trimmed(const char* s) {
  std::string out = s ? s : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

Result copy_error(std::string message) { return Result::failure(ErrorInfo::make("55000", std::move(message))); }

}  // namespace

bool Connection::copy_pump() {
  for (;;) {
    if (state_ != State::Ready) return true;
    if (copy_req_) break;  // a step in progress: its I/O drives it
    if (unsent_.empty()) {
      if (copy_ == CopyMode::Off) return false;
      break;
    }
    std::shared_ptr<detail::Request> req = unsent_.front();
    if (req->finished()) {
      unsent_.pop_front();
      load_.fetch_sub(1, std::memory_order_relaxed);
      continue;
    }
    const CopyStep step = req->query.copy;
    if (copy_ == CopyMode::Off) {
      if (step == CopyStep::None) return false;  // ordinary statements: the pipeline
      if (!inflight_.empty() || flush_pending_) return false;  // pump() stops at it until drained
      unsent_.pop_front();
      if (step != CopyStep::Start) {
        finish(req, copy_error("no COPY is in progress on this connection"));
        continue;
      }
      copy_start(std::move(req));
      continue;
    }
    unsent_.pop_front();
    copy_step(std::move(req));
  }
  if (state_ == State::Ready) {
    arm_read();
    if (flush_pending_) arm_write();
  }
  return true;
}

void Connection::copy_start(std::shared_ptr<detail::Request> req) {
  if (PQexitPipelineMode(pg_) != 1) {
    // The last Sync's trailing NULL may still be uncollected.
    while (!PQisBusy(pg_)) {
      PGresult* r = PQgetResult(pg_);
      if (!r) break;
      PQclear(r);
    }
    if (PQexitPipelineMode(pg_) != 1) {
      finish(req, copy_error("cannot start COPY: " + trimmed(PQerrorMessage(pg_))));
      return;
    }
  }
  copy_ = CopyMode::Starting;
  copy_req_ = std::move(req);
  copy_have_final_ = copy_done_ = copy_discard_ = false;
  copy_final_ = Result();
  copy_buf_.clear();
  if (!PQsendQuery(pg_, copy_req_->query.sql.c_str())) {
    lose(trimmed(PQerrorMessage(pg_)));
    return;
  }
  int f = PQflush(pg_);
  if (f < 0) {
    lose(trimmed(PQerrorMessage(pg_)));
    return;
  }
  flush_pending_ = f == 1;
  copy_io();
}

void Connection::copy_step(std::shared_ptr<detail::Request> req) {
  const CopyStep step = req->query.copy;
  copy_req_ = std::move(req);
  auto refuse = [this](std::string why) {
    auto r = std::move(copy_req_);
    copy_req_.reset();
    finish(r, copy_error(std::move(why)));
  };
  switch (step) {
    case CopyStep::Write: {
      if (copy_ != CopyMode::In) return refuse("COPY: write() needs a COPY ... FROM STDIN");
      const std::string& data = copy_req_->query.sql;
      if (!data.empty() && PQputCopyData(pg_, data.data(), static_cast<int>(data.size())) != 1) {
        lose(trimmed(PQerrorMessage(pg_)));
        return;
      }
      int f = PQflush(pg_);
      if (f < 0) {
        lose(trimmed(PQerrorMessage(pg_)));
        return;
      }
      flush_pending_ = f == 1;
      copy_io();
      return;
    }
    case CopyStep::End:
    case CopyStep::Fail:
      if (copy_ == CopyMode::In) {
        const char* msg = step == CopyStep::Fail ? copy_req_->query.sql.c_str() : nullptr;
        if (PQputCopyEnd(pg_, msg) != 1) {
          lose(trimmed(PQerrorMessage(pg_)));
          return;
        }
        copy_ = CopyMode::Ending;
        int f = PQflush(pg_);
        if (f < 0) {
          lose(trimmed(PQerrorMessage(pg_)));
          return;
        }
        flush_pending_ = f == 1;
      } else if (copy_ == CopyMode::Out) {
        // The reader stops early: drop the rest (cancelled on Fail, read to the end on End).
        copy_discard_ = true;
        copy_buf_.clear();
        if (step == CopyStep::Fail) copy_cancel();
      }
      copy_io();
      return;
    case CopyStep::Read:
      if (copy_ != CopyMode::Out && copy_ != CopyMode::Ending) return refuse("COPY: read() needs a COPY ... TO STDOUT");
      copy_io();
      return;
    default:
      return refuse("a COPY is in progress on this connection: finish it first");
  }
}

void Connection::copy_io() {
  switch (copy_) {
    case CopyMode::Off:
      return;
    case CopyMode::Starting:
      while (state_ == State::Ready && !PQisBusy(pg_)) {
        PGresult* raw = PQgetResult(pg_);
        if (!raw) {  // not a COPY to or from the client: its own result is the outcome
          copy_ = CopyMode::Ending;
          copy_done_ = true;
          copy_finished();
          return;
        }
        ExecStatusType st = PQresultStatus(raw);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT) {
          copy_ = st == PGRES_COPY_IN ? CopyMode::In : CopyMode::Out;
          copy_have_final_ = false;  // a statement before it ("SET ...; COPY ..."): not the outcome
          copy_final_ = Result();
          auto req = std::move(copy_req_);
          copy_req_.reset();
          finish(req, Result::from_pg(raw));
          return;
        }
        if (!copy_have_final_) {
          copy_final_ = Result::from_pg(raw);
          copy_have_final_ = true;
        } else {
          PQclear(raw);
        }
      }
      return;
    case CopyMode::In:
      if (copy_req_ && !flush_pending_) {  // the Write's data is on the socket
        auto req = std::move(copy_req_);
        copy_req_.reset();
        finish(req, Result::copy_chunk({}));
      }
      return;
    case CopyMode::Out:
      if (copy_req_) copy_read();
      return;
    case CopyMode::Ending:
      while (state_ == State::Ready && !copy_done_ && !PQisBusy(pg_)) {
        PGresult* raw = PQgetResult(pg_);
        if (!raw) {
          copy_done_ = true;
          break;
        }
        if (!copy_have_final_) {
          copy_final_ = Result::from_pg(raw);
          copy_have_final_ = true;
        } else {
          PQclear(raw);
        }
      }
      if (copy_done_ && copy_req_ && !flush_pending_) copy_finished();
      return;
  }
}

void Connection::copy_read() {
  for (;;) {
    char* buf = nullptr;
    int n = PQgetCopyData(pg_, &buf, 1);
    if (n > 0) {
      if (!copy_discard_) copy_buf_.append(buf, static_cast<std::size_t>(n));
      PQfreemem(buf);
      if (copy_buf_.size() >= kCopyChunk) break;
      continue;
    }
    if (n == -2) {
      lose(trimmed(PQerrorMessage(pg_)));
      return;
    }
    if (n == -1) copy_ = CopyMode::Ending;  // no more rows: the final result follows
    break;
  }
  if (!copy_buf_.empty()) {
    auto req = std::move(copy_req_);
    copy_req_.reset();
    std::string data;
    data.swap(copy_buf_);
    finish(req, Result::copy_chunk(std::move(data)));
  }
  if (copy_ == CopyMode::Ending) copy_io();  // collect the final result (delivered to a Read)
}

void Connection::copy_finished() {
  Result final_result = copy_have_final_ ? std::move(copy_final_)
                                         : Result::failure(ErrorInfo::make(sqlstate::kProtocolViolation,
                                                                           "the server sent no result for the COPY"));
  copy_ = CopyMode::Off;
  copy_final_ = Result();
  copy_have_final_ = copy_done_ = copy_discard_ = false;
  copy_buf_.clear();
  if (PQenterPipelineMode(pg_) != 1) {
    lose("could not enter pipeline mode after COPY: " + trimmed(PQerrorMessage(pg_)));
    return;
  }
  if (copy_req_) {
    auto req = std::move(copy_req_);
    copy_req_.reset();
    finish(req, std::move(final_result));
  }
}

void Connection::copy_cancel() {
  PGcancel* c = pg_ ? PQgetCancel(pg_) : nullptr;
  if (!c) return;
  std::shared_ptr<PGcancel> cancel(c, PQfreeCancel);
  auto job = [cancel] {
    char err[256];
    PQcancel(cancel.get(), err, sizeof err);
  };
  if (ev_.offload)
    ev_.offload(std::move(job));
  else
    job();
}

}  // namespace puff::pg
