#include "http/exchange.hpp"

#include <unistd.h>

namespace puff::http {

Exchange::~Exchange() {
  if (file_.fd >= 0) ::close(file_.fd);
}

bool Exchange::write_file(std::string head, int fd, std::uint64_t offset, std::uint64_t length) {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (closed_ || aborted_ || out_last_ || file_.fd >= 0) {
      ::close(fd);
      return false;
    }
    file_ = FilePart{fd, offset, length};
    out_queued_ += head.size() + length;
    if (!head.empty()) out_.push_back(std::move(head));
    out_last_ = true;
  }
  if (wake_io) wake_io();
  return true;
}

bool Exchange::io_take_file(FilePart& out) {
  std::lock_guard<std::mutex> lock(m_);
  if (file_.fd < 0 || !out_.empty()) return false;
  out = file_;
  file_ = FilePart{};
  return true;
}

void Exchange::fire(std::function<void()>& w, std::unique_lock<std::mutex>& lock) {
  std::function<void()> f = std::move(w);
  w = nullptr;
  lock.unlock();
  if (f) f();
  lock.lock();
}

Exchange::Read Exchange::read_body(std::size_t max, std::string& out, std::function<void()> on_ready) {
  bool wake = false;
  Read r;
  {
    std::lock_guard<std::mutex> lock(m_);
    std::size_t avail = body_buf_.size() - body_pos_;
    if (avail > 0) {
      std::size_t n = avail < max ? avail : max;
      out.append(body_buf_, body_pos_, n);
      body_pos_ += n;
      body_consumed_ += n;
      if (body_pos_ == body_buf_.size()) {
        body_buf_.clear();
        body_pos_ = 0;
      } else if (body_pos_ > 64 * 1024 && body_pos_ * 2 > body_buf_.size()) {
        body_buf_.erase(0, body_pos_);
        body_pos_ = 0;
      }
      // The connection may have paused reading at the high-water mark.
      wake = !body_eof_ && !body_failed_ && !closed_;
      r = Read::Data;
    } else if (body_failed_) {
      r = Read::Error;
    } else if (body_eof_) {
      r = Read::Eof;
    } else {
      if (on_ready) body_waiter_ = std::move(on_ready);  // none given: a waiter set before stays
      wake = true;  // make sure the connection is reading
      r = Read::WouldBlock;
    }
  }
  if (wake && wake_io) wake_io();
  return r;
}

bool Exchange::wait_body(std::function<void()> on_ready) {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (body_buf_.size() > body_pos_ || body_eof_ || body_failed_) return false;
    body_waiter_ = std::move(on_ready);
  }
  if (wake_io) wake_io();
  return true;
}

std::uint64_t Exchange::io_take_consumed() {
  std::lock_guard<std::mutex> lock(m_);
  std::uint64_t n = body_consumed_;
  body_consumed_ = 0;
  return n;
}

bool Exchange::body_finished() const {
  std::lock_guard<std::mutex> lock(m_);
  return body_eof_ && body_pos_ == body_buf_.size();
}

int Exchange::body_error_status() const {
  std::lock_guard<std::mutex> lock(m_);
  return body_error_status_;
}

std::string Exchange::body_error() const {
  std::lock_guard<std::mutex> lock(m_);
  return body_error_;
}

bool Exchange::write(std::string bytes, bool last) {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (closed_ || aborted_) return false;
    out_queued_ += bytes.size();
    if (!bytes.empty()) out_.push_back(std::move(bytes));
    if (last) out_last_ = true;
  }
  if (wake_io) wake_io();
  return true;
}

bool Exchange::write_ref(std::string prefix, std::string_view body, std::shared_ptr<const void> hold,
                         std::string suffix, bool last) {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (closed_ || aborted_) return false;
    out_queued_ += prefix.size() + body.size() + suffix.size();
    if (!prefix.empty()) out_.emplace_back(std::move(prefix));
    if (!body.empty()) out_.emplace_back(body, std::move(hold));
    if (!suffix.empty()) out_.emplace_back(std::move(suffix));
    if (last) out_last_ = true;
  }
  if (wake_io) wake_io();
  return true;
}

std::size_t Exchange::queued() const {
  std::lock_guard<std::mutex> lock(m_);
  return out_queued_;
}

bool Exchange::wait_drained(std::function<void()> on_drained) {
  std::lock_guard<std::mutex> lock(m_);
  if (closed_ || out_queued_ <= out_low_water) return false;
  drain_waiter_ = std::move(on_drained);
  return true;
}

bool Exchange::upgrade(std::shared_ptr<WsSession> session, std::string head) {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (closed_ || aborted_ || out_last_) return false;
    ws_ = std::move(session);
  }
  return write(std::move(head), true);
}

std::shared_ptr<WsSession> Exchange::io_upgraded() const {
  std::lock_guard<std::mutex> lock(m_);
  return ws_;
}

bool Exchange::peer_gone() const {
  std::lock_guard<std::mutex> lock(m_);
  return closed_ || peer_eof_;
}

void Exchange::io_peer_eof() {
  std::unique_lock<std::mutex> lock(m_);
  peer_eof_ = true;
  if (closed_waiter_) fire(closed_waiter_, lock);
}

bool Exchange::wait_closed(std::function<void()> on_closed) {
  std::lock_guard<std::mutex> lock(m_);
  if (closed_ || peer_eof_) return false;
  closed_waiter_ = std::move(on_closed);
  return true;
}

void Exchange::abort() {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (closed_) return;
    aborted_ = true;
  }
  if (wake_io) wake_io();
}

bool Exchange::closed() const {
  std::lock_guard<std::mutex> lock(m_);
  return closed_;
}

bool Exchange::io_body_data(std::string_view data) {
  std::unique_lock<std::mutex> lock(m_);
  body_buf_.append(data.data(), data.size());
  if (body_waiter_) fire(body_waiter_, lock);
  return body_buf_.size() - body_pos_ < body_high_water;
}

void Exchange::io_body_end() {
  std::unique_lock<std::mutex> lock(m_);
  body_eof_ = true;
  if (body_waiter_) fire(body_waiter_, lock);
}

void Exchange::io_body_error(std::string why, int http_status) {
  std::unique_lock<std::mutex> lock(m_);
  if (body_eof_) return;
  body_failed_ = true;
  body_error_ = std::move(why);
  body_error_status_ = http_status;
  if (body_waiter_) fire(body_waiter_, lock);
}

void Exchange::io_take_output(std::vector<OutPiece>& out, bool& last, bool& aborted) {
  std::lock_guard<std::mutex> lock(m_);
  for (auto& s : out_) out.push_back(std::move(s));
  out_.clear();
  last = out_last_;
  aborted = aborted_;
}

void Exchange::io_written(std::size_t n) {
  std::unique_lock<std::mutex> lock(m_);
  out_queued_ = n > out_queued_ ? 0 : out_queued_ - n;
  if (drain_waiter_ && out_queued_ <= out_low_water) fire(drain_waiter_, lock);
}

void Exchange::io_closed() {
  std::unique_lock<std::mutex> lock(m_);
  if (closed_) return;
  closed_ = true;
  out_.clear();
  out_queued_ = 0;
  if (file_.fd >= 0) {
    ::close(file_.fd);
    file_ = FilePart{};
  }
  if (!body_eof_ && !body_failed_) {
    body_failed_ = true;
    body_error_ = "client disconnected";
  }
  if (body_waiter_) fire(body_waiter_, lock);
  if (drain_waiter_) fire(drain_waiter_, lock);
  if (closed_waiter_) fire(closed_waiter_, lock);
}

bool Exchange::io_wants_body() const {
  std::lock_guard<std::mutex> lock(m_);
  return !body_eof_ && !body_failed_ && body_buf_.size() - body_pos_ < body_high_water;
}

}  // namespace puff::http
