#include "http/cors_policy.hpp"

#include "http/chars.hpp"
#include "http/http1_parser.hpp"

namespace puff::http {

namespace {

std::string_view trim_ows(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool contains_ci(const std::vector<std::string>& items, std::string_view v) {
  for (const auto& i : items) {
    if (iequals(i, v)) return true;
  }
  return false;
}

void append_joined(std::string& out, std::string_view name, const std::vector<std::string>& items) {
  out.append(name).append(": ");
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out.append(", ");
    out.append(items[i]);
  }
  out.append("\r\n");
}

// An Origin field value worth echoing: "null" or "scheme://authority", one value (no list).
bool plausible_origin(std::string_view o) {
  if (o.empty() || o.find("://") == std::string_view::npos) return false;
  for (char c : o) {
    if (c <= ' ' || c == ',' || c >= 127) return false;
  }
  return true;
}

// Fetch normalizes these method names (byte-case-insensitively) to upper case; no others.
std::string normalize_method(std::string m) {
  for (std::string_view known : {"DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"}) {
    if (iequals(m, known)) return std::string(known);
  }
  return m;
}

}  // namespace

CorsPolicy::CorsPolicy(const CorsOptions& o) {
  using Base = CorsOptions::Base;
  if (o.base == Base::Permissive || o.base == Base::VeryPermissive) {
    origins_.any = methods_.any = headers_.any = true;
  }
  if (o.base == Base::Permissive) expose_.any = true;
  credentials_ = o.base == Base::VeryPermissive;

  if (o.allowed_origins) origins_ = *o.allowed_origins;
  if (o.allowed_methods) methods_ = *o.allowed_methods;
  if (o.allowed_headers) headers_ = *o.allowed_headers;
  if (o.expose_headers) expose_ = *o.expose_headers;
  if (o.allow_credentials) credentials_ = *o.allow_credentials;
  max_age_ = o.max_age_secs;
  for (auto& m : methods_.items) m = normalize_method(std::move(m));
  vary_origin_ = !origins_.items.empty() || (origins_.any && credentials_);
}

bool CorsPolicy::origin_allowed(std::string_view origin) const {
  if (origins_.any && !credentials_) return true;  // answered with "*"
  if (contains_ci(origins_.items, origin)) return true;
  return origins_.any && origin != "null" && plausible_origin(origin);
}

void CorsPolicy::append_origin(std::string& out, std::string_view origin) const {
  out.append("Access-Control-Allow-Origin: ");
  // "*" is only valid without credentials (Fetch: a credentialed response must name the origin).
  if (origins_.any && !credentials_) {
    out.append("*");
  } else {
    out.append(origin);
  }
  out.append("\r\n");
  if (credentials_) out.append("Access-Control-Allow-Credentials: true\r\n");
}

bool CorsPolicy::method_allowed(std::string_view m) const {
  if (m == "GET" || m == "HEAD" || m == "POST") return true;  // CORS-safelisted methods
  if (methods_.any) return true;
  for (const auto& i : methods_.items) {
    if (i == m) return true;
  }
  return false;
}

bool CorsPolicy::header_allowed(std::string_view h) const { return headers_.any || contains_ci(headers_.items, h); }

std::string CorsPolicy::actual_headers(std::optional<std::string_view> origin) const {
  std::string out;
  if (origin && origin_allowed(*origin)) {
    append_origin(out, *origin);
    if (!expose_.items.empty()) {
      append_joined(out, "Access-Control-Expose-Headers", expose_.items);
    } else if (expose_.any && !credentials_) {
      out.append("Access-Control-Expose-Headers: *\r\n");  // with credentials "*" would name a header
    }
  }
  if (vary_origin_) out.append("Vary: Origin\r\n");
  return out;
}

CorsPolicy::Preflight CorsPolicy::preflight(std::string_view origin, std::string_view method,
                                            std::string_view request_headers) const {
  Preflight p;
  auto refuse = [&p](std::string why) {
    p.status = 403;
    p.reason = std::move(why);
    return p;
  };
  if (!origin_allowed(origin)) return refuse("CORS: origin " + std::string(origin) + " is not allowed");
  method = trim_ows(method);
  if (!method_allowed(method)) return refuse("CORS: method " + std::string(method) + " is not allowed");
  request_headers = trim_ows(request_headers);
  std::size_t i = 0;
  while (i < request_headers.size()) {
    std::size_t j = request_headers.find(',', i);
    if (j == std::string_view::npos) j = request_headers.size();
    std::string_view h = trim_ows(request_headers.substr(i, j - i));
    i = j + 1;
    if (!h.empty() && !header_allowed(h)) return refuse("CORS: header " + std::string(h) + " is not allowed");
  }

  append_origin(p.headers, origin);
  if (methods_.any) {
    p.headers.append("Access-Control-Allow-Methods: ").append(method).append("\r\n");
  } else if (!methods_.items.empty()) {
    append_joined(p.headers, "Access-Control-Allow-Methods", methods_.items);
  }
  if (headers_.any) {
    if (!request_headers.empty()) p.headers.append("Access-Control-Allow-Headers: ").append(request_headers).append("\r\n");
  } else if (!headers_.items.empty()) {
    append_joined(p.headers, "Access-Control-Allow-Headers", headers_.items);
  }
  if (max_age_) p.headers.append("Access-Control-Max-Age: ").append(std::to_string(*max_age_)).append("\r\n");
  std::string vary;
  auto add_vary = [&vary](std::string_view v) {
    if (!vary.empty()) vary.append(", ");
    vary.append(v);
  };
  if (vary_origin_) add_vary("Origin");
  if (methods_.any) add_vary("Access-Control-Request-Method");
  if (headers_.any) add_vary("Access-Control-Request-Headers");
  if (!vary.empty()) p.headers.append("Vary: ").append(vary).append("\r\n");
  return p;
}

std::optional<std::string> normalize_cors_origin(std::string_view o) {
  if (!o.empty() && o.back() == '/') o.remove_suffix(1);
  std::size_t sep = o.find("://");
  if (sep == std::string_view::npos) return std::nullopt;
  std::string_view scheme = o.substr(0, sep), rest = o.substr(sep + 3);
  if (!iequals(scheme, "http") && !iequals(scheme, "https")) return std::nullopt;
  std::string_view host = rest, port;
  if (!rest.empty() && rest.front() == '[') {  // IPv6 literal
    std::size_t close = rest.find(']');
    if (close == std::string_view::npos || close == 1) return std::nullopt;
    for (char c : rest.substr(1, close - 1)) {
      if (!is_ip_literal_char(c)) return std::nullopt;
    }
    host = rest.substr(0, close + 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return std::nullopt;
      port = after.substr(1);
      if (port.empty()) return std::nullopt;
    }
  } else {
    std::size_t colon = rest.find(':');
    if (colon != std::string_view::npos) {
      host = rest.substr(0, colon);
      port = rest.substr(colon + 1);
      if (port.empty()) return std::nullopt;
    }
    if (host.empty()) return std::nullopt;
    for (char c : host) {
      if (!is_reg_name_char(c) || c == '%') return std::nullopt;
    }
  }
  if (port.size() > 5) return std::nullopt;
  for (char c : port) {
    if (!is_digit(c)) return std::nullopt;
  }
  return std::string(o);
}

}  // namespace puff::http
