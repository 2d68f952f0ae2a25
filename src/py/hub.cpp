// The hub: the only translation unit that includes greenlet.h (its API table is a per-TU static).
#include "py/hub.hpp"
#include "py/pg_values.hpp"

#include "core/post_batch.hpp"

#include "py/http_bridge.hpp"
#include "py/ops.hpp"

#include <greenlet/greenlet.h>

#include <cstring>
#include <pythread.h>
#include <string>
#include <unistd.h>
#include <vector>

namespace puff::py {

namespace {

Hub* g_hub = nullptr;

PyObject* current_greenlet() { return reinterpret_cast<PyObject*>(PyGreenlet_GetCurrent()); }

/** Switches to `g` (a greenlet) passing `value` (borrowed, may be null). Returns what the
 *  switch returns (new ref) or null with an exception. */
PyObject* switch_to(PyObject* g, PyObject* value) {
  if (value) {
    PyObject* args = PyTuple_Pack(1, value);
    if (!args) return nullptr;
    PyObject* r = PyGreenlet_Switch(reinterpret_cast<PyGreenlet*>(g), args, nullptr);
    Py_DECREF(args);
    return r;
  }
  return PyGreenlet_Switch(reinterpret_cast<PyGreenlet*>(g), g_hub->empty_tuple, nullptr);
}

/** The hub just switched into a greenlet and got control back with `r`. A greenlet that ends
 *  with an exception passes it to its parent (the hub): keep SystemExit/KeyboardInterrupt to
 *  stop the hub with, report anything else (puff.spawn's wrapper catches user errors itself). */
void after_switch(PyObject* r) {
  if (r) {
    Py_DECREF(r);
    return;
  }
  if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
    PyObject* exc = take_exception();
    if (!g_hub->exit_exc) {
      g_hub->exit_exc = exc;
    } else {
      Py_DECREF(exc);
    }
    g_hub->stop_signal.store(1);
    return;
  }
  PyErr_WriteUnraisable(nullptr);
}

bool in_hub_greenlet() {
  PyObject* cur = current_greenlet();
  bool is_hub = cur == g_hub->main_greenlet;
  Py_XDECREF(cur);
  return is_hub;
}

/** Puff's loop is running in the hub. It is set only while _run_asyncio runs it (and only the
 *  hub greenlet runs it), so no asyncio._get_running_loop() call is needed — that one costs a
 *  getpid() system call per call on CPython 3.11. */
bool puff_loop_running() { return g_hub->loop != nullptr; }

void request_ready_wakeup() {
  // Something was made ready outside drain(): make sure a drain happens soon.
  if (!g_hub->draining && !g_hub->wake_pending) {
    g_hub->wake_pending = true;
    g_hub->queue.wake();
  }
}

}  // namespace

Hub* hub() noexcept { return g_hub; }

PyObject* new_greenlet(PyObject* run) {
  return reinterpret_cast<PyObject*>(PyGreenlet_New(run, reinterpret_cast<PyGreenlet*>(g_hub->main_greenlet)));
}

PyObject* switch_greenlet(PyObject* g, PyObject* value) { return switch_to(g, value); }

PyObject* switch_to_hub() { return switch_to(g_hub->main_greenlet, nullptr); }

PyObject* current_greenlet_ref() { return current_greenlet(); }

void hub_after_switch(PyObject* r) { after_switch(r); }

bool on_python_thread() noexcept { return g_hub && PyThread_get_thread_ident() == g_hub->thread_ident; }

namespace {

/** True when the caller is on the Python thread and it will look at the queue before it next
 *  sleeps, so a push needs no eventfd write: inside a scheduler round or a flush, or (greenlet
 *  runtime) in a handler of the hub's own I/O loop, which wait_driven() runs and then checks the
 *  queue. Under asyncio the loop sleeps in its selector, where only the eventfd wakes it. */
bool python_thread_looks_next() noexcept {
  return on_python_thread() && (g_hub->draining || g_hub->flushing || !g_hub->loop);
}

}  // namespace

void push(Completion* c) noexcept {
  if (python_thread_looks_next())
    g_hub->queue.push_quiet(c);
  else
    g_hub->queue.push(c);
}

bool coroutine_mode() { return on_python_thread() && in_hub_greenlet() && puff_loop_running(); }

// ---- Op -------------------------------------------------------------------------------------

void Op::link() {
  next_ = g_hub->inflight;
  prev_ = nullptr;
  if (next_) next_->prev_ = this;
  g_hub->inflight = this;
  linked_ = true;
  g_hub->pending.fetch_add(1, std::memory_order_relaxed);
  if (spin_for()) ++g_hub->awaited;
}

void Op::unlink() {
  if (!linked_) return;
  if (prev_) {
    prev_->next_ = next_;
  } else {
    g_hub->inflight = next_;
  }
  if (next_) next_->prev_ = prev_;
  linked_ = false;
  g_hub->pending.fetch_sub(1, std::memory_order_relaxed);
  if (spin_for()) --g_hub->awaited;
}

void Op::launch() {
  if (mode_ == Mode::Thread) {
    core::post(*g_hub->io, [this] { run(); });
    return;
  }
  next = nullptr;
  if (g_hub->submit_tail) {
    g_hub->submit_tail->next = this;
  } else {
    g_hub->submit_head = this;
  }
  g_hub->submit_tail = this;
  // Inside a scheduler round the batch is flushed when the round ends. A coroutine on the
  // loop gets a flush queued behind the other ready callbacks, so concurrent tasks share it.
  if (g_hub->draining) return;
  if (mode_ == Mode::Future && schedule_flush()) return;
  flush_submissions();
}

bool schedule_flush() noexcept {
  Hub& h = *g_hub;
  if (h.flush_scheduled) return true;
  if (!h.call_soon) return false;
  PyObject* r = PyObject_CallOneArg(h.call_soon, h.flush_fn);
  if (!r) {
    PyErr_WriteUnraisable(h.call_soon);
    return false;
  }
  Py_DECREF(r);
  h.flush_scheduled = true;
  return true;
}

void batch_posts_this_round() noexcept {
  // A scheduler round (drain) batches already; outside one, the loop's next round flushes.
  if (!g_hub || g_hub->draining || !on_python_thread()) return;
  if (schedule_flush()) core::open_post_batch();
}

PyObject* flush(PyObject*, PyObject*) {
  if (g_hub) {
    g_hub->flush_scheduled = false;
    struct Flushing {
      Flushing() { g_hub->flushing = true; }
      ~Flushing() { g_hub->flushing = false; }
    };
    {
      Flushing guard;
      flush_submissions();
      core::flush_post_batch();  // may run handlers of the hub's own loop, which push quietly
    }
    if (g_hub->queue.has_items()) request_ready_wakeup();  // under asyncio: drain() next round
  }
  Py_RETURN_NONE;
}

void flush_submissions() noexcept {
  Hub& h = *g_hub;
  core::WakeNode* head = h.submit_head;
  if (!head || !h.io) return;
  h.submit_head = h.submit_tail = nullptr;
  // Spread the round's ops over the I/O threads (one post per thread that gets some), so a
  // slow run() does not hold up the ops behind it.
  std::size_t threads = h.io->size();
  constexpr std::size_t kMaxThreads = 64;
  core::WakeNode* heads[kMaxThreads] = {};
  core::WakeNode* tails[kMaxThreads] = {};
  if (threads > kMaxThreads) threads = kMaxThreads;
  std::size_t i = h.submit_rr;
  for (core::WakeNode* n = head; n;) {
    core::WakeNode* following = n->next;
    if (static_cast<Op*>(n)->run_inline()) {
      static_cast<Op*>(n)->run();  // its completion is delivered by a later round: `n` stays valid
      n = following;
      continue;
    }
    std::size_t t = i++ % threads;
    n->next = nullptr;
    if (tails[t]) {
      tails[t]->next = n;
    } else {
      heads[t] = n;
    }
    tails[t] = n;
    n = following;
  }
  h.submit_rr = i;
  for (std::size_t t = 0; t < threads; ++t) {
    if (!heads[t]) continue;
    core::post_to(*h.io, t, [list = heads[t]] {
      for (core::WakeNode* n = list; n;) {
        core::WakeNode* following = n->next;  // run() may complete() and reuse `next`
        static_cast<Op*>(n)->run();
        n = following;
      }
    });
  }
}

void Op::complete() noexcept {
  if (mode_ == Mode::Thread) {
    ThreadWait* w = thread_wait_;
    std::lock_guard<std::mutex> lock(w->m);
    w->done = true;
    w->cv.notify_one();
    return;
  }
  if (state_.exchange(State::Completed) == State::Abandoned) {
    // The runtime stopped meanwhile and nobody waits: free it here (its destructor may release
    // Python objects, e.g. an extension's op, so take the GIL).
    PyGILState_STATE g = PyGILState_Ensure();
    delete this;
    PyGILState_Release(g);
    return;
  }
  // A handler of the hub's own I/O loop runs on the Python thread, which looks at the queue
  // before it sleeps: no eventfd write needed.
  if (python_thread_looks_next())
    g_hub->queue.push_quiet(this);
  else
    g_hub->queue.push(this);
}

void Op::deliver() {
  unlink();
  if (abandoned_ && mode_ == Mode::Future) {
    Py_CLEAR(waiter_);
    delete this;
    return;
  }
  if (mode_ == Mode::Future) {
    PyObject* fut = waiter_;
    waiter_ = nullptr;
    PyObject* done = PyObject_CallMethodNoArgs(fut, g_hub->s_done);
    bool skip = !done || PyObject_IsTrue(done);
    Py_XDECREF(done);
    if (!skip) {
      PyObject* value = result();
      PyObject* r;
      if (value) {
        r = PyObject_CallMethodOneArg(fut, g_hub->s_set_result, value);
        Py_DECREF(value);
      } else {
        PyObject* exc = take_exception();
        r = PyObject_CallMethodOneArg(fut, g_hub->s_set_exception, exc);
        Py_DECREF(exc);
      }
      if (!r) PyErr_WriteUnraisable(fut);
      Py_XDECREF(r);
    }
    PyErr_Clear();
    Py_DECREF(fut);
    delete this;
    return;
  }
  // Greenlet mode.
  PyObject* g = waiter_;
  waiter_ = nullptr;
  if (abandoned_ || !g) {
    Py_XDECREF(g);
    delete this;
    return;
  }
  completed_ = true;
  // From here the greenlet owns `this` (start() reads the result and deletes the op).
  PyObject* r = switch_to(g, nullptr);
  after_switch(r);
  Py_DECREF(g);
}

void Op::discard() {
  unlink();
  Py_CLEAR(waiter_);
  abandoned_ = true;
  delete this;
}

void Op::abandon() {
  unlink();
  abandoned_ = true;
  // Dropping the reference to a waiting greenlet may kill it (GreenletExit): its exit path in
  // start() reads this op, which therefore stays allocated until its completion arrives.
  Py_CLEAR(waiter_);
  if (state_.exchange(State::Abandoned) == State::Completed) {
    // Already pushed to the wake queue: the queue's consumer frees it (deliver() or discard()).
    return;
  }
  // Still pending: complete() will free it, if it ever runs.
}

PyObject* start(Op* op) {
  if (!g_hub || !g_hub->io) {
    delete op;
    PyErr_SetString(PyExc_RuntimeError, "the Puff runtime is not running (run your code with puff.run() or a `puff` command)");
    return nullptr;
  }
  if (!on_python_thread()) {
    // A blocking-pool (or other) thread: block just this thread.
    Op::ThreadWait w;
    op->mode_ = Op::Mode::Thread;
    op->thread_wait_ = &w;
    op->launch();
    Py_BEGIN_ALLOW_THREADS
    std::unique_lock<std::mutex> lock(w.m);
    w.cv.wait(lock, [&] { return w.done; });
    Py_END_ALLOW_THREADS
    PyObject* r = op->result();
    delete op;
    return r;
  }
  PyObject* cur = current_greenlet();
  if (!cur) {
    delete op;
    return nullptr;
  }
  if (cur != g_hub->main_greenlet) {
    op->mode_ = Op::Mode::Greenlet;
    op->waiter_ = cur;  // the reference from getcurrent, dropped by deliver()
    op->link();
    op->launch();
    PyObject* r = switch_to(g_hub->main_greenlet, nullptr);
    if (op->completed_) {
      Py_XDECREF(r);
      PyObject* value = op->result();
      delete op;
      return value;
    }
    // Resumed before the call finished: an exception thrown in (greenlet.throw / kill) or a
    // stray switch. Leave the op to the hub, which frees it when the work completes.
    op->abandoned_ = true;
    op->on_abandoned();
    if (r) {
      Py_DECREF(r);
      PyErr_SetString(PyExc_RuntimeError, "greenlet was switched to while its Puff call was still pending");
    }
    return nullptr;
  }
  Py_DECREF(cur);
  if (puff_loop_running()) {
    PyObject* fut = PyObject_CallNoArgs(g_hub->create_future);
    if (!fut) {
      delete op;
      return nullptr;
    }
    Py_INCREF(fut);
    op->mode_ = Op::Mode::Future;
    op->waiter_ = fut;
    op->link();
    op->launch();
    return fut;
  }
  delete op;
  PyErr_SetString(PyExc_RuntimeError,
                  "You cannot call Puff functions outside of greenlets or asyncio: call them from a "
                  "greenlet (puff.spawn, a puff command) or await them in a coroutine on Puff's loop");
  return nullptr;
}

// ---- draining ----------------------------------------------------------------------------------

namespace {

/** One round: every queued completion, then the greenlets that were ready when it started.
 *  Returns true if more work arrived meanwhile; `delivered`: whether it delivered a completion. */
bool drain_once(bool* delivered = nullptr) {
  Hub& h = *g_hub;
  core::open_post_batch();  // responses written in this round reach each I/O thread in one post
  // The hub's own I/O loop, every round: a hub that always has more work never waits in it, and
  // its connection's results must not wait for an idle moment (with 50 greenlets yielding to each
  // other in a loop, a query on the hub's connection never completed).
  h.io->poll_driven();
  h.queue.clear_wakeup();
  h.wake_pending = false;
  core::WakeNode* n = h.queue.pop_all();
  if (delivered) *delivered = n != nullptr;
  while (n) {
    auto* c = static_cast<Completion*>(n);
    n = n->next;
    c->deliver();
  }
  std::size_t todo = h.ready.size();
  while (todo-- && !h.ready.empty()) {
    auto [g, value, throw_it] = h.ready.front();
    h.ready.pop_front();
    PyObject* r;
    if (throw_it) {
      PyObject* typ = PyExceptionInstance_Check(value) ? reinterpret_cast<PyObject*>(Py_TYPE(value)) : value;
      PyObject* val = PyExceptionInstance_Check(value) ? value : nullptr;
      r = PyGreenlet_Throw(reinterpret_cast<PyGreenlet*>(g), typ, val, nullptr);
    } else {
      r = switch_to(g, value == Py_None ? nullptr : value);
    }
    after_switch(r);
    Py_DECREF(g);
    Py_DECREF(value);
  }
  flush_submissions();
  core::flush_post_batch();
  return !h.ready.empty() || h.queue.has_items();
}

}  // namespace

PyObject* drain_loop(PyObject* self, PyObject* unused) {
  // The asyncio loop found the hub's own I/O loop readable: drain() polls it while it is in
  // use; poll it here when it is not (a leftover event would keep its descriptor readable, and
  // the loop spinning).
  if (g_hub && g_hub->io && !g_hub->io->driven_in_use()) g_hub->io->poll_driven(true);
  return drain(self, unused);
}

PyObject* drain(PyObject*, PyObject*) {
  if (!g_hub) Py_RETURN_NONE;
  g_hub->draining = true;
  bool delivered = false;
  bool more = drain_once(&delivered);
  g_hub->draining = false;
  if (delivered && g_hub->loop) {
    // What was just delivered (a request's new task, a receive's result) runs in the loop's
    // next round and usually answers there. A flush queued now runs behind it in that same
    // round; queued by the first send() instead, it would cost a round of its own (an
    // epoll_wait and the loop's bookkeeping per response).
    batch_posts_this_round();
  }
  if (more) {
    // Under asyncio, give the loop its turn and come back.
    g_hub->wake_pending = true;
    g_hub->queue.wake();
  }
  if (g_hub->stop_signal.load() && g_hub->loop) {
    PyObject* r = PyObject_CallMethod(g_hub->loop, "stop", nullptr);
    Py_XDECREF(r);
    PyErr_Clear();
  }
  Py_RETURN_NONE;
}

PyObject* run_hub(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  // run_hub(signal_fd=-1): runs greenlets until stop_hub() or a signal handler raises.
  if (!g_hub) {
    PyErr_SetString(PyExc_RuntimeError, "runtime not started");
    return nullptr;
  }
  if (!on_python_thread() || !in_hub_greenlet()) {
    PyErr_SetString(PyExc_RuntimeError, "run_hub() must be called from the main greenlet of the Python thread");
    return nullptr;
  }
  int signal_fd = -1;
  if (nargs >= 1 && args[0] != Py_None) {
    signal_fd = PyLong_AsLong(args[0]);
    if (signal_fd == -1 && PyErr_Occurred()) return nullptr;
  }
  Hub& h = *g_hub;
  if (h.running) {
    PyErr_SetString(PyExc_RuntimeError, "the hub is already running");
    return nullptr;
  }
  h.running = true;
  h.stop_signal.store(0);
  auto spin = std::chrono::microseconds(h.settings.spin_us);
  PyObject* result = Py_None;
  while (!h.stop_signal.load(std::memory_order_relaxed)) {
    h.draining = true;
    bool more = drain_once();
    h.draining = false;
    if (h.stop_signal.load(std::memory_order_relaxed)) break;
    if (!more) {
      // Sleeps in the hub's own I/O loop (IoPool::driven()): Postgres connections that live there
      // send and receive on this thread, without waking an I/O thread.
      // The spin catches a result or a request handed over by another thread without a sleep.
      // While the loop runs sockets of its own (HTTP connections, the Postgres hub connection),
      // their events wake its epoll_wait anyway: spin then only while a result is awaited, or
      // it burns the CPU another worker needs (2 workers on 2 cores: ~3% of a bare hello).
      bool awaiting = h.awaited > 0;  // a timer (puff.sleep_ms) is not worth a spin
      auto spin_now = awaiting || !h.io->driven_in_use() ? spin : std::chrono::microseconds(0);
      ++h.sleeps;
      if (spin_now.count() > 0) ++h.spun_sleeps;
      bool signalled;
      Py_BEGIN_ALLOW_THREADS
      signalled = h.io->wait_driven(h.queue, spin_now, signal_fd);
      Py_END_ALLOW_THREADS
      if (signalled) {
        char buf[64];
        while (::read(signal_fd, buf, sizeof buf) > 0) {
        }
      }
    }
    if (PyErr_CheckSignals() < 0) {
      result = nullptr;
      break;
    }
  }
  h.running = false;
  if (result && h.exit_exc) {
    raise_exception(h.exit_exc);
    h.exit_exc = nullptr;
    return nullptr;
  }
  Py_XINCREF(result);
  return result;
}

PyObject* stop_hub(PyObject*, PyObject*) {
  if (g_hub) {
    g_hub->stop_signal.store(1);
    g_hub->queue.wake();
  }
  Py_RETURN_NONE;
}

PyObject* schedule(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  // schedule(greenlet, value=None, throw=False): resume `greenlet` from the hub soon, passing
  // `value`, or raising it inside the greenlet when `throw` is true.
  if (!g_hub || !on_python_thread()) {
    PyErr_SetString(PyExc_RuntimeError, "schedule() must be called on the Puff Python thread");
    return nullptr;
  }
  if (nargs < 1 || nargs > 3 || !PyGreenlet_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "schedule(greenlet, value=None, throw=False)");
    return nullptr;
  }
  PyObject* value = nargs >= 2 ? args[1] : Py_None;
  bool throw_it = nargs == 3 && PyObject_IsTrue(args[2]) == 1;
  if (throw_it && !PyExceptionInstance_Check(value) &&
      !(PyType_Check(value) && PyType_IsSubtype(reinterpret_cast<PyTypeObject*>(value),
                                                reinterpret_cast<PyTypeObject*>(PyExc_BaseException)))) {
    PyErr_SetString(PyExc_TypeError, "schedule(..., throw=True) needs an exception");
    return nullptr;
  }
  Py_INCREF(args[0]);
  Py_INCREF(value);
  g_hub->ready.push_back(Hub::Ready{args[0], value, throw_it});
  request_ready_wakeup();
  Py_RETURN_NONE;
}

PyObject* yield_now(PyObject*, PyObject*) {
  // Lets other ready greenlets run, then continues. A no-op in the hub itself.
  if (!g_hub || !on_python_thread()) Py_RETURN_NONE;
  PyObject* cur = current_greenlet();
  if (cur == g_hub->main_greenlet) {
    Py_DECREF(cur);
    Py_RETURN_NONE;
  }
  Py_INCREF(Py_None);
  g_hub->ready.push_back(Hub::Ready{cur, Py_None, false});  // owns cur's reference
  request_ready_wakeup();
  PyObject* r = switch_to(g_hub->main_greenlet, nullptr);
  if (!r) return nullptr;
  Py_DECREF(r);
  Py_RETURN_NONE;
}

PyObject* set_loop(PyObject*, PyObject* loop) {
  if (!g_hub) {
    PyErr_SetString(PyExc_RuntimeError, "runtime not started");
    return nullptr;
  }
  Py_CLEAR(g_hub->loop);
  Py_CLEAR(g_hub->create_future);
  Py_CLEAR(g_hub->call_soon);
  Py_CLEAR(g_hub->create_task);
  Py_CLEAR(g_hub->get_task_factory);
  g_hub->flush_scheduled = false;
  if (loop != Py_None) {
    PyObject* cf = PyObject_GetAttrString(loop, "create_future");
    PyObject* cs = cf ? PyObject_GetAttrString(loop, "call_soon") : nullptr;
    PyObject* ct = cs ? PyObject_GetAttrString(loop, "create_task") : nullptr;
    PyObject* tf = ct ? PyObject_GetAttrString(loop, "get_task_factory") : nullptr;
    if (!tf) {
      Py_XDECREF(cf);
      Py_XDECREF(cs);
      Py_XDECREF(ct);
      return nullptr;
    }
    g_hub->loop = Py_NewRef(loop);
    g_hub->create_future = cf;
    g_hub->call_soon = cs;
    g_hub->create_task = ct;
    g_hub->get_task_factory = tf;
  }
  // The asyncio loop sleeps in its own selector: posts to the hub's I/O loop must wake it.
  if (g_hub->io) g_hub->io->watch_driven(g_hub->loop ? &g_hub->queue : nullptr);
  flush_submissions();
  Py_RETURN_NONE;
}

PyObject* wakeup_fd(PyObject*, PyObject*) {
  if (!g_hub) {
    PyErr_SetString(PyExc_RuntimeError, "runtime not started");
    return nullptr;
  }
  return PyLong_FromLong(g_hub->queue.fd());
}

PyObject* loop_fd(PyObject*, PyObject*) {
  if (!g_hub || !g_hub->io) {
    PyErr_SetString(PyExc_RuntimeError, "runtime not started");
    return nullptr;
  }
  return PyLong_FromLong(g_hub->io->driven_fd());
}

PyObject* stats(PyObject*, PyObject*) {
  if (!g_hub) return PyDict_New();
  return Py_BuildValue("{s:L,s:n,s:I,s:O,s:K,s:K}", "pending", static_cast<long long>(g_hub->pending.load()), "ready",
                       static_cast<Py_ssize_t>(g_hub->ready.size()), "io_threads",
                       g_hub->io ? static_cast<unsigned>(g_hub->io->size()) : 0u, "loop",
                       g_hub->loop ? g_hub->loop : Py_None, "sleeps", static_cast<unsigned long long>(g_hub->sleeps),
                       "spun_sleeps", static_cast<unsigned long long>(g_hub->spun_sleeps));
}

// ---- start / stop --------------------------------------------------------------------------

namespace {

bool read_settings(PyObject* dict, core::RuntimeSettings& out) {
  std::vector<core::SettingValue> values;
  if (dict && dict != Py_None) {
    if (!PyDict_Check(dict)) {
      PyErr_SetString(PyExc_TypeError, "settings must be a dict");
      return false;
    }
    PyObject *k, *v;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &k, &v)) {
      core::SettingValue sv;
      const char* key = PyUnicode_AsUTF8(k);
      if (!key) return false;
      sv.key = key;
      if (PyLong_Check(v) && !PyBool_Check(v)) {
        long long n = PyLong_AsLongLong(v);
        if (n == -1 && PyErr_Occurred()) {
          PyErr_Clear();
          sv.text = "<huge integer>";
        } else {
          sv.integer = n;
        }
      } else {
        PyObject* s = PyObject_Str(v);
        if (!s) return false;
        const char* t = PyUnicode_AsUTF8(s);
        sv.text = t ? t : "";
        Py_DECREF(s);
      }
      values.push_back(std::move(sv));
    }
  }
  if (auto err = core::apply_settings(values, out)) {
    PyErr_SetString(PyExc_ValueError, err->c_str());
    return false;
  }
  return true;
}

}  // namespace

PyObject* runtime_start(PyObject*, PyObject* settings) {
  if (g_hub && g_hub->io) {
    PyErr_SetString(PyExc_RuntimeError, "the Puff runtime is already running in this process");
    return nullptr;
  }
  if (!_PyGreenlet_API) {
    PyGreenlet_Import();
    if (!_PyGreenlet_API) return nullptr;
  }
  core::RuntimeSettings s;
  if (!read_settings(settings, s)) return nullptr;
  PyObject* cur = current_greenlet();
  if (!cur) return nullptr;
  if (PyGreenlet_GET_PARENT(reinterpret_cast<PyGreenlet*>(cur)) != nullptr) {
    Py_DECREF(cur);
    PyErr_SetString(PyExc_RuntimeError, "the Puff runtime must be started from the main greenlet");
    return nullptr;
  }
  PyObject* events = PyImport_ImportModule("asyncio.events");
  if (!events) {
    Py_DECREF(cur);
    return nullptr;
  }
  PyObject* grl = PyObject_GetAttrString(events, "_get_running_loop");
  Py_DECREF(events);
  if (!grl) {
    Py_DECREF(cur);
    return nullptr;
  }
  if (!g_hub) g_hub = new Hub();
  Hub& h = *g_hub;
  h.settings = s;
  h.thread_ident = PyThread_get_thread_ident();
  Py_XDECREF(h.main_greenlet);
  h.main_greenlet = cur;
  Py_XDECREF(h.get_running_loop);
  h.get_running_loop = grl;
  if (!h.empty_tuple) {
    h.empty_tuple = PyTuple_New(0);
    h.s_done = PyUnicode_InternFromString("done");
    h.s_set_result = PyUnicode_InternFromString("set_result");
    h.s_set_exception = PyUnicode_InternFromString("set_exception");
    PyObject* mod = PyImport_ImportModule("puff._native");
    h.flush_fn = mod ? PyObject_GetAttrString(mod, "flush") : nullptr;
    Py_XDECREF(mod);
    if (!h.flush_fn) return nullptr;
  }
  h.stop_signal.store(0);
  h.pending.store(0);
  h.awaited = 0;
  try {
    h.io = std::make_unique<core::IoPool>(s.resolved_io_threads());
  } catch (const std::exception& e) {
    PyErr_Format(PyExc_RuntimeError, "could not start the I/O threads: %s", e.what());
    return nullptr;
  }
  return Py_BuildValue("{s:I,s:I,s:I,s:I}", "io_threads", s.resolved_io_threads(), "blocking_threads",
                       s.blocking_threads, "spin_us", s.spin_us, "shutdown_timeout_ms", s.shutdown_timeout_ms);
}

PyObject* runtime_stop(PyObject*, PyObject*) {
  if (!g_hub || !g_hub->io) Py_RETURN_NONE;
  core::flush_post_batch();  // posts held for the loop's next round go out before the I/O threads end
  close_http_servers();
  close_pg_pools();
  g_hub->io->poll_driven();  // connections on the hub's loop close (their queries fail) now
  shutdown_blocking_pool();
  // Joining the I/O threads can wait for a running handler; do it without the GIL.
  std::unique_ptr<core::IoPool> io = std::move(g_hub->io);
  Py_BEGIN_ALLOW_THREADS
  io->stop();
  io.reset();
  Py_END_ALLOW_THREADS
  // Completions that arrived after the last drain are dropped, not delivered: no user code
  // runs after the runtime stopped.
  core::WakeNode* n = g_hub->queue.pop_all();
  while (n) {
    auto* c = static_cast<Completion*>(n);
    n = n->next;
    c->discard();
  }
  g_hub->submit_head = g_hub->submit_tail = nullptr;  // never posted: still in `inflight`
  // Ops whose work has not finished (handlers destroyed with the I/O loops, or still running on
  // an extension's thread).
  while (g_hub->inflight) g_hub->inflight->abandon();
  g_hub->pending.store(0);
  g_hub->awaited = 0;
  for (auto& r : g_hub->ready) {
    Py_DECREF(r.greenlet);
    Py_DECREF(r.value);
  }
  g_hub->ready.clear();
  Py_CLEAR(g_hub->loop);
  Py_CLEAR(g_hub->create_future);
  Py_CLEAR(g_hub->call_soon);
  Py_CLEAR(g_hub->create_task);
  Py_CLEAR(g_hub->get_task_factory);
  g_hub->flush_scheduled = false;
  Py_CLEAR(g_hub->exit_exc);
  Py_RETURN_NONE;
}

}  // namespace puff::py
