/* Puff's C API for native extensions.
 *
 * A separately compiled extension module defines async native functions that Python calls like
 * any Puff function: from a greenlet the call suspends only that greenlet and returns the value;
 * from a coroutine on Puff's asyncio loop it returns an awaitable; from a @puff.blocking thread
 * it blocks that thread. The extension describes the work as a puff_op and hands it to start().
 *
 * Get the API once at module init with puff_import_capi() (it imports puff._native).
 *
 * Threads: run() is called on a Puff I/O thread, without the GIL, and must not touch Python
 * objects. result() and destroy() are called on a thread holding the GIL (normally the Python
 * thread). complete() may be called from any thread, exactly once per started op.
 */
#ifndef PUFF_PUFF_H
#define PUFF_PUFF_H

#ifdef __cplusplus
extern "C" {
#endif

/* Same declaration as CPython's, so this header does not need Python.h. */
struct _object;
typedef struct _object PyObject;

#define PUFF_CAPI_CAPSULE "puff._native._C_API"
#define PUFF_CAPI_VERSION 1

typedef struct puff_op puff_op;

struct puff_op {
  /** I/O thread, no GIL. Do the work (or start it) and call api->complete(op) when done. */
  void (*run)(puff_op* op);
  /** GIL held. Return a new reference to the call's value, or set an exception and return NULL. */
  PyObject* (*result)(puff_op* op);
  /** GIL held. Free the op. Always called once, also when the caller went away before
   *  the result was read (a killed greenlet, a cancelled future). */
  void (*destroy)(puff_op* op);
  /** Owned by Puff; leave zeroed. */
  void* puff_private;
};

typedef struct puff_capi {
  unsigned version; /* PUFF_CAPI_VERSION */
  /** Python thread (greenlet or coroutine) or a blocking-pool thread, GIL held. Takes
   *  ownership of `op`. Greenlet: may switch greenlets; returns the value. Coroutine: returns
   *  an awaitable. Returns NULL with an exception set on failure (op destroyed). */
  PyObject* (*start)(puff_op* op);
  /** Any thread, exactly once per started op: run() is finished and result() may be called. */
  void (*complete)(puff_op* op);
  /** Index of the current Puff I/O thread, or -1 when not on one. Any thread. */
  int (*io_thread_index)(void);
  /** Number of I/O threads. Any thread. */
  unsigned (*io_thread_count)(void);
} puff_capi;

#ifdef __cplusplus
}
#endif

#endif /* PUFF_PUFF_H */
