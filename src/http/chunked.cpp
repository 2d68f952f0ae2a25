#include "http/chunked.hpp"

#include <algorithm>

#include "http/chars.hpp"

namespace puff::http {

namespace {

constexpr Error kBadSize{400, "bad chunk size"};
constexpr Error kSizeTooLong{400, "chunk size has more than 16 hex digits"};
constexpr Error kBadExt{400, "bad chunk extension"};
constexpr Error kExtTooLong{400, "chunk extensions too long"};
constexpr Error kBareLf{400, "bare LF (line endings must be CRLF)"};
constexpr Error kBareCr{400, "bare CR"};
constexpr Error kNoDataCrlf{400, "chunk data not followed by CRLF"};
constexpr Error kBadTrailer{400, "bad trailer field"};
constexpr Error kTrailerFold{400, "obsolete line folding in trailer"};
constexpr Error kTrailersTooLarge{431, "trailer section too large"};
constexpr Error kBodyTooLarge{413, "chunked body over the body limit"};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = to_lower(c);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

}  // namespace

ChunkedDecoder::ChunkedDecoder(const Limits& limits)
    : max_body_(limits.max_body), max_ext_(limits.max_chunk_ext), max_trailer_(limits.max_trailer_bytes) {}

void ChunkedDecoder::reset() noexcept {
  state_ = State::Size;
  chunk_left_ = body_size_ = ext_total_ = 0;
  digits_ = ext_len_ = trailer_bytes_ = 0;
  ext_semicolon_ = false;
  error_ = {};
}

Status ChunkedDecoder::fail(const Error& e, std::size_t at, std::size_t& consumed, Error& err) noexcept {
  state_ = State::Failed;
  error_ = err = e;
  consumed = at;
  return Status::Error;
}

Status ChunkedDecoder::decode(std::string_view in, std::size_t& consumed, std::vector<std::string_view>& out,
                              Error& err) {
  consumed = 0;
  if (state_ == State::Done) return Status::Complete;
  if (state_ == State::Failed) return err = error_, Status::Error;

  const std::size_t n = in.size();
  std::size_t i = 0;
  while (i < n) {
    const char c = in[i];
    switch (state_) {
      case State::Size: {
        int h = hex_value(c);
        if (h >= 0) {
          if (digits_ == 16) return fail(kSizeTooLong, i, consumed, err);
          chunk_left_ = chunk_left_ << 4 | static_cast<std::uint64_t>(h);
          ++digits_;
          ++i;
          break;
        }
        if (digits_ == 0) return fail(c == '\n' ? kBareLf : kBadSize, i, consumed, err);
        // Refuse an oversized body at its size line, before any of its data is read.
        if (chunk_left_ > max_body_ - body_size_) return fail(kBodyTooLarge, i, consumed, err);
        state_ = State::Ext;
        ext_len_ = 0;
        ext_semicolon_ = false;
        break;  // `c` is looked at again in Ext
      }
      case State::Ext: {
        if (c == '\r') {
          // Whitespace after the size is only allowed before a ';' (BWS): "5 \r\n" is refused.
          if (ext_len_ > 0 && !ext_semicolon_) return fail(kBadSize, i, consumed, err);
          state_ = State::SizeLf;
          ++i;
          break;
        }
        if (!ext_semicolon_) {
          if (c == ';')
            ext_semicolon_ = true;
          else if (c != ' ' && c != '\t')
            return fail(c == '\n' ? kBareLf : ext_len_ ? kBadExt : kBadSize, i, consumed, err);
        } else if (!is_field_char(c)) {
          return fail(c == '\n' ? kBareLf : kBadExt, i, consumed, err);
        }
        // Bounded per line, and over the body to the data received plus one line's worth.
        ++ext_len_;
        ++ext_total_;
        if (ext_len_ > max_ext_ || ext_total_ > max_ext_ + body_size_) return fail(kExtTooLong, i, consumed, err);
        ++i;
        break;
      }
      case State::SizeLf:
        if (c != '\n') return fail(kBareCr, i, consumed, err);
        ++i;
        state_ = chunk_left_ == 0 ? State::TrailerStart : State::Data;
        break;
      case State::Data: {
        std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(chunk_left_, n - i));
        out.push_back(in.substr(i, take));
        i += take;
        chunk_left_ -= take;
        body_size_ += take;
        if (chunk_left_ == 0) state_ = State::DataCr;
        break;
      }
      case State::DataCr:
      case State::DataLf:
        if (c != (state_ == State::DataCr ? '\r' : '\n')) return fail(kNoDataCrlf, i, consumed, err);
        ++i;
        if (state_ == State::DataCr) {
          state_ = State::DataLf;
        } else {
          state_ = State::Size;
          digits_ = 0;
        }
        break;
      case State::TrailerStart:
      case State::TrailerName:
      case State::TrailerValue:
      case State::TrailerLf:
      case State::EndLf:
        if (++trailer_bytes_ > max_trailer_) return fail(kTrailersTooLarge, i, consumed, err);
        if (state_ == State::TrailerStart) {
          if (c == '\r')
            state_ = State::EndLf;
          else if (c == ' ' || c == '\t')
            return fail(kTrailerFold, i, consumed, err);
          else if (is_tchar(c))
            state_ = State::TrailerName;
          else
            return fail(c == '\n' ? kBareLf : kBadTrailer, i, consumed, err);
        } else if (state_ == State::TrailerName) {
          if (c == ':')
            state_ = State::TrailerValue;
          else if (!is_tchar(c))
            return fail(c == '\n' ? kBareLf : kBadTrailer, i, consumed, err);
        } else if (state_ == State::TrailerValue) {
          if (c == '\r')
            state_ = State::TrailerLf;
          else if (!is_field_char(c))
            return fail(c == '\n' ? kBareLf : kBadTrailer, i, consumed, err);
        } else {
          if (c != '\n') return fail(kBareCr, i, consumed, err);
          ++i;
          if (state_ == State::EndLf) {
            state_ = State::Done;
            consumed = i;
            return Status::Complete;
          }
          state_ = State::TrailerStart;
          break;
        }
        ++i;
        break;
      case State::Done:
      case State::Failed:
        break;  // unreachable: both return above
    }
  }
  consumed = n;
  return Status::Incomplete;
}

}  // namespace puff::http
