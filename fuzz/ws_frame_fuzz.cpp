// libFuzzer target: WebSocket frame parsing (parse_frame_header, ws::Reader, unmask, close
// payloads, Utf8Validator) and encoding. Beyond "no crash" (ASan/UBSan), it checks:
// - the events do not depend on how the byte stream is split (whole vs. pieces, as a server with a
//   growing buffer would feed them);
// - payloads respect max_message; text messages are valid UTF-8 (checked against a reference
//   decoder); close codes are valid; consumed <= size;
// - parse_frame_header: header_size in [2, 14] and within the input;
// - encode -> (mask as a client) -> Reader gives back the payload;
// - the streaming UTF-8 validator agrees with the reference decoder at every split.
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "http/utf8.hpp"
#include "http/ws_frame.hpp"
#include "http/ws_reader.hpp"

using namespace puff::http::ws;
using puff::http::Status;
using puff::http::Utf8Validator;
using puff::http::valid_utf8;

#define CHECK PUFF_FUZZ_CHECK

namespace {

// Reference: decode code points one by one, by the book.
bool reference_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = cp << 6 | (cc & 0x3F);
    }
    const std::uint32_t min = n == 1 ? 0x80 : n == 2 ? 0x800 : 0x10000;
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

struct Seen {
  Event::Kind kind;
  std::string payload;
  std::uint16_t code;
  bool compressed;
  bool operator==(const Seen&) const = default;
};

// Streams `in` through a Reader in pieces cut at `cuts`, keeping unconsumed bytes like a server.
std::vector<Seen> read(std::string_view in, const std::vector<std::size_t>& cuts, const Options& o) {
  Reader r(o);
  std::vector<Seen> seen;
  std::string buf;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    const std::size_t end = i < cuts.size() ? cuts[i] : in.size();
    buf.append(in.substr(start, end - start));
    start = end;
    for (;;) {
      // An exactly sized copy so ASan sees reads past the end.
      std::vector<char> copy(buf.begin(), buf.end());
      std::size_t consumed = 99999;
      Event ev = r.next(copy.data(), copy.size(), consumed);
      CHECK(consumed <= copy.size());
      if (ev.kind == Event::Kind::NeedMore) {
        CHECK(copy.size() - consumed < kMaxHeaderSize);
        CHECK(ev.payload.empty());
        buf.erase(0, consumed);
        break;
      }
      Seen s{ev.kind, std::string(ev.payload), 0, ev.compressed};
      switch (ev.kind) {
        case Event::Kind::Text:
          if (!ev.compressed) CHECK(reference_utf8(ev.payload));
          [[fallthrough]];
        case Event::Kind::Binary:
          CHECK(ev.payload.size() <= o.max_message);
          CHECK(!ev.compressed || o.permessage_deflate);
          break;
        case Event::Kind::Ping:
        case Event::Kind::Pong:
          CHECK(ev.payload.size() <= kMaxControlPayload);
          break;
        case Event::Kind::Close:
          s.code = ev.close.code;
          CHECK(ev.close.code == kCloseNoStatus || valid_close_code(ev.close.code));
          CHECK(reference_utf8(ev.close.reason));
          break;
        case Event::Kind::Error:
          s.code = ev.error.close_code;
          CHECK(s.code == kCloseProtocolError || s.code == kCloseInvalidData || s.code == kCloseTooBig);
          CHECK(!ev.error.reason.empty());
          break;
        case Event::Kind::NeedMore:
          break;
      }
      seen.push_back(s);
      buf.erase(0, consumed);
      if (ev.kind == Event::Kind::Close || ev.kind == Event::Kind::Error) {
        std::size_t again = 1;
        CHECK(r.next(copy.data(), copy.size(), again).kind == ev.kind && again == 0);
        return seen;
      }
    }
  }
  return seen;
}

void check_reader(std::string_view in, const Options& o) {
  const std::vector<Seen> whole = read(in, {}, o);
  for (std::size_t cut : {in.size() / 2, in.size() / 3, std::size_t{1}, std::size_t{7}})
    if (cut <= in.size()) CHECK(read(in, {cut}, o) == whole);
  if (in.size() <= 512) {
    std::vector<std::size_t> every;
    for (std::size_t k = 1; k < in.size(); ++k) every.push_back(k);
    CHECK(read(in, every, o) == whole);
  }
}

void check_header(std::string_view in, const Options& o) {
  FrameHeader h;
  Error err;
  const Status st = parse_frame_header(in, o, h, err);
  if (st == Status::Complete) {
    CHECK(h.header_size >= 6 && h.header_size <= kMaxHeaderSize && h.header_size <= in.size());
    CHECK(h.masked && !h.rsv2 && !h.rsv3 && (!h.rsv1 || o.permessage_deflate));
    CHECK(!h.is_control() || (h.fin && h.payload_length <= kMaxControlPayload));
    CHECK(h.payload_length >> 63 == 0);
  } else if (st == Status::Incomplete) {
    CHECK(in.size() < kMaxHeaderSize);
  }
}

void check_roundtrip(std::string_view payload, bool fin, std::uint8_t opbits) {
  static constexpr Opcode kOps[] = {Opcode::Text, Opcode::Binary, Opcode::Ping, Opcode::Close};
  Opcode op = kOps[opbits & 3];
  if (op == Opcode::Ping || op == Opcode::Close) {
    payload = payload.substr(0, kMaxControlPayload);
    fin = true;
  }
  std::string frame;
  append_frame(frame, op, payload, fin);
  // What a client would send: mask bit, a key, masked payload.
  const std::size_t hlen = frame.size() - payload.size();
  CHECK(hlen >= 2 && hlen <= kMaxServerHeaderSize);
  const std::array<std::uint8_t, 4> key{0xa1, 0x07, 0x5c, 0xee};
  std::string client = frame.substr(0, hlen);
  client[1] = static_cast<char>(client[1] | 0x80);
  client.append(reinterpret_cast<const char*>(key.data()), 4);
  std::string masked(payload);
  unmask(masked.data(), masked.size(), key);  // masking and unmasking are the same XOR
  client += masked;
  Reader r;
  std::size_t consumed;
  Event ev = r.next(client.data(), client.size(), consumed);
  if (!fin) {
    // A first fragment: nothing to deliver yet, unless its text can never become UTF-8.
    if (op == Opcode::Text && !Utf8Validator().feed(payload))
      CHECK(ev.kind == Event::Kind::Error && ev.error.close_code == kCloseInvalidData);
    else
      CHECK(ev.kind == Event::Kind::NeedMore && consumed == client.size() && r.in_message());
    return;
  }
  if (op == Opcode::Text && !valid_utf8(payload)) {
    CHECK(ev.kind == Event::Kind::Error && ev.error.close_code == kCloseInvalidData);
  } else if (op == Opcode::Close) {
    CloseInfo info;
    Error err;
    if (parse_close_payload(payload, info, err))
      CHECK(ev.kind == Event::Kind::Close && ev.close.code == info.code && ev.payload == payload);
    else
      CHECK(ev.kind == Event::Kind::Error && ev.error.close_code == err.close_code);
  } else {
    CHECK(ev.payload == payload && consumed == client.size());
  }
}

void check_utf8(std::string_view in) {
  const bool ref = reference_utf8(in);
  CHECK(valid_utf8(in) == ref);
  for (std::size_t cut : {in.size() / 2, in.size() / 3, std::size_t{1}}) {
    if (cut > in.size()) continue;
    Utf8Validator v;
    bool ok = v.feed(in.substr(0, cut));
    ok = v.feed(in.substr(cut)) && ok;
    CHECK((ok && v.complete()) == ref);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  Options plain;
  Options deflate;
  deflate.permessage_deflate = true;
  deflate.max_message = 300;
  check_header(in, plain);
  check_header(in, deflate);
  check_reader(in, plain);
  check_reader(in, deflate);
  check_utf8(in);
  if (size >= 1) check_roundtrip(in.substr(1), data[0] & 0x80, data[0]);
  return 0;
}
