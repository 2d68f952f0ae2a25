#include "http/ws_deflate.hpp"

#include <zlib.h>

#include <cstring>

#include "http/http1_parser.hpp"

namespace puff::http::ws {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool parse_bits(std::string_view v, int& out) {
  if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
  if (v.empty() || v.size() > 2) return false;
  int n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  if (n < 8 || n > 15) return false;
  out = n;
  return true;
}

/** One offer: "permessage-deflate; a; b=1". */
std::optional<DeflateParams> accept_offer(std::string_view offer) {
  std::size_t semi = offer.find(';');
  if (!iequals(trim(offer.substr(0, semi)), "permessage-deflate")) return std::nullopt;
  DeflateParams p;
  bool seen[4] = {false, false, false, false};
  while (semi != std::string_view::npos) {
    offer = offer.substr(semi + 1);
    semi = offer.find(';');
    std::string_view param = trim(offer.substr(0, semi));
    std::size_t eq = param.find('=');
    std::string_view name = trim(param.substr(0, eq));
    std::string_view value = eq == std::string_view::npos ? std::string_view() : trim(param.substr(eq + 1));
    int idx;
    if (iequals(name, "server_no_context_takeover")) {
      idx = 0;
      if (!value.empty()) return std::nullopt;
      p.server_no_context_takeover = true;
    } else if (iequals(name, "client_no_context_takeover")) {
      idx = 1;
      if (!value.empty()) return std::nullopt;
      p.client_no_context_takeover = true;
    } else if (iequals(name, "server_max_window_bits")) {
      idx = 2;
      if (!parse_bits(value, p.server_max_window_bits)) return std::nullopt;
    } else if (iequals(name, "client_max_window_bits")) {
      idx = 3;
      // Without a value the client merely allows us to choose; keep 15.
      if (!value.empty() && !parse_bits(value, p.client_max_window_bits)) return std::nullopt;
    } else {
      return std::nullopt;  // unknown parameter: decline this offer (RFC 7692 §7)
    }
    if (seen[idx]) return std::nullopt;
    seen[idx] = true;
  }
  // zlib cannot produce an 8-bit window with raw deflate; 9 is the smallest it does.
  if (p.server_max_window_bits < 9) p.server_max_window_bits = 9;
  // The server always resets its compressor per message: no 32 KiB window kept per connection
  // while idle, and an incompressible message can be sent uncompressed without desynchronising
  // the client's decompressor (RFC 7692 §7.1.1.1 lets the server add this parameter).
  p.server_no_context_takeover = true;
  return p;
}

}  // namespace

std::optional<DeflateParams> negotiate_deflate(std::string_view offers) {
  // Offers are comma-separated (parameters never contain commas in practice).
  while (!offers.empty()) {
    std::size_t comma = offers.find(',');
    if (auto p = accept_offer(offers.substr(0, comma))) return p;
    if (comma == std::string_view::npos) break;
    offers = offers.substr(comma + 1);
  }
  return std::nullopt;
}

std::string deflate_response(const DeflateParams& p) {
  std::string r = "permessage-deflate";
  if (p.server_no_context_takeover) r += "; server_no_context_takeover";
  if (p.client_no_context_takeover) r += "; client_no_context_takeover";
  if (p.server_max_window_bits != 15) r += "; server_max_window_bits=" + std::to_string(p.server_max_window_bits);
  if (p.client_max_window_bits != 15) r += "; client_max_window_bits=" + std::to_string(p.client_max_window_bits);
  return r;
}

struct Deflate::Impl {
  DeflateParams p;
  z_stream in{};
  z_stream out{};
  bool in_ok = false, out_ok = false;
};

Deflate::Deflate(const DeflateParams& p) : impl_(std::make_unique<Impl>()) {
  impl_->p = p;
  impl_->in_ok = inflateInit2(&impl_->in, -p.client_max_window_bits) == Z_OK;
  impl_->out_ok = deflateInit2(&impl_->out, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -p.server_max_window_bits, 8,
                               Z_DEFAULT_STRATEGY) == Z_OK;
}

Deflate::~Deflate() {
  if (impl_->in_ok) inflateEnd(&impl_->in);
  if (impl_->out_ok) deflateEnd(&impl_->out);
}

bool Deflate::inflate(std::string_view data, std::string& out, std::size_t max_size, bool& too_big) {
  too_big = false;
  if (!impl_->in_ok) return false;
  static const unsigned char kTail[4] = {0x00, 0x00, 0xff, 0xff};
  z_stream& z = impl_->in;
  unsigned char buf[16384];
  for (int part = 0; part < 2; ++part) {
    if (part == 0) {
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
      z.avail_in = static_cast<uInt>(data.size());
    } else {
      z.next_in = const_cast<Bytef*>(kTail);
      z.avail_in = 4;
    }
    do {
      z.next_out = buf;
      z.avail_out = sizeof buf;
      int rc = ::inflate(&z, Z_SYNC_FLUSH);
      if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END) return false;
      std::size_t n = sizeof buf - z.avail_out;
      if (out.size() + n > max_size) {
        too_big = true;
        return false;
      }
      out.append(reinterpret_cast<char*>(buf), n);
      if (rc == Z_BUF_ERROR && z.avail_out != 0) break;
    } while (z.avail_in > 0 || z.avail_out == 0);
  }
  if (impl_->p.client_no_context_takeover) inflateReset(&z);
  return true;
}

void Deflate::deflate(std::string_view data, std::string& out) {
  z_stream& z = impl_->out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  unsigned char buf[16384];
  std::size_t start = out.size();
  do {
    z.next_out = buf;
    z.avail_out = sizeof buf;
    ::deflate(&z, Z_SYNC_FLUSH);
    out.append(reinterpret_cast<char*>(buf), sizeof buf - z.avail_out);
  } while (z.avail_out == 0);
  // A sync flush ends with 00 00 ff ff; the message leaves it out (RFC 7692 §7.2.1).
  if (out.size() - start >= 4 && std::memcmp(out.data() + out.size() - 4, "\x00\x00\xff\xff", 4) == 0)
    out.resize(out.size() - 4);
  if (out.size() == start) out.push_back('\0');  // an empty message is one 0x00 byte
  if (impl_->p.server_no_context_takeover) deflateReset(&z);
}

}  // namespace puff::http::ws
