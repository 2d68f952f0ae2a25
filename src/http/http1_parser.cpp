#include "http/http1_parser.hpp"

#include <algorithm>
#include <array>

#include "http/chars.hpp"

namespace puff::http {

namespace {

constexpr std::uint64_t kMaxU64 = ~std::uint64_t{0};

/** The error that each check reports. One place, so tests and docs can name them. */
constexpr Error kBareCr{400, "bare CR"};
constexpr Error kBareLf{400, "bare LF (line endings must be CRLF)"};
constexpr Error kBadMethod{400, "bad method"};
constexpr Error kBadTarget{400, "bad request target"};
constexpr Error kBadVersion{400, "bad http version"};
constexpr Error kVersion{505, "http version not supported"};
constexpr Error kRequestLineTooLong{414, "request line too long"};
constexpr Error kHeadTooLarge{431, "request head too large"};
constexpr Error kTooManyHeaders{431, "too many header fields"};
constexpr Error kObsFold{400, "obsolete line folding or leading whitespace"};
constexpr Error kEmptyName{400, "empty header name"};
constexpr Error kSpaceBeforeColon{400, "whitespace between header name and colon"};
constexpr Error kBadName{400, "bad header name"};
constexpr Error kBadValue{400, "bad character in header value"};
constexpr Error kBadContentLength{400, "bad content-length"};
constexpr Error kConflictingContentLength{400, "conflicting content-length values"};
constexpr Error kContentLengthOverflow{400, "content-length overflow"};
constexpr Error kTeInHttp10{400, "transfer-encoding in HTTP/1.0"};
constexpr Error kTeAndCl{400, "both transfer-encoding and content-length"};
constexpr Error kBadTe{400, "bad transfer-encoding"};
constexpr Error kChunkedNotFinal{400, "chunked is not the final transfer-coding"};
constexpr Error kChunkedTwice{400, "chunked applied more than once"};
constexpr Error kUnsupportedTe{501, "unsupported transfer-coding"};
constexpr Error kNoHost{400, "missing host"};
constexpr Error kManyHosts{400, "multiple host fields"};
constexpr Error kBadHost{400, "bad host"};
constexpr Error kBodyTooLarge{413, "content-length over the body limit"};

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

/** Calls fn(element) for each comma-separated element of a field value, OWS-trimmed; stops when
 *  fn returns false. Empty elements are passed on (callers decide). */
template <class Fn>
bool for_each_element(std::string_view v, Fn&& fn) {
  for (;;) {
    std::size_t comma = v.find(',');
    if (!fn(trim_ows(v.substr(0, comma)))) return false;
    if (comma == std::string_view::npos) return true;
    v.remove_prefix(comma + 1);
  }
}

/** authority = host [":" port] with host a reg-name or an IP-literal and port up to 5 digits.
 *  No userinfo. `empty_ok`: the empty string is valid (an empty Host field, RFC 9110 §7.2). */
bool valid_authority(std::string_view s, bool empty_ok, bool port_required) {
  if (s.empty()) return empty_ok && !port_required;
  std::size_t i = 0;
  if (s[0] == '[') {
    std::size_t close = s.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (std::size_t k = 1; k < close; ++k)
      if (!is_ip_literal_char(s[k])) return false;
    i = close + 1;
  } else {
    while (i < s.size() && is_reg_name_char(s[i])) ++i;
    if (i == 0) return false;
  }
  if (i == s.size()) return !port_required;
  if (s[i] != ':') return false;
  std::string_view port = s.substr(i + 1);
  if (port.size() > 5 || (port_required && port.empty())) return false;
  return std::all_of(port.begin(), port.end(), is_digit);
}

/** Fills path/query/authority/target_form from the target. Runs after the version is known. */
bool classify_target(RequestHead& out) {
  std::string_view t = out.target;
  if (out.method == "CONNECT") {
    // RFC 9112 §3.2.3: CONNECT takes authority-form and nothing else.
    if (!valid_authority(t, false, true)) return false;
    out.target_form = TargetForm::Authority;
    out.authority = t;
    return true;
  }
  std::string_view rest;
  if (t[0] == '/') {
    out.target_form = TargetForm::Origin;
    rest = t;
  } else if (t == "*") {
    if (out.method != "OPTIONS") return false;  // RFC 9112 §3.2.4
    out.target_form = TargetForm::Asterisk;
    out.path = t;
    return true;
  } else {
    // absolute-form, http and https only (RFC 9112 §3.2.2).
    std::size_t skip;
    if (t.size() >= 7 && iequals(t.substr(0, 7), "http://"))
      skip = 7;
    else if (t.size() >= 8 && iequals(t.substr(0, 8), "https://"))
      skip = 8;
    else
      return false;
    std::string_view after = t.substr(skip);
    std::size_t end = after.find_first_of("/?");
    std::string_view authority = after.substr(0, end);
    if (!valid_authority(authority, false, false)) return false;
    out.target_form = TargetForm::Absolute;
    out.authority = authority;
    rest = end == std::string_view::npos ? after.substr(after.size()) : after.substr(end);
  }
  std::size_t q = rest.find('?');
  out.path = rest.substr(0, q);
  out.query = q == std::string_view::npos ? rest.substr(rest.size()) : rest.substr(q + 1);
  return true;
}

/** Everything derived from the fields, checked once the head is whole. */
bool derive(RequestHead& out, const Limits& limits, Error& err) {
  std::string_view cl_text;  // the first Content-Length element: every other one must equal it
  bool cl_seen = false, cl_bad = false, cl_conflict = false;
  bool te_seen = false, te_bad = false, last_chunked = false, other_coding = false;
  int chunked_count = 0, hosts = 0;
  bool conn_close = false, conn_keep_alive = false, conn_upgrade = false;
  std::string_view host_value, upgrade_value;
  bool upgrade_seen = false, expect_continue = false;

  for (const Header& h : out.headers) {
    std::string_view n = h.name;
    switch (n.size()) {
      case 4:
        if (iequals(n, "host")) {
          ++hosts;
          host_value = h.value;
        }
        break;
      case 6:
        if (iequals(n, "expect") && iequals(h.value, "100-continue")) expect_continue = true;
        break;
      case 7:
        if (iequals(n, "upgrade") && !upgrade_seen) {
          upgrade_seen = true;
          upgrade_value = h.value;
        }
        break;
      case 10:
        if (iequals(n, "connection"))
          for_each_element(h.value, [&](std::string_view e) {
            if (iequals(e, "close")) conn_close = true;
            else if (iequals(e, "keep-alive")) conn_keep_alive = true;
            else if (iequals(e, "upgrade")) conn_upgrade = true;
            return true;
          });
        break;
      case 14:
        if (iequals(n, "content-length"))
          for_each_element(h.value, [&](std::string_view e) {
            if (e.empty() || !std::all_of(e.begin(), e.end(), is_digit)) {
              cl_bad = true;
              return false;
            }
            if (!cl_seen) {
              cl_seen = true;
              cl_text = e;
            } else if (e != cl_text) {
              cl_conflict = true;
              return false;
            }
            return true;
          });
        break;
      case 17:
        if (iequals(n, "transfer-encoding")) {
          te_seen = true;
          for_each_element(h.value, [&](std::string_view e) {
            if (e.empty()) {
              te_bad = true;
              return false;
            }
            if (last_chunked) other_coding = true;  // something follows chunked
            last_chunked = iequals(e, "chunked");
            if (last_chunked)
              ++chunked_count;
            else
              other_coding = true;
            return true;
          });
        }
        break;
      default:
        break;
    }
  }

  // Framing first: these are the request-smuggling shapes (RFC 9112 §6.1, §6.3; RFC 9110 §8.6).
  if (cl_bad) return err = kBadContentLength, false;
  if (cl_conflict) return err = kConflictingContentLength, false;
  std::uint64_t length = 0;
  if (cl_seen) {
    for (char c : cl_text) {
      std::uint64_t d = static_cast<std::uint64_t>(c - '0');
      if (length > (kMaxU64 - d) / 10) return err = kContentLengthOverflow, false;
      length = length * 10 + d;
    }
  }
  if (te_seen) {
    if (out.version_minor == 0) return err = kTeInHttp10, false;
    if (cl_seen) return err = kTeAndCl, false;
    if (te_bad) return err = kBadTe, false;
    if (!last_chunked) return err = kChunkedNotFinal, false;
    if (chunked_count > 1) return err = kChunkedTwice, false;
    if (other_coding) return err = kUnsupportedTe, false;
  }
  // RFC 9112 §3.2: 400 for a 1.1 request without Host, with several, or with an invalid one.
  if (hosts > 1) return err = kManyHosts, false;
  if (hosts == 0 && out.version_minor == 1) return err = kNoHost, false;
  if (hosts == 1 && !valid_authority(host_value, true, false)) return err = kBadHost, false;
  if (length > limits.max_body) return err = kBodyTooLarge, false;

  out.chunked = te_seen;
  out.has_content_length = cl_seen;
  out.content_length = length;
  out.host = out.target_form == TargetForm::Absolute ? out.authority : host_value;
  out.keep_alive = out.version_minor == 1 ? !conn_close : conn_keep_alive && !conn_close;
  out.expect_continue = out.version_minor == 1 && expect_continue;
  out.upgrade = out.version_minor == 1 && conn_upgrade && !upgrade_value.empty();
  out.upgrade_token = out.upgrade ? upgrade_value : std::string_view{};
  return true;
}

}  // namespace

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (to_lower(a[i]) != to_lower(b[i])) return false;
  return true;
}

const Header* RequestHead::find(std::string_view name) const noexcept {
  for (const Header& h : headers)
    if (iequals(h.name, name)) return &h;
  return nullptr;
}

// One forward scan; every check is decided by the bytes up to the one that fails it, so a prefix
// of the input is either Incomplete or fails exactly as the whole input does (the fuzz target
// checks this). The scan never looks past max_header_bytes.
Status parse_request_head(std::string_view in, const Limits& limits, RequestHead& out, Error& err) {
  out.headers.clear();
  const char* const s = in.data();
  const std::size_t n = std::min(in.size(), limits.max_header_bytes);
  auto fail = [&](const Error& e) {
    err = e;
    return Status::Error;
  };
  // Out of bytes: wait for more, unless the head limit is what stopped the scan.
  auto starve = [&] { return in.size() >= limits.max_header_bytes ? fail(kHeadTooLarge) : Status::Incomplete; };
  // A CR must be followed by LF.
  auto crlf_at = [&](std::size_t i, Status& st) {
    if (i + 1 >= n) return st = starve(), false;
    if (s[i + 1] != '\n') return st = fail(kBareCr), false;
    return true;
  };
  Status st;

  // RFC 9112 §2.2: ignore empty lines before the request line.
  std::size_t p = 0;
  while (p < n && s[p] == '\r') {
    if (!crlf_at(p, st)) return st;
    p += 2;
  }

  // ---- request-line = method SP request-target SP HTTP-version CRLF
  const std::size_t line = p;
  // The CR must come within max_request_line bytes of the line start.
  const bool line_capped = line + limits.max_request_line + 1 <= n;
  const std::size_t line_end = line_capped ? line + limits.max_request_line + 1 : n;
  auto starve_line = [&] { return line_capped ? fail(kRequestLineTooLong) : starve(); };
  auto stray = [&](char c, const Error& e) { return fail(c == '\n' ? kBareLf : c == '\r' ? kBareCr : e); };

  std::size_t i = line;
  while (i < line_end && is_tchar(s[i])) ++i;
  if (i == line_end) return starve_line();
  if (s[i] != ' ' || i == line) return stray(s[i], kBadMethod);
  out.method = std::string_view(s + line, i - line);

  const std::size_t target = ++i;
  while (i < line_end && is_target_char(s[i])) ++i;
  if (i == line_end) return starve_line();
  if (s[i] != ' ' || i == target) return stray(s[i], kBadTarget);
  out.target = std::string_view(s + target, i - target);

  // HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive.
  static constexpr std::string_view kVersionShape = "HTTP/0.0";
  const std::size_t version = ++i;
  for (; i < line_end && s[i] != '\r'; ++i) {
    std::size_t k = i - version;
    bool ok = k < kVersionShape.size() && (k == 5 || k == 7 ? is_digit(s[i]) : s[i] == kVersionShape[k]);
    if (!ok) return stray(s[i], kBadVersion);
  }
  if (i == line_end) return starve_line();
  if (!crlf_at(i, st)) return st;
  if (i - version != kVersionShape.size()) return fail(kBadVersion);
  if (s[version + 5] != '1' || s[version + 7] > '1') return fail(kVersion);
  out.version_minor = s[version + 7] - '0';
  out.path = out.query = out.authority = {};
  if (!classify_target(out)) return fail(kBadTarget);
  p = i + 2;

  // ---- *( field-line CRLF ) CRLF, field-line = field-name ":" OWS field-value OWS
  for (;;) {
    if (p >= n) return starve();
    char c = s[p];
    if (c == '\r') {
      if (!crlf_at(p, st)) return st;
      p += 2;
      break;
    }
    if (is_ows(c)) return fail(kObsFold);  // RFC 9112 §5.2: obs-fold in a request is rejected
    if (c == '\n') return fail(kBareLf);
    if (out.headers.size() == limits.max_headers) return fail(kTooManyHeaders);
    const std::size_t name = p;
    while (p < n && is_tchar(s[p])) ++p;
    if (p == n) return starve();
    if (s[p] != ':') return stray(s[p], is_ows(s[p]) ? kSpaceBeforeColon : kBadName);
    if (p == name) return fail(kEmptyName);
    const std::size_t name_end = p++;
    while (p < n && is_ows(s[p])) ++p;
    const std::size_t value = p;
    while (p < n && is_field_char(s[p])) ++p;
    if (p == n) return starve();
    if (s[p] != '\r') return stray(s[p], kBadValue);
    if (!crlf_at(p, st)) return st;
    std::size_t value_end = p;
    while (value_end > value && is_ows(s[value_end - 1])) --value_end;
    out.headers.push_back({std::string_view(s + name, name_end - name), std::string_view(s + value, value_end - value)});
    p += 2;
  }
  out.head_size = p;
  if (!derive(out, limits, err)) return Status::Error;
  return Status::Complete;
}

}  // namespace puff::http
