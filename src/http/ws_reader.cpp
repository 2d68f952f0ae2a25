#include "http/ws_reader.hpp"

#include <algorithm>
#include <cstring>

namespace puff::http::ws {

namespace {

constexpr Error kStrayContinuation{kCloseProtocolError, "continuation frame outside a fragmented message"};
constexpr Error kNestedMessage{kCloseProtocolError, "new data frame inside a fragmented message"};
constexpr Error kTooBig{kCloseTooBig, "message too big"};
constexpr Error kBadUtf8{kCloseInvalidData, "text message is not UTF-8"};

}  // namespace

Event Reader::fail(const Error& e) {
  ended_ = Event::Kind::Error;
  end_event_ = Event{};
  end_event_.kind = Event::Kind::Error;
  end_event_.error = e;
  return end_event_;
}

Event Reader::control_event(const FrameHeader& h, std::string_view payload) {
  Event ev;
  ev.payload = payload;
  if (h.opcode == Opcode::Ping) {
    ev.kind = Event::Kind::Ping;
  } else if (h.opcode == Opcode::Pong) {
    ev.kind = Event::Kind::Pong;
  } else {
    Error err;
    if (!parse_close_payload(payload, ev.close, err)) return fail(err);
    ev.kind = Event::Kind::Close;
    ended_ = Event::Kind::Close;
    end_event_ = Event{};
    end_event_.kind = Event::Kind::Close;
    end_event_.close.code = ev.close.code;
  }
  return ev;
}

Event Reader::data_event(std::string_view payload, Opcode opcode, bool compressed) {
  Event ev;
  ev.kind = opcode == Opcode::Text ? Event::Kind::Text : Event::Kind::Binary;
  ev.payload = payload;
  ev.compressed = compressed;
  return ev;
}

Event Reader::next(char* data, std::size_t size, std::size_t& consumed) {
  consumed = 0;
  if (ended_ != Event::Kind::NeedMore) return end_event_;
  if (message_returned_) {
    message_.clear();
    message_returned_ = false;
  }
  std::size_t pos = 0;
  for (;;) {
    if (!in_frame_) {
      FrameHeader h;
      Error err;
      Status st = parse_frame_header(std::string_view(data + pos, size - pos), options_, h, err);
      consumed = pos;
      if (st == Status::Incomplete) return Event{};
      if (st == Status::Error) return fail(err);
      const bool control = h.is_control();
      if (!control) {
        if (h.opcode == Opcode::Continuation) {
          if (!message_open_) return fail(kStrayContinuation);
          if (h.payload_length > options_.max_message - message_size_) return fail(kTooBig);
        } else if (message_open_) {
          return fail(kNestedMessage);
        }
      }
      pos += h.header_size;
      // Fast path: a control frame or a whole one-frame message, all here. No copy.
      if (h.payload_length <= size - pos && (control || (h.fin && h.opcode != Opcode::Continuation))) {
        char* p = data + pos;
        const auto len = static_cast<std::size_t>(h.payload_length);
        unmask(p, len, h.mask);
        pos += len;
        consumed = pos;
        std::string_view payload(p, len);
        if (control) return control_event(h, payload);
        if (h.opcode == Opcode::Text && !h.rsv1 && !valid_utf8(payload)) return fail(kBadUtf8);
        return data_event(payload, h.opcode, h.rsv1);
      }
      in_frame_ = true;
      frame_ = h;
      frame_left_ = h.payload_length;
      frame_offset_ = 0;
      if (control) {
        control_size_ = 0;
      } else if (h.opcode != Opcode::Continuation) {
        message_open_ = true;
        message_opcode_ = h.opcode;
        message_compressed_ = h.rsv1;
        message_size_ = 0;
        message_.clear();
        utf8_.reset();
      }
    }

    // The current frame's payload, as much as is here.
    const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(frame_left_, size - pos));
    char* p = data + pos;
    unmask(p, take, frame_.mask, frame_offset_);
    pos += take;
    consumed = pos;
    frame_left_ -= take;
    frame_offset_ += take;
    if (take == 0) {
      // Nothing here yet (data may even be null): no copy.
    } else if (frame_.is_control()) {
      std::memcpy(control_.data() + control_size_, p, take);
      control_size_ += take;
    } else {
      // Fail fast: an invalid byte ends the connection before the message is complete.
      if (message_opcode_ == Opcode::Text && !message_compressed_ && !utf8_.feed(std::string_view(p, take)))
        return fail(kBadUtf8);
      message_.append(p, take);
      message_size_ += take;
    }
    if (frame_left_ > 0) return Event{};
    in_frame_ = false;
    if (frame_.is_control()) return control_event(frame_, std::string_view(control_.data(), control_size_));
    if (frame_.fin) {
      message_open_ = false;
      if (message_opcode_ == Opcode::Text && !message_compressed_ && !utf8_.complete()) return fail(kBadUtf8);
      message_returned_ = true;
      return data_event(message_, message_opcode_, message_compressed_);
    }
  }
}

}  // namespace puff::http::ws
