// The server's half of the WebSocket opening handshake that is pure computation (RFC 6455 §4.2.2).
#pragma once

#include <string>
#include <string_view>

namespace puff::http::ws {

/** Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key + RFC 6455's GUID)).
 *  Any thread. */
std::string accept_key(std::string_view client_key);

/** A Sec-WebSocket-Key the server may accept: base64 of 16 bytes (24 characters ending in "=="). */
bool valid_client_key(std::string_view key) noexcept;

/** SHA-1 of `data` (20 bytes). Only for the handshake: SHA-1 is not a security primitive here. */
std::string sha1(std::string_view data);

/** Standard base64 with padding. */
std::string base64_encode(std::string_view data);

}  // namespace puff::http::ws
