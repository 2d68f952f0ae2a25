// libFuzzer target: puff::http::parse_request_head. Beyond "no crash" (ASan/UBSan), it checks:
// - Complete: head_size <= input size and within max_header_bytes; every view points inside the
//   head; the derived fields agree with each other and with the limits;
// - any prefix of the input is Incomplete, or fails exactly as the whole input does; a prefix that
//   holds the whole head parses to the same result;
// - a reused RequestHead gives the same result as a fresh one.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "http/http1_parser.hpp"

using namespace puff::http;

namespace {

#define CHECK PUFF_FUZZ_CHECK

bool inside(std::string_view v, std::string_view whole) {
  return v.empty() || (v.data() >= whole.data() && v.data() + v.size() <= whole.data() + whole.size());
}

bool same(const RequestHead& a, const RequestHead& b) {
  if (a.headers.size() != b.headers.size()) return false;
  for (std::size_t i = 0; i < a.headers.size(); ++i)
    if (a.headers[i].name != b.headers[i].name || a.headers[i].value != b.headers[i].value) return false;
  return a.method == b.method && a.target == b.target && a.path == b.path && a.query == b.query &&
         a.target_form == b.target_form && a.authority == b.authority && a.version_minor == b.version_minor &&
         a.head_size == b.head_size && a.keep_alive == b.keep_alive && a.chunked == b.chunked &&
         a.has_content_length == b.has_content_length && a.content_length == b.content_length &&
         a.expect_continue == b.expect_continue && a.upgrade == b.upgrade && a.upgrade_token == b.upgrade_token &&
         a.host == b.host;
}

void check_complete(std::string_view in, const Limits& limits, const RequestHead& h) {
  CHECK(h.head_size >= 16 && h.head_size <= in.size());  // "M / HTTP/1.0\r\n\r\n" at least
  CHECK(h.head_size <= limits.max_header_bytes);
  CHECK(h.headers.size() <= limits.max_headers);
  std::string_view head = in.substr(0, h.head_size);
  CHECK(head.substr(head.size() - 4) == "\r\n\r\n");
  for (std::string_view v : {h.method, h.target, h.path, h.query, h.authority, h.upgrade_token, h.host})
    CHECK(inside(v, head));
  for (const Header& f : h.headers) {
    CHECK(inside(f.name, head) && inside(f.value, head));
    CHECK(!f.name.empty());
    for (char c : f.name) CHECK(c != ':' && c != ' ' && c != '\t' && c != '\r' && c != '\n');
    for (char c : f.value) CHECK(c != '\r' && c != '\n' && c != '\0');
    if (!f.value.empty()) CHECK(f.value.front() != ' ' && f.value.back() != ' ' && f.value.back() != '\t');
  }
  CHECK(!h.method.empty() && !h.target.empty());
  for (char c : h.target) CHECK(static_cast<unsigned char>(c) > 0x20 && c != 0x7f);
  CHECK(h.version_minor == 0 || h.version_minor == 1);
  CHECK(!(h.chunked && h.has_content_length));
  CHECK(!(h.chunked && h.version_minor == 0));
  CHECK(h.content_length <= limits.max_body);
  CHECK(h.has_content_length || h.content_length == 0);
  CHECK(!h.upgrade || (h.version_minor == 1 && !h.upgrade_token.empty()));
  CHECK(!h.expect_continue || h.version_minor == 1);
  CHECK(h.version_minor == 0 || h.find("host") != nullptr);
  if (h.target_form == TargetForm::Origin) CHECK(h.target[0] == '/' && h.path.size() + h.query.size() <= h.target.size());
  if (h.target_form == TargetForm::Asterisk) CHECK(h.method == "OPTIONS" && h.target == "*");
  CHECK((h.target_form == TargetForm::Authority) == (h.method == "CONNECT"));
}

void check_one(std::string_view in, const Limits& limits, RequestHead& reused) {
  RequestHead h;
  Error err;
  const Status st = parse_request_head(in, limits, h, err);

  // A reused RequestHead (capacity kept from the previous input) gives the same answer.
  Error err2;
  CHECK(parse_request_head(in, limits, reused, err2) == st);

  if (st == Status::Complete) {
    check_complete(in, limits, h);
    CHECK(same(h, reused));
  } else if (st == Status::Error) {
    const int s = err.http_status;
    CHECK(s == 400 || s == 413 || s == 414 || s == 431 || s == 501 || s == 505);
    CHECK(!err.reason.empty());
    CHECK(err2.http_status == s && err2.reason == err.reason);
  } else {
    CHECK(in.size() < limits.max_header_bytes);
  }

  // Prefixes, each in a buffer of its own size so ASan sees any read past it.
  const std::size_t cuts[] = {in.size() / 2, in.size() ? in.size() - 1 : 0, in.size() / 3,
                              st == Status::Complete ? h.head_size : 0,
                              st == Status::Complete && h.head_size ? h.head_size - 1 : 0};
  for (std::size_t cut : cuts) {
    std::vector<char> copy(in.begin(), in.begin() + static_cast<std::ptrdiff_t>(cut));
    std::string_view prefix(copy.data(), copy.size());
    RequestHead p;
    Error perr;
    const Status pst = parse_request_head(prefix, limits, p, perr);
    if (pst == Status::Error) {
      CHECK(st == Status::Error && perr.http_status == err.http_status && perr.reason == err.reason);
    } else if (pst == Status::Complete) {
      CHECK(st == Status::Complete && p.head_size == h.head_size);
      check_complete(prefix, limits, p);
      CHECK(p.headers.size() == h.headers.size() && p.method == h.method && p.content_length == h.content_length &&
            p.chunked == h.chunked && p.keep_alive == h.keep_alive);
    } else {
      CHECK(st != Status::Complete || cut < h.head_size);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static RequestHead reused;
  std::string_view in(reinterpret_cast<const char*>(data), size);
  check_one(in, Limits{}, reused);
  // Tight limits, so the limit paths are reached by small inputs too.
  Limits tight;
  tight.max_request_line = 40;
  tight.max_header_bytes = 160;
  tight.max_headers = 4;
  tight.max_body = 1000;
  check_one(in, tight, reused);
  return 0;
}
