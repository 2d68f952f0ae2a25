// A piece of output queued for a socket: owned bytes, or borrowed bytes kept alive by a holder.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace puff::http {

/** One piece of response output: bytes owned here, or a view of bytes someone else owns, kept
 *  alive by `hold` until the socket has taken them (a Python `bytes` body chunk is written
 *  without a copy this way; dropping `hold` hands the object back to its thread). */
struct OutPiece {
  OutPiece(std::string s) : own(std::move(s)) {}  // NOLINT: implicit, most output is owned
  OutPiece(std::string_view v, std::shared_ptr<const void> h) : ext(v), hold(std::move(h)) {}
  std::string_view view() const { return hold ? ext : std::string_view(own); }
  std::size_t size() const { return hold ? ext.size() : own.size(); }
  bool empty() const { return size() == 0; }

  std::string own;
  std::string_view ext;
  std::shared_ptr<const void> hold;
};

}  // namespace puff::http
