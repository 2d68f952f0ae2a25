// libFuzzer target: puff::http::ChunkedDecoder. Beyond "no crash" (ASan/UBSan), it checks:
// - decoded data never exceeds the bytes consumed, nor max_body; every view points into its piece;
// - consumed <= input; Incomplete consumes everything;
// - the same bytes fed whole, split in two at several cuts, and byte by byte give the same status,
//   error, data and end position;
// - after Complete/Error nothing more is consumed.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "http/chunked.hpp"

using namespace puff::http;

#define CHECK PUFF_FUZZ_CHECK

namespace {

struct Result {
  Status status = Status::Incomplete;
  Error err;
  std::string data;
  std::size_t consumed = 0;
};

// Feeds `in` in pieces at the given cut points, each piece in a buffer of its own size.
Result feed(std::string_view in, const std::vector<std::size_t>& cuts, const Limits& limits) {
  ChunkedDecoder d(limits);
  Result r;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= cuts.size(); ++i) {
    const std::size_t end = i < cuts.size() ? cuts[i] : in.size();
    std::vector<char> piece(in.begin() + static_cast<std::ptrdiff_t>(start), in.begin() + static_cast<std::ptrdiff_t>(end));
    std::string_view view(piece.data(), piece.size());
    std::vector<std::string_view> out;
    std::size_t consumed = 12345;
    r.status = d.decode(view, consumed, out, r.err);
    CHECK(consumed <= view.size());
    std::size_t produced = 0;
    for (std::string_view v : out) {
      CHECK(v.data() >= view.data() && v.data() + v.size() <= view.data() + consumed);
      produced += v.size();
      r.data.append(v);
    }
    CHECK(produced <= consumed);
    r.consumed += consumed;
    if (r.status == Status::Incomplete) {
      CHECK(consumed == view.size());
    } else {
      // Terminal: another call consumes nothing and repeats the status.
      std::vector<std::string_view> more;
      std::size_t again = 1;
      Error err2;
      CHECK(d.decode(view.substr(consumed), again, more, err2) == r.status);
      CHECK(again == 0 && more.empty());
      if (r.status == Status::Complete) CHECK(d.done());
      break;
    }
    start = end;
  }
  CHECK(d.body_size() == r.data.size());
  CHECK(r.data.size() <= limits.max_body);
  CHECK(r.data.size() <= r.consumed && r.consumed <= in.size());
  if (r.status == Status::Error) {
    CHECK(r.err.http_status == 400 || r.err.http_status == 413 || r.err.http_status == 431);
    CHECK(!r.err.reason.empty());
  }
  if (r.status == Status::Complete) CHECK(r.consumed >= 5 && in.substr(r.consumed - 2, 2) == "\r\n");
  return r;
}

bool same(const Result& a, const Result& b) {
  return a.status == b.status && a.data == b.data && a.consumed == b.consumed &&
         a.err.http_status == b.err.http_status && a.err.reason == b.err.reason;
}

void check(std::string_view in, const Limits& limits) {
  const Result whole = feed(in, {}, limits);
  for (std::size_t cut : {in.size() / 2, in.size() / 3, in.size() ? in.size() - 1 : 0, std::size_t{1}}) {
    if (cut > in.size()) continue;
    Result split = feed(in, {cut}, limits);
    // Errors are found at the same byte, so `consumed` matches as well.
    CHECK(same(whole, split));
  }
  if (in.size() <= 2048) {
    std::vector<std::size_t> every;
    for (std::size_t k = 1; k < in.size(); ++k) every.push_back(k);
    CHECK(same(whole, feed(in, every, limits)));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view in(reinterpret_cast<const char*>(data), size);
  check(in, Limits{});
  Limits tight;
  tight.max_body = 64;
  tight.max_chunk_ext = 16;
  tight.max_trailer_bytes = 32;
  check(in, tight);
  return 0;
}
