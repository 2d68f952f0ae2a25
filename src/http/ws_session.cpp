#include "http/ws_session.hpp"

#include "http/ws_frame.hpp"

namespace puff::http {

void WsSession::fire(std::function<void()>& w, std::unique_lock<std::mutex>& lock) {
  std::function<void()> f = std::move(w);
  w = nullptr;
  lock.unlock();
  if (f) f();
  lock.lock();
}

void WsSession::wake() {
  std::function<void()> w;
  {
    std::lock_guard<std::mutex> lock(m_);
    w = wake_;
  }
  if (w) w();
}

WsSession::Recv WsSession::receive(Message& out, std::function<void()> on_ready) {
  bool resume_reading = false;
  {
    std::lock_guard<std::mutex> lock(m_);
    if (!in_.empty()) {
      bool was_full = in_bytes_ >= in_high_water;
      out = std::move(in_.front());
      in_.pop_front();
      in_bytes_ -= out.data.size();
      resume_reading = was_full && in_bytes_ < in_high_water;
    } else if (closed_) {
      return Recv::Closed;
    } else {
      if (on_ready) recv_waiter_ = std::move(on_ready);
      return Recv::WouldBlock;
    }
  }
  if (resume_reading) wake();
  return Recv::Message;
}

bool WsSession::wait_ready(std::function<void()> on_ready) {
  std::function<void()> replaced;
  {
    std::lock_guard<std::mutex> lock(m_);
    if (!in_.empty() || closed_) return false;
    replaced = std::move(recv_waiter_);
    recv_waiter_ = std::move(on_ready);
  }
  // A receive that was given up (a cancelled task, asyncio.wait_for timing out) left its waiter:
  // woken now, its operation ends instead of staying behind for the connection's life.
  if (replaced) replaced();
  return true;
}

bool WsSession::send(std::string_view payload, bool binary) {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (closed_ || close_queued_) return false;
    out_queued_ += payload.size() + ws::kMaxServerHeaderSize;
    out_.push_back(Outgoing{static_cast<std::uint8_t>(binary ? ws::Opcode::Binary : ws::Opcode::Text),
                            std::string(payload)});
  }
  wake();
  return true;
}

void WsSession::close(std::uint16_t code, std::string_view reason) {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (close_queued_) return;
    close_queued_ = true;
    if (closed_) return;  // the peer's close was already answered by the connection
    std::string frame;
    ws::append_close_frame(frame, code, reason);  // trims the reason at a UTF-8 boundary
    out_queued_ += frame.size();
    out_.push_back(Outgoing{static_cast<std::uint8_t>(ws::Opcode::Close), std::move(frame)});
  }
  wake();
}

std::size_t WsSession::queued() const {
  std::lock_guard<std::mutex> lock(m_);
  return out_queued_;
}

bool WsSession::wait_drained(std::function<void()> on_drained) {
  std::lock_guard<std::mutex> lock(m_);
  if (closed_ || out_queued_ <= out_low_water) return false;
  drain_waiter_ = std::move(on_drained);
  return true;
}

std::uint16_t WsSession::close_code() const {
  std::lock_guard<std::mutex> lock(m_);
  return close_code_;
}

std::string WsSession::close_reason() const {
  std::lock_guard<std::mutex> lock(m_);
  return close_reason_;
}

void WsSession::io_attach(std::function<void()> wake) {
  {
    std::lock_guard<std::mutex> lock(m_);
    wake_ = std::move(wake);
  }
  this->wake();  // frames may have been queued before the connection switched over
}

bool WsSession::io_message(bool binary, std::string_view data) {
  std::unique_lock<std::mutex> lock(m_);
  in_.push_back(Message{binary, std::string(data)});
  in_bytes_ += data.size();
  if (recv_waiter_) fire(recv_waiter_, lock);
  return in_bytes_ < in_high_water;
}

void WsSession::io_closed(std::uint16_t code, std::string_view reason) {
  std::unique_lock<std::mutex> lock(m_);
  if (closed_) return;
  closed_ = true;
  close_code_ = code;
  close_reason_.assign(reason);
  if (recv_waiter_) fire(recv_waiter_, lock);
  if (drain_waiter_) fire(drain_waiter_, lock);
}

void WsSession::io_take_output(std::vector<OutPiece>& out, bool& close_queued, ws::Deflate* deflater) {
  std::vector<Outgoing> msgs;
  {
    std::lock_guard<std::mutex> lock(m_);
    msgs.swap(out_);
    close_queued = close_queued_;
  }
  // Framing (and compression) happens here, on the I/O thread, not in the application's.
  // send() counted payload + a maximal header; recount with the frames' real sizes so that
  // io_written() (which sees frame bytes) brings the count back to zero.
  std::size_t counted = 0, framed = 0;
  std::string compressed;
  for (auto& m : msgs) {
    auto op = static_cast<ws::Opcode>(m.opcode);
    if (op == ws::Opcode::Close) {
      counted += m.payload.size();
      framed += m.payload.size();
      out.push_back(std::move(m.payload));  // already a whole frame
      continue;
    }
    counted += m.payload.size() + ws::kMaxServerHeaderSize;
    std::string frame;
    bool sent = false;
    if (deflater && m.payload.size() >= 64) {
      compressed.clear();
      deflater->deflate(m.payload, compressed);
      // Incompressible data (already compressed, random) goes out as it is: RSV1 is per message.
      if (compressed.size() < m.payload.size()) {
        frame.reserve(compressed.size() + ws::kMaxServerHeaderSize);
        ws::append_frame(frame, op, compressed, true, true);
        sent = true;
      }
    }
    if (!sent) {
      frame.reserve(m.payload.size() + ws::kMaxServerHeaderSize);
      ws::append_frame(frame, op, m.payload);
    }
    framed += frame.size();
    out.push_back(std::move(frame));
  }
  if (counted != framed) {
    std::unique_lock<std::mutex> lock(m_);
    out_queued_ = out_queued_ + framed > counted ? out_queued_ + framed - counted : 0;
    if (drain_waiter_ && out_queued_ <= out_low_water) fire(drain_waiter_, lock);
  }
}

void WsSession::io_written(std::size_t n) {
  std::unique_lock<std::mutex> lock(m_);
  out_queued_ = n > out_queued_ ? 0 : out_queued_ - n;
  if (drain_waiter_ && out_queued_ <= out_low_water) fire(drain_waiter_, lock);
}

bool WsSession::io_wants_more() const {
  std::lock_guard<std::mutex> lock(m_);
  return in_bytes_ < in_high_water;
}

}  // namespace puff::http
