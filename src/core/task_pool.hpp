// A small pool of plain threads for blocking system calls that have no async form (regular
// file reads, fstat of slow filesystems), so they never stall an I/O loop. Threads start
// lazily up to a bound, are detached, and block all signals. Any thread may post.
#pragma once

#include <cstddef>
#include <functional>

namespace puff::core {

/** Runs `fn` on one of at most `kMaxFileThreads` threads. Never blocks the caller. */
void post_blocking_io(std::function<void()> fn);

inline constexpr std::size_t kMaxFileThreads = 4;

}  // namespace puff::core
