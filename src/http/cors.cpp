#include "http/cors.hpp"

#include <optional>
#include <string>

#include "http/http1_parser.hpp"
#include "http/response.hpp"

namespace puff::http {

namespace {

std::optional<std::string_view> header(const Exchange& ex, std::string_view name) {
  for (const auto& h : ex.headers) {
    if (iequals(h.name, name)) return h.value;
  }
  return std::nullopt;
}

}  // namespace

Cors::Cors(const CorsOptions& options, std::shared_ptr<Handler> next) : policy_(options), next_(std::move(next)) {}

void Cors::on_request(std::shared_ptr<Exchange> ex) {
  auto origin = header(*ex, "origin");
  auto method = header(*ex, "access-control-request-method");
  if (ex->method == "OPTIONS" && origin && method) {
    std::string request_headers;  // a list field: several lines are one list
    for (const auto& h : ex->headers) {
      if (!iequals(h.name, "access-control-request-headers")) continue;
      if (!request_headers.empty()) request_headers.append(", ");
      request_headers.append(h.value);
    }
    CorsPolicy::Preflight p = policy_.preflight(*origin, *method, request_headers);
    ex->extra_response_headers.append(p.headers);
    ResponseWriter w(*ex);
    w.set_status(p.status);
    std::string body = p.reason.empty() ? std::string() : p.reason + "\n";
    if (!body.empty()) w.add_header("Content-Type", "text/plain; charset=utf-8");
    std::string out = w.head(static_cast<long long>(body.size()));
    w.frame(out, body.data(), body.size());
    ex->write(std::move(out), true);
    return;
  }
  ex->extra_response_headers.append(policy_.actual_headers(origin));
  next_->on_request(std::move(ex));
}

}  // namespace puff::http
