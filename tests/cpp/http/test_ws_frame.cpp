#include "http/ws_frame.hpp"

#include <gtest/gtest.h>

#include <string>

#include "http/ws_handshake.hpp"
#include "ws_test_util.hpp"

using namespace puff::http::ws;
using puff::http::Status;
using puff::http::ws::test::client_frame;
using puff::http::ws::test::kMask;

namespace {

struct Header {
  Status status;
  FrameHeader h;
  Error err;
};

Header parse(std::string_view in, Options o = {}) {
  Header r;
  r.status = parse_frame_header(in, o, r.h, r.err);
  return r;
}

void expect_error(std::string_view in, std::uint16_t code, Options o = {}) {
  Header r = parse(in, o);
  ASSERT_EQ(r.status, Status::Error);
  EXPECT_EQ(r.err.close_code, code) << r.err.reason;
  EXPECT_FALSE(r.err.reason.empty());
}

}  // namespace

// ---- header parsing ------------------------------------------------------------------

TEST(WsFrame, ParsesTheThreeLengthForms) {
  for (std::size_t n : {0u, 1u, 125u, 126u, 127u, 65535u, 65536u, 70000u}) {
    std::string f = client_frame(Opcode::Binary, std::string(n, 'x'));
    Header r = parse(f);
    ASSERT_EQ(r.status, Status::Complete) << n;
    EXPECT_TRUE(r.h.fin);
    EXPECT_TRUE(r.h.masked);
    EXPECT_EQ(r.h.opcode, Opcode::Binary);
    EXPECT_EQ(r.h.payload_length, n);
    EXPECT_EQ(r.h.header_size, n < 126 ? 6u : n <= 65535 ? 8u : 14u);
    EXPECT_EQ(r.h.mask, kMask);
    EXPECT_EQ(f.size(), r.h.header_size + n);
  }
}

TEST(WsFrame, IncompleteUntilTheWholeHeaderIsThere) {
  for (std::size_t n : {5u, 300u, 70000u}) {
    std::string f = client_frame(Opcode::Text, std::string(n, 'a'));
    std::size_t header = parse(f).h.header_size;
    for (std::size_t k = 0; k < header; ++k) EXPECT_EQ(parse(std::string(f, 0, k)).status, Status::Incomplete) << k;
    EXPECT_EQ(parse(std::string(f, 0, header)).status, Status::Complete);
  }
}

TEST(WsFrame, NonMinimalLengthsAreAccepted) {
  Header r = parse(client_frame(0x82, "abc", 16));
  ASSERT_EQ(r.status, Status::Complete);
  EXPECT_EQ(r.h.payload_length, 3u);
  r = parse(client_frame(0x82, "abc", 64));
  ASSERT_EQ(r.status, Status::Complete);
  EXPECT_EQ(r.h.payload_length, 3u);
}

TEST(WsFrame, ProtocolErrors) {
  expect_error(client_frame(0x82, "x", 0, kMask, /*masked=*/false), kCloseProtocolError);  // unmasked
  for (std::uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF})
    expect_error(client_frame(static_cast<std::uint8_t>(0x80 | op), ""), kCloseProtocolError);
  expect_error(client_frame(0x88 & 0x0F, ""), kCloseProtocolError);          // close without FIN
  expect_error(client_frame(0x09, "ping"), kCloseProtocolError);             // ping without FIN
  expect_error(client_frame(0x89, std::string(126, 'p')), kCloseProtocolError);  // control > 125
  expect_error(client_frame(0x8A, "", 16), kCloseProtocolError);             // 126 form on control
  expect_error(client_frame(0xA2, "x"), kCloseProtocolError);                // RSV2
  expect_error(client_frame(0x92, "x"), kCloseProtocolError);                // RSV3
  expect_error(client_frame(0xC2, "x"), kCloseProtocolError);                // RSV1, no deflate
}

TEST(WsFrame, Rsv1OnlyOnAFirstDataFrameWithDeflate) {
  Options deflate;
  deflate.permessage_deflate = true;
  Header r = parse(client_frame(0xC1, "x"), deflate);
  ASSERT_EQ(r.status, Status::Complete);
  EXPECT_TRUE(r.h.rsv1);
  EXPECT_EQ(parse(client_frame(0x42, "x"), deflate).status, Status::Complete);  // first fragment
  expect_error(client_frame(0xC0, "x"), kCloseProtocolError, deflate);         // continuation
  expect_error(client_frame(0xC9, "x"), kCloseProtocolError, deflate);         // ping
  expect_error(client_frame(0xC8, ""), kCloseProtocolError, deflate);          // close
}

TEST(WsFrame, ErrorsFromTheFirstTwoBytesDoNotWait) {
  std::string f = client_frame(0x83, std::string(300, 'x'));
  Header r = parse(f.substr(0, 2));
  EXPECT_EQ(r.status, Status::Error);
}

TEST(WsFrame, LengthTopBitIsAnError) {
  std::string f("\x82\xff\x80\x00\x00\x00\x00\x00\x00\x01\0\0\0\0", 14);
  expect_error(f, kCloseProtocolError);
  f[2] = 0x7f;  // 2^63 - 2^56 + 1: legal encoding, over any message limit
  expect_error(f, kCloseTooBig);
}

TEST(WsFrame, MessageLimit) {
  Options o;
  o.max_message = 100;
  EXPECT_EQ(parse(client_frame(Opcode::Binary, std::string(100, 'x')), o).status, Status::Complete);
  expect_error(client_frame(Opcode::Binary, std::string(101, 'x')), kCloseTooBig, o);
  // Refused on the header alone: the payload need not have arrived.
  expect_error(client_frame(Opcode::Text, std::string(101, 'x')).substr(0, 8), kCloseTooBig, o);
  // Control frames are bounded by 125 instead.
  o.max_message = 1;
  EXPECT_EQ(parse(client_frame(Opcode::Ping, "hello"), o).status, Status::Complete);
}

// ---- unmasking -----------------------------------------------------------------------

TEST(WsFrame, UnmaskMatchesBytewiseAtEveryOffsetAndLength) {
  std::string plain;
  for (int i = 0; i < 100; ++i) plain += static_cast<char>(i * 7 + 3);
  std::array<std::uint8_t, 4> mask{0x01, 0x80, 0xff, 0x5a};
  for (std::size_t offset = 0; offset < 8; ++offset) {
    for (std::size_t len = 0; len <= 40; ++len) {
      std::string data = plain.substr(offset, len);
      std::string expect = data;
      for (std::size_t i = 0; i < len; ++i) expect[i] = static_cast<char>(expect[i] ^ mask[(offset + i) % 4]);
      unmask(data.data(), data.size(), mask, offset);
      EXPECT_EQ(data, expect) << offset << " " << len;
    }
  }
}

TEST(WsFrame, UnmaskInPiecesEqualsUnmaskWhole) {
  std::string plain(1000, '\0');
  for (std::size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<char>(i);
  std::string whole = plain;
  unmask(whole.data(), whole.size(), kMask);
  for (std::size_t cut : {1u, 3u, 7u, 8u, 9u, 500u, 999u}) {
    std::string pieces = plain;
    unmask(pieces.data(), cut, kMask, 0);
    unmask(pieces.data() + cut, pieces.size() - cut, kMask, cut);
    EXPECT_EQ(pieces, whole) << cut;
  }
  unmask(whole.data(), whole.size(), kMask);  // its own inverse
  EXPECT_EQ(whole, plain);
}

// ---- encoding ------------------------------------------------------------------------

TEST(WsFrame, EncodesTheShortestLengthForm) {
  char h[kMaxServerHeaderSize];
  EXPECT_EQ(encode_frame_header(h, Opcode::Text, 0), 2u);
  EXPECT_EQ(std::string(h, 2), std::string("\x81\x00", 2));
  EXPECT_EQ(encode_frame_header(h, Opcode::Binary, 125), 2u);
  EXPECT_EQ(std::string(h, 2), "\x82\x7d");
  EXPECT_EQ(encode_frame_header(h, Opcode::Binary, 126), 4u);
  EXPECT_EQ(std::string(h, 4), std::string("\x82\x7e\x00\x7e", 4));
  EXPECT_EQ(encode_frame_header(h, Opcode::Binary, 65535), 4u);
  EXPECT_EQ(std::string(h, 4), "\x82\x7e\xff\xff");
  EXPECT_EQ(encode_frame_header(h, Opcode::Binary, 65536), 10u);
  EXPECT_EQ(std::string(h, 10), std::string("\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10));
  EXPECT_EQ(encode_frame_header(h, Opcode::Text, 1, /*fin=*/false, /*rsv1=*/true), 2u);
  EXPECT_EQ(static_cast<unsigned char>(h[0]), 0x41);
  EXPECT_EQ(encode_frame_header(h, Opcode::Continuation, 1, true), 2u);
  EXPECT_EQ(static_cast<unsigned char>(h[0]), 0x80);
}

TEST(WsFrame, AppendFrameRoundTripsThroughTheParserOnceMasked) {
  for (std::size_t n : {0u, 10u, 125u, 126u, 65535u, 65536u}) {
    std::string payload(n, 'q');
    std::string out = "prefix";
    append_frame(out, Opcode::Binary, payload);
    std::string frame = out.substr(6);
    // Server frames are unmasked: set the mask bit and insert a zero key to read it as a client's.
    std::size_t hlen = n < 126 ? 2 : n <= 65535 ? 4 : 10;
    frame[1] = static_cast<char>(frame[1] | 0x80);
    frame.insert(hlen, 4, '\0');
    Header r = parse(frame);
    ASSERT_EQ(r.status, Status::Complete);
    EXPECT_EQ(r.h.payload_length, n);
    EXPECT_EQ(frame.substr(r.h.header_size), payload);
  }
}

TEST(WsFrame, CloseFrames) {
  std::string out;
  append_close_frame(out, 1000, "bye");
  EXPECT_EQ(out, std::string("\x88\x05\x03\xe8" "bye", 7));
  out.clear();
  append_close_frame(out, 0);
  EXPECT_EQ(out, std::string("\x88\x00", 2));
  // A long reason is cut to 123 bytes at a code point boundary.
  out.clear();
  std::string reason;
  for (int i = 0; i < 50; ++i) reason += "\xc3\xa9";  // 100 bytes
  reason = "x" + reason + reason;                      // 201 bytes
  append_close_frame(out, 1001, reason);
  EXPECT_LE(out.size(), 2u + 125u);
  CloseInfo info;
  Error err;
  ASSERT_TRUE(parse_close_payload(std::string_view(out).substr(2), info, err)) << err.reason;
  EXPECT_EQ(info.code, 1001);
  EXPECT_EQ(info.reason.size(), 123u);  // "x" + 61 two-byte characters
}

TEST(WsFrame, ClosePayloads) {
  CloseInfo info;
  Error err;
  ASSERT_TRUE(parse_close_payload("", info, err));
  EXPECT_EQ(info.code, kCloseNoStatus);
  ASSERT_TRUE(parse_close_payload(std::string("\x03\xe8", 2), info, err));
  EXPECT_EQ(info.code, 1000);
  EXPECT_EQ(info.reason, "");
  ASSERT_TRUE(parse_close_payload("\x0f\xa0gone \xe2\x9c\x93", info, err));
  EXPECT_EQ(info.code, 4000);
  EXPECT_EQ(info.reason, "gone \xe2\x9c\x93");

  EXPECT_FALSE(parse_close_payload("\x03", info, err));
  EXPECT_EQ(err.close_code, kCloseProtocolError);
  EXPECT_FALSE(parse_close_payload("\x03\xe8\xff", info, err));
  EXPECT_EQ(err.close_code, kCloseInvalidData);
  EXPECT_FALSE(parse_close_payload("\x03\xe8\xe2\x9c", info, err));  // truncated code point
  EXPECT_EQ(err.close_code, kCloseInvalidData);
}

TEST(WsFrame, CloseCodes) {
  for (int c : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999})
    EXPECT_TRUE(valid_close_code(static_cast<std::uint16_t>(c))) << c;
  for (int c : {0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535})
    EXPECT_FALSE(valid_close_code(static_cast<std::uint16_t>(c))) << c;
  for (int c : {999, 1005, 1006, 1015, 5000}) {
    CloseInfo info;
    Error err;
    std::string p{static_cast<char>(c >> 8), static_cast<char>(c & 0xff)};
    EXPECT_FALSE(parse_close_payload(p, info, err)) << c;
    EXPECT_EQ(err.close_code, kCloseProtocolError);
  }
}

// ---- handshake -----------------------------------------------------------------------

TEST(WsHandshake, AcceptKeyFromRfc6455) {
  // RFC 6455 §1.3's example.
  EXPECT_EQ(accept_key("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

TEST(WsHandshake, Sha1Vectors) {
  auto hex = [](const std::string& s) {
    static const char* d = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) (out += d[c >> 4]) += d[c & 15];
    return out;
  };
  EXPECT_EQ(hex(sha1("")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
  EXPECT_EQ(hex(sha1("abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
  EXPECT_EQ(hex(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
  EXPECT_EQ(hex(sha1(std::string(1000000, 'a'))), "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
  // Padding edges: 55, 56, 63, 64 bytes.
  EXPECT_EQ(hex(sha1(std::string(55, 'a'))), "c1c8bbdc22796e28c0e15163d20899b65621d65a");
  EXPECT_EQ(hex(sha1(std::string(56, 'a'))), "c2db330f6083854c99d4b5bfb6e8f29f201be699");
  EXPECT_EQ(hex(sha1(std::string(64, 'a'))), "0098ba824b5c16427bd7a1122a5a442a25ec644d");
}

TEST(WsHandshake, Base64) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("\xff\xfe\xfd"), "//79");
}

TEST(WsHandshake, ClientKeys) {
  EXPECT_TRUE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ=="));
  EXPECT_TRUE(valid_client_key("AAAAAAAAAAAAAAAAAAAAAA=="));
  EXPECT_FALSE(valid_client_key(""));
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ="));
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZR=="));  // 'R' leaves non-zero bits
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25j*Q=="));
  EXPECT_FALSE(valid_client_key("dGhlIHNhbXBsZSBub25jZQ==="));
}
