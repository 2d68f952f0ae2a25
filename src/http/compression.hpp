// Response compression for every route (native handlers and the WSGI/ASGI app alike): a
// Handler decorator that marks requests whose client accepts gzip; http::ResponseWriter then
// compresses compressible responses (text, JSON, JS, XML, SVG; not already encoded; 2xx).
#pragma once

#include <memory>
#include <string_view>

#include "http/server.hpp"

namespace puff::http {

/** True when an Accept-Encoding value allows gzip (a gzip or * coding with q > 0). Pure. */
bool accepts_gzip(std::string_view accept_encoding);

class Compression final : public Handler {
 public:
  Compression(std::size_t min_size, std::shared_ptr<Handler> next) : min_size_(min_size ? min_size : 1), next_(std::move(next)) {}
  void on_request(std::shared_ptr<Exchange> ex) override;

 private:
  std::size_t min_size_;
  std::shared_ptr<Handler> next_;
};

}  // namespace puff::http
