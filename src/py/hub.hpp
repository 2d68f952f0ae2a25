// The Python thread's scheduler ("hub") and dual-mode async calls.
//
// Thread model (DESIGN.md §2): all Python code runs on one thread. The hub is that thread's main
// greenlet; it resumes greenlets when their native work completes. I/O threads hand completions
// over through a WakeQueue (one eventfd write per batch). When an asyncio loop is running in the
// hub, the loop owns the thread and calls drain() whenever the queue's eventfd is readable.
#pragma once

#include "core/io_pool.hpp"
#include "core/settings.hpp"
#include "core/wake_queue.hpp"
#include "py/pyref.hpp"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>

namespace puff::py {

/** Something to run on the Python thread. deliver() runs there with the GIL held and owns
 *  `this` from then on (it deletes itself or hands itself on). */
struct Completion : core::WakeNode {
  virtual void deliver() = 0;
  /** Python thread, GIL held: dropped at shutdown without delivering. */
  virtual void discard() { delete this; }
  virtual ~Completion() = default;
};

/** One native async call. Subclasses provide run() (an I/O thread, no GIL, no Python objects;
 *  must end with complete(), possibly later from another thread) and result() (GIL held;
 *  a new reference or NULL with an exception set). */
class Op : public Completion {
 public:
  virtual void run() = 0;
  virtual PyObject* result() = 0;
  /** Any thread, exactly once, after run()'s work is done. */
  void complete() noexcept;
  /** Python thread. Called by the hub; resumes or resolves the caller. */
  void deliver() final;
  /** Python thread: dropped from the wake queue at stop (the op is complete): freed. */
  void discard() final;
  /** Python thread, at stop: the op's work may still complete later (an extension thread, a
   *  waiter): forget the caller; whoever comes last (complete() or the queue) frees it. */
  void abandon();
  /** Python thread: the waiting greenlet was resumed before the work completed (killed, or an
   *  exception thrown in). The op still completes (and is then freed); override to stop the work
   *  early, e.g. cancel a query. Not called for asyncio futures (yet). */
  virtual void on_abandoned() {}
  /** True when run() only registers or hands on work (never blocks, never touches Python
   *  objects): the Python thread then calls it itself when it flushes a round's ops, GIL held,
   *  which saves waking an I/O thread just to run it. If run() completes at once, the
   *  completion is delivered by a later round. */
  virtual bool run_inline() const noexcept { return false; }
  /** Whether the hub's spin before sleeping may catch this op's result: true for work that
   *  completes on its own time (a query, a thread's result); false for a timer. */
  virtual bool spin_for() const noexcept { return true; }
  /** Hands run() to an I/O thread. From the Python thread ops are batched: one post per
   *  scheduler round carries every op started in it. GIL held. */
  void launch();

  enum class Mode : std::uint8_t { Greenlet, Future, Thread };

 private:
  friend PyObject* start(Op* op);
  struct ThreadWait {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
  };
  friend PyObject* runtime_stop(PyObject*, PyObject*);
  void link();    // Python thread: into the hub's in-flight list
  void unlink();  // Python thread
  Op* prev_ = nullptr;  // the hub's in-flight list (greenlet and future modes)
  Op* next_ = nullptr;
  bool linked_ = false;
  Mode mode_ = Mode::Greenlet;
  bool completed_ = false;   // Python thread: delivered by the hub
  bool abandoned_ = false;   // Python thread: the waiting greenlet went away
  // complete() vs abandon() at stop, which may race with an extension's own thread.
  enum class State : std::uint8_t { Pending, Completed, Abandoned };
  std::atomic<State> state_{State::Pending};
  PyObject* waiter_ = nullptr;  // owned: the greenlet or the future
  ThreadWait* thread_wait_ = nullptr;
};

/** Starts `op` in the mode the caller needs and takes ownership of it:
 *  - in a greenlet on the Python thread: suspends that greenlet and returns the value;
 *  - in the hub while Puff's asyncio loop runs (a coroutine): returns an asyncio future;
 *  - on another thread holding the GIL (blocking pool): blocks that thread, returns the value;
 *  - elsewhere: raises RuntimeError.
 *  May switch greenlets. Returns NULL with an exception set on failure. */
PyObject* start(Op* op);

/** Python thread or GIL held: hand `c` to the hub. From another thread use push(). */
void push(Completion* c) noexcept;

/** The hub's state. One per process; created by runtime_start(). */
struct Hub {
  core::RuntimeSettings settings;
  std::unique_ptr<core::IoPool> io;
  core::WakeQueue queue;
  unsigned long thread_ident = 0;  // the Python thread
  PyObject* main_greenlet = nullptr;  // owned
  PyObject* loop = nullptr;           // owned: Puff's asyncio loop while it runs, else null
  PyObject* get_running_loop = nullptr;  // owned: asyncio._get_running_loop
  PyObject* empty_tuple = nullptr;       // owned
  struct Ready {
    PyObject* greenlet;  // owned
    PyObject* value;     // owned: passed to the switch, or the exception to throw
    bool throw_it;
  };
  std::deque<Ready> ready;
  std::atomic<std::int64_t> pending{0};  // ops started and not yet delivered
  std::int64_t awaited = 0;              // Python thread: those of them worth a spin (Op::spin_for)
  std::uint64_t sleeps = 0, spun_sleeps = 0;  // greenlet hub waits, and those that spun first
  Op* inflight = nullptr;                // Python thread: those ops, for discarding at stop
  core::WakeNode* submit_head = nullptr;  // Python thread: ops launched this round (FIFO)
  core::WakeNode* submit_tail = nullptr;
  std::size_t submit_rr = 0;              // which I/O thread gets the next batch
  bool flush_scheduled = false;           // a loop.call_soon(flush) is pending
  PyObject* flush_fn = nullptr;           // owned: _native.flush, for loop.call_soon
  PyObject* create_future = nullptr;      // owned: loop.create_future while the loop is set
  PyObject* call_soon = nullptr;          // owned: loop.call_soon while the loop is set
  PyObject* create_task = nullptr;        // owned: loop.create_task while the loop is set
  PyObject* get_task_factory = nullptr;   // owned: loop.get_task_factory while the loop is set
  PyObject* s_done = nullptr;             // interned method names
  PyObject* s_set_result = nullptr;
  PyObject* s_set_exception = nullptr;
  std::atomic<int> stop_signal{0};       // nonzero: run_hub() should return
  bool running = false;                  // inside run_hub()
  bool draining = false;
  bool flushing = false;                 // inside flush(): the queue is looked at afterwards
  bool wake_pending = false;             // an eventfd wake-up for `ready` is outstanding
  PyObject* exit_exc = nullptr;          // owned: SystemExit/KeyboardInterrupt that reached the hub
};

/** The hub, or null before runtime_start(). */
Hub* hub() noexcept;

/** Python-callable entry points defined in hub.cpp (see module.cpp for their docs). */
PyObject* runtime_start(PyObject* self, PyObject* settings);
PyObject* runtime_stop(PyObject* self, PyObject* unused);
PyObject* run_hub(PyObject* self, PyObject* const* args, Py_ssize_t nargs);
PyObject* drain(PyObject* self, PyObject* unused);
PyObject* drain_loop(PyObject* self, PyObject* unused);
PyObject* stop_hub(PyObject* self, PyObject* unused);
PyObject* schedule(PyObject* self, PyObject* const* args, Py_ssize_t nargs);
PyObject* set_loop(PyObject* self, PyObject* loop);
PyObject* wakeup_fd(PyObject* self, PyObject* unused);
PyObject* loop_fd(PyObject* self, PyObject* unused);
PyObject* stats(PyObject* self, PyObject* unused);
PyObject* flush(PyObject* self, PyObject* unused);
PyObject* yield_now(PyObject* self, PyObject* unused);

/** Greenlet helpers for code outside hub.cpp (greenlet.h's API table is per translation unit).
 *  Python thread only. */
PyObject* new_greenlet(PyObject* run);                 // new ref; parent = the hub
PyObject* switch_greenlet(PyObject* g, PyObject* value);  // from the hub: run g until it yields
PyObject* switch_to_hub();                             // from a greenlet: wait to be resumed
PyObject* current_greenlet_ref();                      // new ref
/** Hands what a switch into a greenlet returned to the hub's error handling (steals `r`). */
void hub_after_switch(PyObject* r);

/** Python thread: posts the ops launched so far to an I/O thread (one post for the batch). */
void flush_submissions() noexcept;
/** Python thread: makes sure _native.flush runs in the loop's next round. False without a loop. */
bool schedule_flush() noexcept;
/** Python thread, a coroutine on Puff's loop: holds posts to the I/O threads (responses written,
 *  WebSocket frames) until the loop's next round, so every coroutine that ran in this one shares
 *  one post (and at most one wake-up) per I/O thread. No-op inside a scheduler round (drain),
 *  which batches already, and without a loop. */
void batch_posts_this_round() noexcept;

/** True when a Puff call made here should return an awaitable (a coroutine on Puff's loop). */
bool coroutine_mode();

/** True when called on the Python thread. */
bool on_python_thread() noexcept;

}  // namespace puff::py
