// Grouping cross-thread posts: while a batch is open on the calling thread (the Python thread's
// scheduler round), posts to I/O threads are collected and sent as one post per I/O thread when
// the round ends, instead of one post (a lock and maybe an eventfd write) per response.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/io_context.hpp>

#include <functional>

namespace puff::core {

/** asio::post(ex, fn), and when `ex` is the loop an outside event loop watches for its owner
 *  (IoPool::watch_driven(), asyncio), a wake-up of that loop: Asio interrupts its reactor only
 *  while a thread blocks in it, and nobody does then. Any thread. */
void post_io(const boost::asio::any_io_executor& ex, std::function<void()> fn);

/** Runs `fn` on `ex` now, or at the end of the calling thread's open batch. Any thread. */
void post_batched(const boost::asio::any_io_executor& ex, std::function<void()> fn);

/** Opens a batch on the calling thread (nesting is not supported: a second open is ignored). */
void open_post_batch() noexcept;
/** Sends the batch's posts (grouped per executor) and closes it. Posts to the calling thread's
 *  own loop (set_own_loop()) run right here instead, followed by a poll of that loop for what
 *  they completed at once (a socket write): that thread would run them next anyway. */
void flush_post_batch();

/** The io_context the calling thread drives itself (IoPool::driven() on the Python thread): a
 *  batch's posts to it run inline at flush_post_batch(). Null to unset. */
void set_own_loop(boost::asio::io_context* ctx) noexcept;

}  // namespace puff::core
