#include "http/response.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include "http/compression.hpp"
#include "http/exchange.hpp"

using namespace puff::http;

namespace {

std::string gunzip(const std::string& in) {
  z_stream z{};
  inflateInit2(&z, 31);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  std::string out;
  char buf[4096];
  int rc;
  do {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof buf;
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof buf - z.avail_out);
  } while (rc == Z_OK);
  inflateEnd(&z);
  EXPECT_EQ(rc, Z_STREAM_END);
  return out;
}

/** Decodes a chunked body. */
std::string dechunk(std::string_view s) {
  std::string out;
  while (true) {
    auto eol = s.find("\r\n");
    std::size_t n = std::stoul(std::string(s.substr(0, eol)), nullptr, 16);
    s.remove_prefix(eol + 2);
    if (n == 0) break;
    out.append(s.substr(0, n));
    s.remove_prefix(n + 2);
  }
  return out;
}

}  // namespace

TEST(ResponseWriter, KnownBodyGetsContentLengthOnce) {
  ResponseWriter w(1, true, false);
  ASSERT_TRUE(w.set_status_line("200 OK").empty());
  ASSERT_TRUE(w.add_header("Content-Length", "5").empty());
  std::string h = w.head(5);
  EXPECT_EQ(h.find("Content-Length: 5"), h.rfind("Content-Length: 5"));  // exactly once
  std::string out;
  w.frame(out, "hello world", 11);
  EXPECT_EQ(out, "hello");  // clamped to the declared length
  EXPECT_FALSE(w.keep_alive());  // it tried to send more: close
}

TEST(ResponseWriter, UnknownBodyIsChunkedOn11AndCloseDelimitedOn10) {
  ResponseWriter w11(1, true, false);
  w11.set_status(200);
  EXPECT_NE(w11.head(-1).find("Transfer-Encoding: chunked"), std::string::npos);
  std::string out;
  w11.frame(out, "abc", 3);
  out += w11.finish();
  EXPECT_EQ(out, "3\r\nabc\r\n0\r\n\r\n");
  EXPECT_TRUE(w11.keep_alive());

  ResponseWriter w10(0, true, false);
  w10.set_status(200);
  std::string h = w10.head(-1);
  EXPECT_NE(h.find("Connection: close"), std::string::npos);
  EXPECT_FALSE(w10.keep_alive());
}

TEST(ResponseWriter, FrameAroundMatchesFrameWithoutCopyingTheBody) {
  // Chunked: the size line before, CRLF after, the whole body lent.
  ResponseWriter a(1, true, false), b(1, true, false);
  a.set_status(200);
  b.set_status(200);
  a.head(-1);
  b.head(-1);
  std::string copied, before = "X", after;
  a.frame(copied, "abcdef", 6);
  EXPECT_EQ(b.frame_around(before, after, 6), 6u);
  EXPECT_EQ("X" + copied, before + "abcdef" + after);
  EXPECT_EQ(a.finish(), b.finish());

  // A declared length: nothing around, and the lent part stops at the length (then close).
  ResponseWriter c(1, true, false);
  c.set_status(200);
  c.add_header("Content-Length", "4");
  c.head(4);
  std::string pre, post;
  EXPECT_EQ(c.frame_around(pre, post, 3), 3u);
  EXPECT_EQ(c.frame_around(pre, post, 3), 1u);
  EXPECT_TRUE(pre.empty() && post.empty());
  EXPECT_FALSE(c.keep_alive());

  // HEAD: no body bytes at all.
  ResponseWriter d(1, true, true);
  d.set_status(200);
  d.head(10);
  EXPECT_EQ(d.frame_around(pre, post, 10), 0u);
}

TEST(Exchange, WriteRefLendsTheBodyAndDropsTheHolderWithTheOutput) {
  auto held = std::make_shared<int>(7);
  std::weak_ptr<int> watch = held;
  std::string body = "lent body";
  Exchange ex;
  ASSERT_TRUE(ex.write_ref("head|", body, std::move(held), "|tail", false));
  EXPECT_EQ(ex.queued(), 5u + body.size() + 5u);
  std::vector<OutPiece> out;
  bool last = false, aborted = false;
  ex.io_take_output(out, last, aborted);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].view().data(), body.data());  // the caller's bytes, not a copy
  std::string joined;
  for (auto& p : out) joined += p.view();
  EXPECT_EQ(joined, "head|lent body|tail");
  EXPECT_FALSE(watch.expired());
  out.clear();
  EXPECT_TRUE(watch.expired());  // written: the holder is released

  // A closed exchange drops the holder at once and says so.
  auto again = std::make_shared<int>(8);
  std::weak_ptr<int> watch2 = again;
  ex.io_closed();
  EXPECT_FALSE(ex.write_ref("", body, std::move(again), "", true));
  EXPECT_TRUE(watch2.expired());
}

TEST(ResponseWriter, HopByHopHeadersAreDroppedAndConnectionCloseHonoured) {
  ResponseWriter w(1, true, false);
  w.set_status(200);
  w.add_header("Transfer-Encoding", "chunked");
  w.add_header("Connection", "keep-alive, close");
  w.add_header("X-Ok", "1");
  std::string h = w.head(0);
  EXPECT_EQ(h.find("Transfer-Encoding"), std::string::npos);
  EXPECT_NE(h.find("X-Ok: 1"), std::string::npos);
  EXPECT_NE(h.find("Connection: close"), std::string::npos);
}

TEST(ResponseWriter, RejectsInjection) {
  ResponseWriter w(1, true, false);
  EXPECT_FALSE(w.add_header("X-Bad", "a\r\nInjected: 1").empty());
  EXPECT_FALSE(w.add_header("Bad Name", "v").empty());
  EXPECT_FALSE(w.add_header("Content-Length", "-1").empty());
  EXPECT_FALSE(w.set_status_line("20 OK").empty());
  EXPECT_FALSE(w.set_status(99).empty());
}

TEST(ResponseWriter, GzipWhenAcceptedAndCompressible) {
  Exchange ex;
  ex.method = "GET";
  ex.gzip_min_size = 10;
  ResponseWriter w(ex);
  w.set_status(200);
  w.add_header("Content-Type", "application/json");
  w.add_header("Content-Length", "2000");
  std::string h = w.head(2000);
  EXPECT_TRUE(w.compressing());
  EXPECT_NE(h.find("Content-Encoding: gzip"), std::string::npos);
  EXPECT_EQ(h.find("Content-Length"), std::string::npos);  // replaced by chunking
  std::string body(2000, 'x'), out;
  w.frame(out, body.data(), 1000);
  w.frame(out, body.data() + 1000, 1000);
  out += w.finish();
  std::string packed = dechunk(out);
  EXPECT_LT(packed.size(), 200u);
  EXPECT_EQ(gunzip(packed), body);
}

TEST(ResponseWriter, NoGzipForSmallEncodedOrBinaryBodies) {
  Exchange ex;
  ex.method = "GET";
  ex.gzip_min_size = 1000;
  ResponseWriter small(ex);
  small.set_status(200);
  small.add_header("Content-Type", "text/html");
  small.head(10);
  EXPECT_FALSE(small.compressing());
  ResponseWriter png(ex);
  png.set_status(200);
  png.add_header("Content-Type", "image/png");
  png.head(-1);
  EXPECT_FALSE(png.compressing());
  ResponseWriter encoded(ex);
  encoded.set_status(200);
  encoded.add_header("Content-Type", "text/html");
  encoded.add_header("Content-Encoding", "br");
  encoded.head(-1);
  EXPECT_FALSE(encoded.compressing());
}

TEST(Compression, AcceptEncoding) {
  EXPECT_TRUE(accepts_gzip("gzip, deflate, br"));
  EXPECT_TRUE(accepts_gzip("br;q=1.0, gzip;q=0.8"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0"));
  EXPECT_FALSE(accepts_gzip("gzip;q=0.000, *"));
  EXPECT_TRUE(accepts_gzip("*"));
  EXPECT_FALSE(accepts_gzip("identity"));
  EXPECT_FALSE(accepts_gzip(""));
}
