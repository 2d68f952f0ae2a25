// libFuzzer target: the parsers of client-controlled header fields and paths behind static files
// and CORS (http/static_rules.hpp, http/cors_policy.hpp). Beyond "no crash" (ASan/UBSan), it
// checks:
// - parse_range: a Partial range lies inside the file (first <= last < size), so never for an
//   empty file; the same field gives the same answer;
// - decode_static_path: an Ok path is relative, has no empty, "." or ".." segment, no backslash,
//   no NUL and no hidden segment but ".well-known"; "/" ending or empty input means a directory;
// - parse_http_date: a date it accepts, printed by http_date (IMF-fixdate), parses back to the
//   same second;
// - etag_list_matches, if_range_matches, evaluate_preconditions: any input; "*" always matches;
// - CORS (three policies): for an Origin, method and Access-Control-Request-Headers without
//   CR, LF or NUL (the HTTP/1 parser rejects those), every header line produced is one
//   "Name: value\r\n" line with no other CR or LF (no response splitting through mirroring), and
//   a preflight answers 204 or 403.
//
// Input: byte 0 picks the function; then the field value. For CORS the rest is split at 0xFF into
// origin, method and request headers; for ranges 8 bytes of file size come first.
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "http/cors_policy.hpp"
#include "http/static_rules.hpp"

using namespace puff::http;

#define CHECK PUFF_FUZZ_CHECK

namespace {

void check_range(std::string_view in) {
  std::uint64_t size = 0;
  if (in.size() >= 8) {
    std::memcpy(&size, in.data(), 8);
    in.remove_prefix(8);
  }
  for (std::uint64_t s : {size, size % 1000, std::uint64_t{0}, std::uint64_t{1}}) {
    ByteRange r{7, 3};
    RangeResult res = parse_range(in, s, r);
    if (res == RangeResult::Partial) {
      CHECK(s > 0);
      CHECK(r.first <= r.last && r.last < s);
    }
    ByteRange again{};
    CHECK(parse_range(in, s, again) == res);
    if (res == RangeResult::Partial) CHECK(again.first == r.first && again.last == r.last);
  }
}

void check_path(std::string_view in) {
  std::string out = "junk";
  bool dir = false;
  PathCheck c = decode_static_path(in, out, dir);
  if (in.empty() || in.back() == '/') CHECK(c != PathCheck::Ok || dir);
  if (c != PathCheck::Ok) return;
  CHECK(out.empty() || (out.front() != '/' && out.back() != '/'));
  CHECK(out.find('\0') == std::string::npos && out.find('\\') == std::string::npos);
  std::size_t start = 0;
  while (start <= out.size() && !out.empty()) {
    std::size_t end = out.find('/', start);
    if (end == std::string::npos) end = out.size();
    std::string_view seg(out.data() + start, end - start);
    CHECK(!seg.empty() && seg != "." && seg != "..");
    CHECK(seg.front() != '.' || seg == ".well-known");
    start = end + 1;
  }
  // The decoded path stays below any root it is joined to.
  std::string joined = "/srv/root/" + out;
  CHECK(path_within("/srv/root", joined));
}

void check_date(std::string_view in) {
  std::optional<std::int64_t> t = parse_http_date(in);
  if (!t) return;
  // Years 0-9999 print as four digits; beyond that the printed form is not an HTTP-date.
  if (*t < -62135596800LL || *t > 253402300799LL) return;
  std::string printed = http_date(*t);
  std::optional<std::int64_t> back = parse_http_date(printed);
  CHECK(back && *back == *t);
}

void check_validators(std::string_view in) {
  static const std::string etag = "\"abc-1\"";
  CHECK(etag_list_matches("*", etag, false) && etag_list_matches("*", etag, true));
  (void)etag_list_matches(in, etag, false);
  (void)etag_list_matches(in, etag, true);
  (void)etag_list_matches(etag, in, true);
  (void)if_range_matches(in, etag, 784111777);
  Conditions c;
  c.if_match = in;
  c.if_modified_since = in;
  (void)evaluate_preconditions(c, etag, 784111777);
  Conditions d;
  d.if_none_match = in;
  d.if_unmodified_since = in;
  (void)evaluate_preconditions(d, etag, 784111777);
}

bool clean(std::string_view v) {
  return v.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

/** Every line is "Name: value\r\n": one CRLF per line, at its end, and a colon in it. */
void check_lines(const std::string& s) {
  std::size_t pos = 0;
  while (pos < s.size()) {
    std::size_t end = s.find("\r\n", pos);
    CHECK(end != std::string::npos);
    std::string_view line(s.data() + pos, end - pos);
    CHECK(line.find('\r') == std::string_view::npos && line.find('\n') == std::string_view::npos);
    CHECK(line.find(": ") != std::string_view::npos);
    pos = end + 2;
  }
}

void check_cors(std::string_view in) {
  std::string_view parts[3];
  for (auto& p : parts) {
    std::size_t cut = in.find('\xff');
    p = in.substr(0, cut);
    in = cut == std::string_view::npos ? std::string_view() : in.substr(cut + 1);
  }
  if (!clean(parts[0]) || !clean(parts[1]) || !clean(parts[2])) return;
  (void)normalize_cors_origin(parts[0]);
  static const CorsPolicy policies[] = {
      CorsPolicy(CorsOptions{}),
      CorsPolicy([] {
        CorsOptions o;
        o.base = CorsOptions::Base::Permissive;
        return o;
      }()),
      CorsPolicy([] {
        CorsOptions o;
        o.base = CorsOptions::Base::VeryPermissive;
        o.allowed_origins = CorsList{false, {"https://a.example", "http://b.example:8080"}};
        o.max_age_secs = 600;
        return o;
      }()),
      CorsPolicy([] {
        CorsOptions o;
        o.base = CorsOptions::Base::VeryPermissive;
        return o;
      }()),
  };
  for (const CorsPolicy& p : policies) {
    (void)p.origin_allowed(parts[0]);
    check_lines(p.actual_headers(parts[0]));
    check_lines(p.actual_headers(std::nullopt));
    CorsPolicy::Preflight pf = p.preflight(parts[0], parts[1], parts[2]);
    CHECK(pf.status == 204 || pf.status == 403);
    check_lines(pf.headers);
    if (pf.status == 403) CHECK(!pf.reason.empty());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 5) {
    case 0: check_range(in); break;
    case 1: check_path(in); break;
    case 2: check_date(in); break;
    case 3: check_validators(in); break;
    default: check_cors(in); break;
  }
  return 0;
}
