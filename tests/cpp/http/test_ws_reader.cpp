#include "http/ws_reader.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ws_test_util.hpp"

using namespace puff::http::ws;
using puff::http::ws::test::client_frame;
using Kind = Event::Kind;

namespace {

struct Seen {
  Kind kind;
  std::string payload;
  std::uint16_t code = 0;  // Close: the close code; Error: the code to send
  bool compressed = false;
  bool operator==(const Seen&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Seen& s) {
  return os << static_cast<int>(s.kind) << ":" << s.payload << ":" << s.code;
}

// Streams `in` into a connection-like buffer `step` bytes at a time (0: all at once), keeping
// unconsumed bytes as a server would, and collects every event.
std::vector<Seen> read_all(std::string_view in, std::size_t step = 0, const Options& o = {}) {
  Reader r(o);
  std::vector<Seen> seen;
  std::string buf;
  if (step == 0) step = in.size() ? in.size() : 1;
  for (std::size_t off = 0; off < in.size() || off == 0; off += step) {
    buf.append(in.substr(off, step));
    for (;;) {
      std::size_t consumed = 0;
      Event ev = r.next(buf.data(), buf.size(), consumed);
      EXPECT_LE(consumed, buf.size());
      if (ev.kind == Kind::NeedMore) {
        EXPECT_LT(buf.size() - consumed, kMaxHeaderSize);
        buf.erase(0, consumed);
        break;
      }
      Seen s{ev.kind, std::string(ev.payload), 0, ev.compressed};
      if (ev.kind == Kind::Close) s.code = ev.close.code;
      if (ev.kind == Kind::Error) s.code = ev.error.close_code;
      seen.push_back(s);
      buf.erase(0, consumed);
      if (ev.kind == Kind::Close || ev.kind == Kind::Error) return seen;
    }
    if (in.empty()) break;
  }
  return seen;
}

// The same events for every chunking of the stream.
std::vector<Seen> read_every_way(std::string_view in, const Options& o = {}) {
  std::vector<Seen> whole = read_all(in, 0, o);
  for (std::size_t step : {1u, 2u, 3u, 5u, 7u, 13u, 64u}) EXPECT_EQ(read_all(in, step, o), whole) << "step " << step;
  return whole;
}

std::uint16_t error_code(const std::vector<Seen>& seen) {
  return !seen.empty() && seen.back().kind == Kind::Error ? seen.back().code : 0;
}

}  // namespace

TEST(WsReader, OneFrameMessagesAreZeroCopy) {
  std::string in = client_frame(Opcode::Text, "hello") + client_frame(Opcode::Binary, std::string("\0\1\2", 3));
  Reader r;
  std::size_t consumed;
  Event ev = r.next(in.data(), in.size(), consumed);
  ASSERT_EQ(ev.kind, Kind::Text);
  EXPECT_EQ(ev.payload, "hello");
  EXPECT_EQ(ev.payload.data(), in.data() + 6);  // unmasked in place
  EXPECT_EQ(consumed, 11u);
  ev = r.next(in.data() + 11, in.size() - 11, consumed);
  ASSERT_EQ(ev.kind, Kind::Binary);
  EXPECT_EQ(ev.payload, std::string("\0\1\2", 3));
  ev = r.next(in.data() + in.size(), 0, consumed);
  EXPECT_EQ(ev.kind, Kind::NeedMore);
  EXPECT_EQ(consumed, 0u);
}

TEST(WsReader, EventsDoNotDependOnHowTheStreamIsSplit) {
  std::string in = client_frame(Opcode::Text, "first") + client_frame(Opcode::Ping, "p") +
                   client_frame(Opcode::Binary, std::string(300, 'b')) + client_frame(Opcode::Text, "", true) +
                   client_frame(Opcode::Pong, "") + client_frame(Opcode::Close, std::string("\x03\xe8ok", 4));
  std::vector<Seen> seen = read_every_way(in);
  std::vector<Seen> expect{{Kind::Text, "first"},   {Kind::Ping, "p"}, {Kind::Binary, std::string(300, 'b')},
                           {Kind::Text, ""},        {Kind::Pong, ""},  {Kind::Close, "\x03\xe8ok", 1000}};
  EXPECT_EQ(seen, expect);
}

TEST(WsReader, FragmentedMessagesWithInterleavedControlFrames) {
  std::string in = client_frame(Opcode::Text, "Hel", false) + client_frame(Opcode::Ping, "1") +
                   client_frame(Opcode::Continuation, "", false) + client_frame(Opcode::Continuation, "lo", false) +
                   client_frame(Opcode::Pong, "2") + client_frame(Opcode::Continuation, " you", true) +
                   client_frame(Opcode::Binary, "a", false) + client_frame(Opcode::Continuation, "b", true);
  std::vector<Seen> seen = read_every_way(in);
  std::vector<Seen> expect{{Kind::Ping, "1"}, {Kind::Pong, "2"}, {Kind::Text, "Hello you"}, {Kind::Binary, "ab"}};
  EXPECT_EQ(seen, expect);
}

TEST(WsReader, InMessageTracksFragments) {
  std::string in = client_frame(Opcode::Binary, "a", false);
  Reader r;
  std::size_t consumed;
  EXPECT_EQ(r.next(in.data(), in.size(), consumed).kind, Kind::NeedMore);
  EXPECT_EQ(consumed, in.size());
  EXPECT_TRUE(r.in_message());
  in = client_frame(Opcode::Continuation, "b");
  Event ev = r.next(in.data(), in.size(), consumed);
  EXPECT_EQ(ev.kind, Kind::Binary);
  EXPECT_EQ(ev.payload, "ab");
  EXPECT_FALSE(r.in_message());
}

TEST(WsReader, FragmentationErrors) {
  // A new data frame while a fragmented message is open.
  EXPECT_EQ(error_code(read_every_way(client_frame(Opcode::Text, "a", false) + client_frame(Opcode::Text, "b"))),
            kCloseProtocolError);
  EXPECT_EQ(error_code(read_every_way(client_frame(Opcode::Text, "a", false) + client_frame(Opcode::Binary, "b"))),
            kCloseProtocolError);
  // A continuation with no message open.
  EXPECT_EQ(error_code(read_every_way(client_frame(Opcode::Continuation, "a"))), kCloseProtocolError);
  EXPECT_EQ(error_code(read_every_way(client_frame(Opcode::Text, "a") + client_frame(Opcode::Continuation, "b"))),
            kCloseProtocolError);
}

TEST(WsReader, MessageLimitCountsAllFragments) {
  Options o;
  o.max_message = 10;
  std::string ok = client_frame(Opcode::Binary, "12345", false) + client_frame(Opcode::Continuation, "67890");
  EXPECT_EQ(read_every_way(ok, o), (std::vector<Seen>{{Kind::Binary, "1234567890"}}));
  std::string big = client_frame(Opcode::Binary, "12345", false) + client_frame(Opcode::Continuation, "6789", false) +
                    client_frame(Opcode::Continuation, "01");
  std::vector<Seen> seen = read_every_way(big, o);
  EXPECT_EQ(error_code(seen), kCloseTooBig);
  EXPECT_EQ(seen.size(), 1u);
}

TEST(WsReader, TextMustBeUtf8AcrossFragments) {
  // "é" split between two fragments is fine.
  std::string in = client_frame(Opcode::Text, "caf\xc3", false) + client_frame(Opcode::Continuation, "\xa9");
  EXPECT_EQ(read_every_way(in), (std::vector<Seen>{{Kind::Text, "caf\xc3\xa9"}}));
  // Invalid in one frame, invalid across fragments, truncated at the end: 1007.
  EXPECT_EQ(error_code(read_every_way(client_frame(Opcode::Text, "\xff"))), kCloseInvalidData);
  EXPECT_EQ(error_code(read_every_way(client_frame(Opcode::Text, "a\xc3", false) +
                                      client_frame(Opcode::Continuation, "b"))),
            kCloseInvalidData);
  EXPECT_EQ(error_code(read_every_way(client_frame(Opcode::Text, "a\xc3", false) +
                                      client_frame(Opcode::Continuation, ""))),
            kCloseInvalidData);
  // Binary is never checked.
  EXPECT_EQ(read_every_way(client_frame(Opcode::Binary, "\xff")), (std::vector<Seen>{{Kind::Binary, "\xff"}}));
}

TEST(WsReader, InvalidUtf8FailsBeforeTheMessageEnds) {
  // The bad byte is in the first fragment; the rest never arrives.
  std::string in = client_frame(Opcode::Text, "ok\xc0\xaf", false);
  EXPECT_EQ(error_code(read_every_way(in)), kCloseInvalidData);
}

TEST(WsReader, CompressedMessagesAreFlaggedNotChecked) {
  Options o;
  o.permessage_deflate = true;
  std::string in = client_frame(0x41, std::string("\xff\x00", 2), false) + client_frame(0x80, "\x01");
  EXPECT_EQ(read_every_way(in, o), (std::vector<Seen>{{Kind::Text, std::string("\xff\x00\x01", 3), 0, true}}));
  EXPECT_EQ(read_every_way(client_frame(0xC2, "z"), o), (std::vector<Seen>{{Kind::Binary, "z", 0, true}}));
  // RSV1 on a continuation frame.
  EXPECT_EQ(error_code(read_every_way(client_frame(0x41, "a", false) + client_frame(0xC0, "b"), o)),
            kCloseProtocolError);
}

TEST(WsReader, CloseFrameValidation) {
  EXPECT_EQ(read_every_way(client_frame(Opcode::Close, "")), (std::vector<Seen>{{Kind::Close, "", kCloseNoStatus}}));
  EXPECT_EQ(error_code(read_every_way(client_frame(Opcode::Close, "\x03"))), kCloseProtocolError);
  EXPECT_EQ(error_code(read_every_way(client_frame(Opcode::Close, std::string("\x03\xed", 2)))),  // 1005
            kCloseProtocolError);
  EXPECT_EQ(error_code(read_every_way(client_frame(Opcode::Close, std::string("\x03\xe8\xff", 3)))),
            kCloseInvalidData);
}

TEST(WsReader, CloseAndErrorEndTheStream) {
  std::string in = client_frame(Opcode::Close, std::string("\x03\xe9", 2)) + client_frame(Opcode::Text, "after");
  Reader r;
  std::size_t consumed;
  Event ev = r.next(in.data(), in.size(), consumed);
  ASSERT_EQ(ev.kind, Kind::Close);
  EXPECT_EQ(ev.close.code, 1001);
  ev = r.next(in.data() + consumed, in.size() - consumed, consumed);
  EXPECT_EQ(ev.kind, Kind::Close);
  EXPECT_EQ(consumed, 0u);
  EXPECT_TRUE(ev.payload.empty());

  Reader bad;
  std::string junk = "\x83\x80" + std::string(4, '\0');
  ev = bad.next(junk.data(), junk.size(), consumed);
  ASSERT_EQ(ev.kind, Kind::Error);
  EXPECT_EQ(ev.error.close_code, kCloseProtocolError);
  ev = bad.next(in.data(), in.size(), consumed);
  EXPECT_EQ(ev.kind, Kind::Error);
  EXPECT_EQ(consumed, 0u);
}

TEST(WsReader, LargeFrameReadInPieces) {
  std::string payload(200000, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>('a' + i % 26);
  std::string in = client_frame(Opcode::Text, payload);
  EXPECT_EQ(read_all(in, 4096), (std::vector<Seen>{{Kind::Text, payload}}));
  EXPECT_EQ(read_all(in, 1000), (std::vector<Seen>{{Kind::Text, payload}}));
}

TEST(WsReader, PartialControlFrameInsideAFragmentedMessage) {
  std::string in = client_frame(Opcode::Binary, std::string(50, 'm'), false) +
                   client_frame(Opcode::Ping, std::string(125, 'p')) +
                   client_frame(Opcode::Continuation, std::string(50, 'n'));
  EXPECT_EQ(read_every_way(in),
            (std::vector<Seen>{{Kind::Ping, std::string(125, 'p')},
                               {Kind::Binary, std::string(50, 'm') + std::string(50, 'n')}}));
}

TEST(WsReader, EmptyNullBufferMidFrame) {
  // Regression (fuzz): a frame header read, then a call with no bytes at all (data == nullptr).
  std::string in = client_frame(Opcode::Close, std::string("\x03\xe8", 2));
  Reader r;
  std::size_t consumed;
  EXPECT_EQ(r.next(in.data(), 6, consumed).kind, Kind::NeedMore);
  EXPECT_EQ(consumed, 6u);
  EXPECT_EQ(r.next(nullptr, 0, consumed).kind, Kind::NeedMore);
  EXPECT_EQ(consumed, 0u);
  Event ev = r.next(in.data() + 6, 2, consumed);
  EXPECT_EQ(ev.kind, Kind::Close);
  EXPECT_EQ(ev.close.code, 1000);
  in = client_frame(Opcode::Text, "abc");
  Reader t;
  EXPECT_EQ(t.next(in.data(), 6, consumed).kind, Kind::NeedMore);
  EXPECT_EQ(t.next(nullptr, 0, consumed).kind, Kind::NeedMore);
  EXPECT_EQ(t.next(in.data() + 6, 3, consumed).payload, "abc");
}
