// permessage-deflate (RFC 7692): negotiation of the client's offer, and the per-connection
// inflater/deflater. Pure (zlib only); one connection, one thread at a time.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace puff::http::ws {

struct DeflateParams {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 15;
  int client_max_window_bits = 15;
};

/** Reads a Sec-WebSocket-Extensions value and accepts the first permessage-deflate offer whose
 *  parameters are valid. Returns nothing when there is no acceptable offer. The server always
 *  answers with server_no_context_takeover (it resets its compressor after each message). */
std::optional<DeflateParams> negotiate_deflate(std::string_view offers);

/** The response header value for accepted parameters ("permessage-deflate; ..."). */
std::string deflate_response(const DeflateParams& p);

class Deflate {
 public:
  explicit Deflate(const DeflateParams& p);
  ~Deflate();
  Deflate(const Deflate&) = delete;
  Deflate& operator=(const Deflate&) = delete;

  /** Inflates one received message into `out`. False when the data is corrupt or the result
   *  would exceed `max_size` (`too_big` tells which). */
  bool inflate(std::string_view in, std::string& out, std::size_t max_size, bool& too_big);
  /** Compresses one message to send (the payload of a frame with RSV1 set). */
  void deflate(std::string_view in, std::string& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace puff::http::ws
