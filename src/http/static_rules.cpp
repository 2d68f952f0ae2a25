#include "http/static_rules.hpp"

#include <array>
#include <cstdio>
#include <limits>

#include "http/chars.hpp"
#include "http/http1_parser.hpp"

namespace puff::http {

namespace {

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  return to_lower(c) - 'a' + 10;
}

constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
constexpr std::array<std::string_view, 7> kDays = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};  // 1970-01-01 was a Thursday

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

// A left-to-right reader for the three HTTP-date forms.
struct DateReader {
  std::string_view s;
  std::size_t i = 0;

  bool lit(std::string_view t) {
    if (s.substr(i, t.size()) != t) return false;
    i += t.size();
    return true;
  }
  bool num(std::size_t digits, int& out) {
    if (i + digits > s.size()) return false;
    out = 0;
    for (std::size_t k = 0; k < digits; ++k) {
      if (!is_digit(s[i + k])) return false;
      out = out * 10 + (s[i + k] - '0');
    }
    i += digits;
    return true;
  }
  bool month(int& out) {
    for (std::size_t m = 0; m < kMonths.size(); ++m) {
      if (s.substr(i, 3) == kMonths[m]) {
        out = static_cast<int>(m) + 1;
        i += 3;
        return true;
      }
    }
    return false;
  }
  bool day_name() {  // letters only: the weekday is not checked against the date
    std::size_t start = i;
    while (i < s.size() && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z'))) ++i;
    return i - start >= 3;
  }
  bool time(int& h, int& m, int& sec) { return num(2, h) && lit(":") && num(2, m) && lit(":") && num(2, sec); }
  bool done() const { return i == s.size(); }
};

struct MimeEntry {
  std::string_view ext, type;
};

// Text types carry the charset: files under a static root are taken to be UTF-8 (or ASCII).
constexpr MimeEntry kMimeTypes[] = {
    {"html", "text/html; charset=utf-8"},
    {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"txt", "text/plain; charset=utf-8"},
    {"md", "text/markdown; charset=utf-8"},
    {"csv", "text/csv; charset=utf-8"},
    {"xml", "application/xml; charset=utf-8"},
    {"svg", "image/svg+xml; charset=utf-8"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/vnd.microsoft.icon"},
    {"bmp", "image/bmp"},
    {"pdf", "application/pdf"},
    {"wasm", "application/wasm"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
};

}  // namespace

PathCheck decode_static_path(std::string_view encoded, std::string& out, bool& dir_request) {
  std::string decoded;
  decoded.reserve(encoded.size());
  for (std::size_t i = 0; i < encoded.size(); ++i) {
    char c = encoded[i];
    if (c == '%') {
      if (i + 2 >= encoded.size()) return PathCheck::BadRequest;
      if (!is_hex(encoded[i + 1]) || !is_hex(encoded[i + 2])) return PathCheck::BadRequest;
      c = static_cast<char>(hex_value(encoded[i + 1]) * 16 + hex_value(encoded[i + 2]));
      i += 2;
    }
    if (c == '\0') return PathCheck::BadRequest;
    decoded.push_back(c);
  }
  out.clear();
  dir_request = true;
  std::size_t i = 0;
  while (i <= decoded.size()) {
    std::size_t j = decoded.find('/', i);
    if (j == std::string::npos) j = decoded.size();
    std::string_view seg(decoded.data() + i, j - i);
    i = j + 1;
    if (seg.empty() || seg == ".") {
      dir_request = true;
      continue;
    }
    if (seg == ".." || seg.find('\\') != std::string_view::npos) return PathCheck::NotFound;
    if (seg.front() == '.' && seg != ".well-known") return PathCheck::NotFound;
    if (!out.empty()) out.push_back('/');
    out.append(seg);
    dir_request = false;
  }
  return PathCheck::Ok;
}

bool path_within(std::string_view root, std::string_view path) {
  if (root == "/") return !path.empty() && path.front() == '/';
  if (path.size() < root.size() || path.substr(0, root.size()) != root) return false;
  return path.size() == root.size() || path[root.size()] == '/';
}

std::string_view content_type_for(std::string_view filename) {
  std::size_t slash = filename.rfind('/');
  std::string_view base = slash == std::string_view::npos ? filename : filename.substr(slash + 1);
  std::size_t dot = base.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return "application/octet-stream";
  std::string_view ext = base.substr(dot + 1);
  for (const MimeEntry& e : kMimeTypes) {
    if (iequals(ext, e.ext)) return e.type;
  }
  return "application/octet-stream";
}

std::string make_etag(const FileStamp& f) {
  char buf[80];
  auto ns = static_cast<unsigned long long>(f.mtime_sec) * 1000000000ULL + static_cast<unsigned long long>(f.mtime_nsec);
  int n = std::snprintf(buf, sizeof buf, "\"%llx-%llx-%llx\"", static_cast<unsigned long long>(f.inode),
                        static_cast<unsigned long long>(f.size), ns);
  return std::string(buf, static_cast<std::size_t>(n));
}

std::string http_date(std::int64_t t) {
  std::int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
  std::int64_t secs = t - days * 86400;
  // civil_from_days (H. Hinnant)
  std::int64_t z = days + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
  std::int64_t wd = days % 7;
  if (wd < 0) wd += 7;
  char buf[40];
  int n = std::snprintf(buf, sizeof buf, "%.3s, %02u %.3s %04lld %02d:%02d:%02d GMT", kDays[wd].data(), d,
                        kMonths[m - 1].data(), static_cast<long long>(y), static_cast<int>(secs / 3600),
                        static_cast<int>(secs / 60 % 60), static_cast<int>(secs % 60));
  return std::string(buf, static_cast<std::size_t>(n));
}

std::optional<std::int64_t> parse_http_date(std::string_view s) {
  s = trim_ows(s);
  DateReader r{s};
  int day = 0, mon = 0, year = 0, h = 0, m = 0, sec = 0;
  std::size_t comma = s.find(',');
  bool ok;
  if (comma == 3) {  // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    ok = r.day_name() && r.lit(", ") && r.num(2, day) && r.lit(" ") && r.month(mon) && r.lit(" ") &&
         r.num(4, year) && r.lit(" ") && r.time(h, m, sec) && r.lit(" GMT") && r.done();
  } else if (comma != std::string_view::npos) {  // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    ok = r.day_name() && r.lit(", ") && r.num(2, day) && r.lit("-") && r.month(mon) && r.lit("-") &&
         r.num(2, year) && r.lit(" ") && r.time(h, m, sec) && r.lit(" GMT") && r.done();
    year += year < 70 ? 2000 : 1900;
  } else {  // asctime: Sun Nov  6 08:49:37 1994
    ok = r.day_name() && r.lit(" ") && r.month(mon) && r.lit(" ");
    if (ok && r.i < s.size() && s[r.i] == ' ') {
      ++r.i;
      ok = r.num(1, day);
    } else {
      ok = ok && r.num(2, day);
    }
    ok = ok && r.lit(" ") && r.time(h, m, sec) && r.lit(" ") && r.num(4, year) && r.done();
  }
  if (!ok || day < 1 || day > 31 || h > 23 || m > 59 || sec > 60) return std::nullopt;
  return days_from_civil(year, static_cast<unsigned>(mon), static_cast<unsigned>(day)) * 86400 + h * 3600 + m * 60 +
         sec;
}

bool etag_list_matches(std::string_view header, std::string_view etag, bool weak) {
  header = trim_ows(header);
  if (header == "*") return true;
  bool cur_weak = etag.substr(0, 2) == "W/";
  if (cur_weak && !weak) return false;
  std::string_view cur = cur_weak ? etag.substr(2) : etag;
  std::size_t i = 0;
  while (i < header.size()) {
    char c = header[i];
    if (c == ' ' || c == '\t' || c == ',') {
      ++i;
      continue;
    }
    bool w = false;
    if (header.substr(i, 2) == "W/") {
      w = true;
      i += 2;
    }
    if (i >= header.size() || header[i] != '"') return false;  // malformed: stop, no match
    std::size_t end = header.find('"', i + 1);
    if (end == std::string_view::npos) return false;
    std::string_view tag = header.substr(i, end - i + 1);
    i = end + 1;
    if (tag == cur && (weak || !w)) return true;
  }
  return false;
}

Precondition evaluate_preconditions(const Conditions& c, std::string_view etag, std::int64_t mtime_sec) {
  if (c.if_match) {
    if (!etag_list_matches(*c.if_match, etag, /*weak=*/false)) return Precondition::Failed;
  } else if (c.if_unmodified_since) {
    auto t = parse_http_date(*c.if_unmodified_since);
    if (t && mtime_sec > *t) return Precondition::Failed;
  }
  if (c.if_none_match) {
    if (etag_list_matches(*c.if_none_match, etag, /*weak=*/true)) return Precondition::NotModified;
  } else if (c.if_modified_since) {
    auto t = parse_http_date(*c.if_modified_since);
    if (t && mtime_sec <= *t) return Precondition::NotModified;
  }
  return Precondition::Proceed;
}

namespace {

// Digits to a number, saturating at UINT64_MAX. False when `s` is empty or has a non-digit.
bool parse_u64(std::string_view s, std::uint64_t& out) {
  if (s.empty()) return false;
  constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
  out = 0;
  for (char c : s) {
    if (!is_digit(c)) return false;
    auto d = static_cast<std::uint64_t>(c - '0');
    out = out > (kMax - d) / 10 ? kMax : out * 10 + d;
  }
  return true;
}

}  // namespace

RangeResult parse_range(std::string_view header, std::uint64_t size, ByteRange& out) {
  header = trim_ows(header);
  std::size_t eq = header.find('=');
  if (eq == std::string_view::npos || !iequals(header.substr(0, eq), "bytes")) return RangeResult::Full;
  std::string_view set = header.substr(eq + 1);
  if (set.find(',') != std::string_view::npos) return RangeResult::Full;  // several ranges: send it all
  set = trim_ows(set);
  std::size_t dash = set.find('-');
  if (dash == std::string_view::npos) return RangeResult::Full;
  std::string_view a = set.substr(0, dash), b = set.substr(dash + 1);
  std::uint64_t first = 0, last = 0;
  if (a.empty()) {  // suffix: the last N bytes
    std::uint64_t n = 0;
    if (!parse_u64(b, n)) return RangeResult::Full;
    if (n == 0 || size == 0) return RangeResult::Unsatisfiable;
    out.first = n >= size ? 0 : size - n;
    out.last = size - 1;
    return RangeResult::Partial;
  }
  if (!parse_u64(a, first)) return RangeResult::Full;
  if (b.empty()) {
    last = std::numeric_limits<std::uint64_t>::max();
  } else if (!parse_u64(b, last) || last < first) {
    return RangeResult::Full;  // invalid range-spec: the field is ignored
  }
  if (first >= size) return RangeResult::Unsatisfiable;
  out.first = first;
  out.last = last < size - 1 ? last : size - 1;
  return RangeResult::Partial;
}

bool if_range_matches(std::string_view if_range, std::string_view etag, std::int64_t mtime_sec) {
  if_range = trim_ows(if_range);
  if (if_range.substr(0, 2) == "W/") return false;  // a weak tag never validates a range
  if (!if_range.empty() && if_range.front() == '"') return etag.substr(0, 2) != "W/" && if_range == etag;
  auto t = parse_http_date(if_range);
  return t && *t == mtime_sec;
}

}  // namespace puff::http
