// The HTTP server's Python side: requests arrive from the I/O threads as completions, run in
// pooled greenlets (WSGI) and answer through their Exchange.
#pragma once

#include <deque>
#include <string>
#include <memory>
#include <vector>

#include "http/exchange.hpp"
#include "http/response.hpp"
#include "http/server.hpp"
#include "py/hub.hpp"

namespace puff::py {

/** Per-server settings the Python side needs. */
/** An application served under a path prefix. */
struct Mount {
  std::string prefix;        // "" for the root, else "/api" (no trailing '/'): SCRIPT_NAME / root_path
  PyObject* app = nullptr;   // owned
  bool asgi = false;
  PyObject* state = nullptr;  // owned, ASGI: the lifespan state dict (copied into each scope)
};

struct AppSettings {
  /** mounts[0] is the main application (the fallback); the others are matched by the longest
   *  prefix (`/api` matches `/api` and `/api/...`). */
  std::vector<Mount> mounts;
  std::size_t max_concurrency = 1000;  // requests running at once; more wait in a FIFO
  bool multiprocess = false;
  std::string url_scheme = "http";
  bool ws_deflate = true;   // accept permessage-deflate offers
};

/** Python-thread state of one HttpServer: the worker greenlets and the waiting requests. */
struct AppState {
  AppSettings settings;
  std::vector<PyObject*> idle_workers;  // owned greenlets waiting for a request
  std::size_t running = 0;              // requests being handled
  std::deque<std::shared_ptr<http::Exchange>> waiting;
  unsigned long long served = 0;
  PyObject* worker_fn = nullptr;        // owned: the PyCFunction run by worker greenlets
};

/** Shared by the I/O-thread handler and the Python object; `state` is Python-thread only and
 *  its Python references are released explicitly on close, never by the destructor. */
struct AppHandle {
  AppState state;
  bool closed = false;
};

/** Starts the ASGI application for one exchange as a task on Puff's loop. Python thread, in the
 *  hub (the loop is running). Never raises. */
void handle_asgi(const std::shared_ptr<AppHandle>& app, std::shared_ptr<http::Exchange> ex);
/** The ASGI scope dict of `ex` (asgi_scope.cpp): type "http", or "websocket". Null with an
 *  exception on failure. */
PyObject* build_scope(AppHandle& app, const http::Exchange& ex, bool websocket = false);
bool add_asgi_types(PyObject* module);
/** The application's coroutine `coro` wrapped for its task (asgi_run.cpp): steps are forwarded,
 *  and `on_end(owner, returned)` runs once when it ends (`returned`: it returned; else it raised,
 *  reported by then, or was cancelled, closed or dropped unfinished). */
PyObject* new_asgi_run(PyObject* coro, PyObject* owner, void (*on_end)(PyObject* owner, bool returned));
/** Closes a wrapped coroutine that never ran (on_end runs). */
PyObject* asgi_run_close(PyObject* run);
bool add_asgi_run_type();
/** An awaitable that is already complete with `value` (stolen). */
PyObject* make_ready(PyObject* value);
/** `awaitable` (stolen) as a coroutine: a Ready as it is, an asyncio future wrapped so that
 *  asyncio.create_task() accepts it too; in a greenlet (the value itself) and null as they are.
 *  With `owner`: a value it would have delivered but could not (dropped unawaited, or cancelled
 *  after the value arrived) is handed to `give_back(owner, value)` instead of being lost. */
PyObject* as_coroutine(PyObject* awaitable, PyObject* owner = nullptr,
                       void (*give_back)(PyObject* owner, PyObject* value) = nullptr);
/** fut.done(): 1 or 0, -1 with an exception. */
int future_done(PyObject* fut);
/** An owner's list of given-back events (see as_coroutine): `event` appended (the list made when
 *  first needed), and the first one taken out (null, no exception, when there is none). */
void keep_given_back(PyObject*& list, PyObject* event);
PyObject* take_given_back(PyObject* list);
bool add_ready_type();
/** The Python WebSocket object for an upgrade request (websocket.cpp). */
PyObject* new_websocket(const std::shared_ptr<http::Exchange>& ex, bool permessage_deflate);
bool add_websocket_type(PyObject* module);
/** accept() or close() was called on this WebSocket object. */
bool websocket_answered(PyObject* ws);

/** Runs the WSGI application for one exchange in the current greenlet (may switch greenlets).
 *  Never raises: failures become a 500 or an aborted connection, and are logged. */
void handle_wsgi(AppState& app, const std::shared_ptr<http::Exchange>& ex);

/** Suspends the current greenlet until `ex`'s request body has data, ended or failed. */
bool wait_body_ready(const std::shared_ptr<http::Exchange>& ex);
/** Suspends the current greenlet until `ex`'s output drained below its low-water mark. */
bool wait_output_drained(const std::shared_ptr<http::Exchange>& ex);

/** Module setup for the types defined in wsgi_input.cpp / http_server.cpp. */
bool add_http_types(PyObject* module);
PyObject* new_wsgi_input(const std::shared_ptr<http::Exchange>& ex);

/** A new reference to `o`, released on the Python thread once the holder is dropped (from any
 *  thread). GIL held. */
std::shared_ptr<const void> hold_object(PyObject* o);
/** Body chunks at least this big are queued without a copy when they are `bytes`. */
inline constexpr std::size_t kZeroCopyMin = 16 * 1024;
/** Queues `before`, then the body chunk `data`/`n` (of `obj`) framed by `w`, then the end of
 *  the response if `last`. A large `bytes` chunk is lent to the socket instead of copied (unless
 *  gzip is on). Updates ex.keep_alive. GIL held. Returns false when the connection is gone. */
bool queue_body(http::Exchange& ex, http::ResponseWriter& w, std::string before, PyObject* obj, const char* data,
                std::size_t n, bool last);

/** Closes every open HttpServer (runtime stop, before the I/O threads end). */
void close_http_servers();

/** Writes `msg` and the current exception's traceback to sys.stderr (never raises). */
void log_exception(const char* msg);

}  // namespace puff::py
