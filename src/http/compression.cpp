#include "http/compression.hpp"

#include "http/http1_parser.hpp"

namespace puff::http {

bool accepts_gzip(std::string_view v) {
  bool star = false, gzip = false, gzip_seen = false;
  while (!v.empty()) {
    std::size_t comma = v.find(',');
    std::string_view item = v.substr(0, comma);
    v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
    std::size_t semi = item.find(';');
    std::string_view coding = item.substr(0, semi);
    while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t')) coding.remove_prefix(1);
    while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t')) coding.remove_suffix(1);
    bool q_zero = false;
    if (semi != std::string_view::npos) {
      std::string_view params = item.substr(semi + 1);
      std::size_t q = params.find("q=");
      if (q == std::string_view::npos) q = params.find("Q=");
      if (q != std::string_view::npos) {
        std::string_view num = params.substr(q + 2);
        std::size_t i = 0;
        bool nonzero = false;
        while (i < num.size() && ((num[i] >= '0' && num[i] <= '9') || num[i] == '.')) {
          if (num[i] >= '1' && num[i] <= '9') nonzero = true;
          ++i;
        }
        q_zero = !nonzero;
      }
    }
    if (iequals(coding, "gzip") || iequals(coding, "x-gzip")) {
      gzip_seen = true;
      gzip = !q_zero;
    } else if (coding == "*") {
      star = !q_zero;
    }
  }
  return gzip_seen ? gzip : star;
}

void Compression::on_request(std::shared_ptr<Exchange> ex) {
  for (const auto& h : ex->headers) {
    if (iequals(h.name, "accept-encoding")) {
      if (accepts_gzip(h.value)) ex->gzip_min_size = min_size_;
      break;
    }
  }
  next_->on_request(std::move(ex));
}

}  // namespace puff::http
