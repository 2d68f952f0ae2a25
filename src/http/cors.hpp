// CORS for every route: a Handler decorator that answers preflight requests itself and gives
// every other request's response the CORS header lines (through Exchange::extra_response_headers,
// so WSGI, ASGI and native responses all carry them). Decisions: http/cors_policy.hpp;
// behaviour and rationale: docs/static-and-cors.md.
#pragma once

#include <memory>

#include "http/cors_policy.hpp"
#include "http/server.hpp"

namespace puff::http {

class Cors final : public Handler {
 public:
  /** Any thread; immutable afterwards (shared by every I/O thread). */
  Cors(const CorsOptions& options, std::shared_ptr<Handler> next);

  /** I/O thread; never blocks. A preflight (OPTIONS with Origin and Access-Control-Request-Method)
   *  is answered here: 204 with the Access-Control-Allow-* fields, or 403 without them. Any other
   *  request goes to `next` with its CORS fields added to extra_response_headers. */
  void on_request(std::shared_ptr<Exchange> ex) override;

 private:
  CorsPolicy policy_;
  std::shared_ptr<Handler> next_;
};

}  // namespace puff::http
