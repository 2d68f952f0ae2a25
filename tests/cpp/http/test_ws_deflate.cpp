#include "http/ws_deflate.hpp"

#include <gtest/gtest.h>

#include <random>

#include <zlib.h>

using namespace puff::http::ws;

TEST(WsDeflate, NegotiatesTheFirstValidOffer) {
  auto p = negotiate_deflate("x-webkit-deflate-frame, permessage-deflate; client_max_window_bits");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->client_max_window_bits, 15);
  EXPECT_TRUE(p->server_no_context_takeover);  // always, see the header
  EXPECT_EQ(deflate_response(*p), "permessage-deflate; server_no_context_takeover");

  p = negotiate_deflate("permessage-deflate; client_max_window_bits=10; client_no_context_takeover");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->client_max_window_bits, 10);
  EXPECT_TRUE(p->client_no_context_takeover);
}

TEST(WsDeflate, DeclinesInvalidOffers) {
  EXPECT_FALSE(negotiate_deflate(""));
  EXPECT_FALSE(negotiate_deflate("permessage-deflate; unknown_param"));
  EXPECT_FALSE(negotiate_deflate("permessage-deflate; server_max_window_bits=16"));
  EXPECT_FALSE(negotiate_deflate("permessage-deflate; server_max_window_bits=7"));
  EXPECT_FALSE(negotiate_deflate("permessage-deflate; client_no_context_takeover; client_no_context_takeover"));
  EXPECT_FALSE(negotiate_deflate("permessage-deflate; server_no_context_takeover=1"));
  // A bad first offer falls through to a good second one.
  EXPECT_TRUE(negotiate_deflate("permessage-deflate; bogus, permessage-deflate"));
}

TEST(WsDeflate, RoundTripsManyMessagesWithClientContext) {
  DeflateParams p;  // client keeps its context; the server resets its own
  p.server_no_context_takeover = true;
  Deflate server(p);
  Deflate mirror(DeflateParams{false, true, 15, 15});  // inflates what `server` sends
  std::mt19937 rng(7);
  for (int i = 0; i < 50; ++i) {
    std::string msg(1000 + rng() % 5000, 'a' + static_cast<char>(i % 26));
    std::string packed, unpacked;
    server.deflate(msg, packed);
    EXPECT_LT(packed.size(), msg.size());
    bool too_big = true;
    ASSERT_TRUE(mirror.inflate(packed, unpacked, 1 << 20, too_big));
    EXPECT_FALSE(too_big);
    EXPECT_EQ(unpacked, msg);
  }
}

TEST(WsDeflate, EmptyMessageAndLimits) {
  Deflate d(DeflateParams{});
  std::string packed, out;
  d.deflate("", packed);
  EXPECT_EQ(packed, std::string(1, '\0'));
  bool too_big = false;
  EXPECT_TRUE(d.inflate(packed, out, 10, too_big));
  EXPECT_TRUE(out.empty());

  Deflate big(DeflateParams{true, true, 15, 15});
  std::string zeros(100000, '\0'), z;
  big.deflate(zeros, z);
  out.clear();
  EXPECT_FALSE(big.inflate(z, out, 1000, too_big));
  EXPECT_TRUE(too_big);
}

TEST(WsDeflate, CorruptDataIsAnError) {
  Deflate d(DeflateParams{});
  std::string out;
  bool too_big = false;
  EXPECT_FALSE(d.inflate(std::string("\xff\xff\xff\xff garbage", 12), out, 1 << 20, too_big));
  EXPECT_FALSE(too_big);
}

TEST(WsDeflate, InflatesAClientThatKeepsItsContextAcrossLargeMessages) {
  // The client side of a connection: one raw-deflate stream, sync-flushed per message, tail cut.
  z_stream c{};
  ASSERT_EQ(deflateInit2(&c, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
  auto compress = [&](const std::string& msg) {
    std::string out;
    c.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(msg.data()));
    c.avail_in = static_cast<uInt>(msg.size());
    unsigned char buf[8192];
    do {
      c.next_out = buf;
      c.avail_out = sizeof buf;
      deflate(&c, Z_SYNC_FLUSH);
      out.append(reinterpret_cast<char*>(buf), sizeof buf - c.avail_out);
    } while (c.avail_out == 0);
    out.resize(out.size() - 4);
    return out;
  };
  Deflate server(DeflateParams{true, false, 15, 15});
  std::string text;
  for (int i = 0; i < 5000; ++i) text += "compress me please ";
  std::mt19937 rng(1);
  for (int i = 0; i < 52; ++i) {
    std::string msg = std::to_string(i) + ":" + text;
    if (i >= 50) {
      msg.resize(100000);
      for (char& ch : msg) ch = static_cast<char>(rng());
    }
    std::string out;
    bool too_big = false;
    ASSERT_TRUE(server.inflate(compress(msg), out, 16 << 20, too_big)) << i;
    ASSERT_EQ(out, msg) << i;
  }
  deflateEnd(&c);
}
