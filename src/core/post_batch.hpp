// Grouping cross-thread posts: while a batch is open on the calling thread (the Python thread's
// scheduler round), posts to I/O threads are collected and sent as one post per I/O thread when
// the round ends, instead of one post (a lock and maybe an eventfd write) per response.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <functional>

namespace puff::core {

/** Runs `fn` on `ex` now, or at the end of the calling thread's open batch. Any thread. */
void post_batched(const boost::asio::any_io_executor& ex, std::function<void()> fn);

/** Opens a batch on the calling thread (nesting is not supported: a second open is ignored). */
void open_post_batch() noexcept;
/** Sends the batch's posts (grouped per executor) and closes it. */
void flush_post_batch();

}  // namespace puff::core
