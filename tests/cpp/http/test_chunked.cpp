#include "http/chunked.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using puff::http::ChunkedDecoder;
using puff::http::Error;
using puff::http::Limits;
using puff::http::Status;

namespace {

struct Decoded {
  Status status = Status::Incomplete;
  std::string data;
  std::size_t consumed = 0;  // over all pieces
  Error err;
};

// Feeds `in` in pieces of `step` bytes (0: all at once); stops at Complete or Error.
Decoded decode(std::string_view in, std::size_t step = 0, const Limits& limits = {}) {
  ChunkedDecoder d(limits);
  Decoded r;
  if (step == 0) step = in.size() ? in.size() : 1;
  for (std::size_t off = 0; off <= in.size(); off += step) {
    std::string piece(in.substr(off, step));  // own copy: ASan sees reads past the piece
    std::vector<std::string_view> out;
    std::size_t consumed = 0;
    r.status = d.decode(piece, consumed, out, r.err);
    for (auto v : out) {
      EXPECT_TRUE(v.data() >= piece.data() && v.data() + v.size() <= piece.data() + piece.size());
      r.data.append(v);
    }
    EXPECT_LE(consumed, piece.size());
    r.consumed += consumed;
    if (r.status != Status::Incomplete) break;
    EXPECT_EQ(consumed, piece.size());
    if (off + step > in.size()) break;
  }
  EXPECT_EQ(d.body_size(), r.data.size());
  return r;
}

void expect_error(std::string_view in, int status, const Limits& limits = {}) {
  for (std::size_t step : {std::size_t{0}, std::size_t{1}, std::size_t{3}}) {
    Decoded r = decode(in, step, limits);
    ASSERT_EQ(r.status, Status::Error) << in << " step " << step;
    EXPECT_EQ(r.err.http_status, status) << in << " -> " << r.err.reason;
  }
}

}  // namespace

TEST(Chunked, SimpleBody) {
  std::string in = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  Decoded r = decode(in);
  ASSERT_EQ(r.status, Status::Complete);
  EXPECT_EQ(r.data, "hello world");
  EXPECT_EQ(r.consumed, in.size());
}

TEST(Chunked, OutputViewsPointIntoTheInput) {
  std::string in = "3\r\nabc\r\n0\r\n\r\n";
  ChunkedDecoder d;
  std::vector<std::string_view> out;
  std::size_t consumed;
  Error err;
  ASSERT_EQ(d.decode(in, consumed, out, err), Status::Complete);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].data(), in.data() + 3);
  EXPECT_EQ(out[0], "abc");
  EXPECT_TRUE(d.done());
}

TEST(Chunked, EverySplitGivesTheSameResult) {
  const std::string bodies[] = {
      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
      "A;name=value;q=\"quoted;\\\"str\"\r\n0123456789\r\n000\r\nTrailer-A: 1\r\nB:\r\n\r\n",
      "1 ; ext\r\nx\r\n0 \t;last\r\n\r\n",
      "0\r\n\r\n",
      "fF\r\n" + std::string(255, 'z') + "\r\n0\r\n\r\n",
  };
  for (const std::string& body : bodies) {
    Decoded whole = decode(body);
    ASSERT_EQ(whole.status, Status::Complete) << body << ": " << whole.err.reason;
    ASSERT_EQ(whole.consumed, body.size());
    for (std::size_t step = 1; step <= body.size(); ++step) {
      Decoded r = decode(body, step);
      EXPECT_EQ(r.status, Status::Complete) << step;
      EXPECT_EQ(r.data, whole.data) << step;
      EXPECT_EQ(r.consumed, body.size()) << step;
    }
    // Two pieces, every cut.
    for (std::size_t cut = 0; cut <= body.size(); ++cut) {
      ChunkedDecoder d;
      std::vector<std::string_view> out;
      std::size_t c1 = 0, c2 = 0;
      Error err;
      Status s1 = d.decode(std::string_view(body).substr(0, cut), c1, out, err);
      if (cut < body.size()) {
        ASSERT_EQ(s1, Status::Incomplete);
        EXPECT_EQ(c1, cut);
        ASSERT_EQ(d.decode(std::string_view(body).substr(cut), c2, out, err), Status::Complete);
      } else {
        ASSERT_EQ(s1, Status::Complete);
      }
      std::string data;
      for (auto v : out) data.append(v);
      EXPECT_EQ(data, whole.data);
      EXPECT_EQ(c1 + c2, body.size());
    }
  }
}

TEST(Chunked, PipelinedRequestIsLeftInTheBuffer) {
  std::string in = "3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n";
  Decoded r = decode(in);
  ASSERT_EQ(r.status, Status::Complete);
  EXPECT_EQ(r.consumed, in.find("GET"));
  EXPECT_EQ(r.data, "abc");
  // Byte by byte: the same end.
  r = decode(in, 1);
  EXPECT_EQ(r.consumed, in.find("GET"));
}

TEST(Chunked, AfterCompleteNothingMoreIsConsumed) {
  ChunkedDecoder d;
  std::vector<std::string_view> out;
  std::size_t consumed;
  Error err;
  ASSERT_EQ(d.decode("0\r\n\r\n", consumed, out, err), Status::Complete);
  EXPECT_EQ(d.decode("1\r\nx\r\n", consumed, out, err), Status::Complete);
  EXPECT_EQ(consumed, 0u);
  EXPECT_TRUE(out.empty());
  d.reset();
  EXPECT_FALSE(d.done());
  EXPECT_EQ(d.decode("1\r\nx\r\n0\r\n\r\n", consumed, out, err), Status::Complete);
  EXPECT_EQ(d.body_size(), 1u);
}

TEST(Chunked, ErrorIsSticky) {
  ChunkedDecoder d;
  std::vector<std::string_view> out;
  std::size_t consumed;
  Error err;
  ASSERT_EQ(d.decode("z\r\n", consumed, out, err), Status::Error);
  err = {};
  EXPECT_EQ(d.decode("0\r\n\r\n", consumed, out, err), Status::Error);
  EXPECT_EQ(err.http_status, 400);
  EXPECT_EQ(consumed, 0u);
}

TEST(Chunked, HexSizes) {
  Decoded r = decode("a\r\n0123456789\r\nA\r\n0123456789\r\n0000000000000010\r\n0123456789abcdef\r\n0\r\n\r\n");
  ASSERT_EQ(r.status, Status::Complete);
  EXPECT_EQ(r.data.size(), 36u);
}

TEST(Chunked, BadSizes) {
  for (const char* in : {
           "\r\nabc\r\n0\r\n\r\n",        // empty size
           "g\r\n",                       // not hex
           "-1\r\n",                      // sign
           "+1\r\n",                      //
           "0x5\r\nhello\r\n",            // prefix
           " 5\r\nhello\r\n",             // leading whitespace
           "5 \r\nhello\r\n",             // trailing whitespace without an extension
           "5\t\r\nhello\r\n",            //
           "5 x\r\nhello\r\n",            // junk after BWS
           "5\nhello\r\n",                // bare LF
           "5\rhello\r\n",                // bare CR
           "5;a\nhello\r\n",              // bare LF in an extension
           "5;a\x01\r\nhello\r\n",        // CTL in an extension
           "10000000000000000\r\n",       // 2^64: 17 digits
           "00000000000000001\r\n",       // 17 digits, even with leading zeros
       }) {
    SCOPED_TRACE(in);
    expect_error(in, 400);
  }
}

TEST(Chunked, MissingCrlfAfterData) {
  expect_error("3\r\nabcd\r\n0\r\n\r\n", 400);
  expect_error("3\r\nabc\n0\r\n\r\n", 400);
  expect_error("3\r\nabc\r0\r\n\r\n", 400);
  expect_error("3\r\nabc0\r\n\r\n", 400);
}

TEST(Chunked, BodyLimit) {
  Limits l;
  l.max_body = 10;
  Decoded r = decode("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", 0, l);
  EXPECT_EQ(r.status, Status::Complete);
  expect_error("5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", 413, l);
  // Refused at the size line, before any data.
  r = decode("b\r\n", 0, l);
  EXPECT_EQ(r.status, Status::Error);
  EXPECT_EQ(r.err.http_status, 413);
  EXPECT_EQ(r.data, "");
  expect_error("ffffffffffffffff\r\n", 413);  // the largest size that parses
}

TEST(Chunked, ExtensionLimits) {
  Limits l;
  l.max_chunk_ext = 8;
  EXPECT_EQ(decode("1;1234567\r\nx\r\n0\r\n\r\n", 0, l).status, Status::Complete);  // 8 bytes
  expect_error("1;12345678\r\nx\r\n0\r\n\r\n", 400, l);
  // Over a body, extensions may not outgrow the data: max_chunk_ext + data so far.
  std::string many;
  for (int i = 0; i < 20; ++i) many += "1;1234567\r\nx\r\n";
  expect_error(many + "0\r\n\r\n", 400, l);
  std::string fair;
  for (int i = 0; i < 20; ++i) fair += "8;abc\r\n12345678\r\n";
  EXPECT_EQ(decode(fair + "0\r\n\r\n", 0, l).status, Status::Complete);
}

TEST(Chunked, TrailersAreValidatedAndDropped) {
  Decoded r = decode("1\r\nx\r\n0\r\nExpires: never\r\nX-Sum:  abc \r\n\r\nNEXT");
  ASSERT_EQ(r.status, Status::Complete);
  EXPECT_EQ(r.data, "x");
  for (const char* in : {
           "0\r\nX : y\r\n\r\n",      // whitespace before colon
           "0\r\n: y\r\n\r\n",        // empty name
           "0\r\nX: y\r\n z\r\n\r\n", // obs-fold
           "0\r\nNoColon\r\n\r\n",    //
           "0\r\nX: a\x01\r\n\r\n",   // CTL
           "0\r\nX: y\n\r\n",         // bare LF
           "0\r\nX: y\r\n\n",         //
           "0\r\n\n",                 //
           "0\r\n\rX",                // bare CR
       }) {
    SCOPED_TRACE(in);
    expect_error(in, 400);
  }
}

TEST(Chunked, TrailerLimit) {
  Limits l;
  l.max_trailer_bytes = 16;
  EXPECT_EQ(decode("0\r\nX: 123456789\r\n\r\n", 0, l).status, Status::Complete);  // 16 bytes
  expect_error("0\r\nX: 1234567890\r\n\r\n", 431, l);
  // Endless trailers are refused at the limit, not at their end.
  Decoded r = decode("0\r\nX: " + std::string(100, 'a'), 0, l);
  EXPECT_EQ(r.status, Status::Error);
  EXPECT_EQ(r.err.http_status, 431);
}
