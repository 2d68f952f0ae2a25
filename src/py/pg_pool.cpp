// puff._native.PgPool and PgLease: the native Postgres pool (src/pg/pool.hpp) as dual-mode Python
// calls. A query returns (rows, columns, rowcount, command_tag): rows a list of tuples (None for
// statements without rows), columns a list of (name, type_oid) (None likewise), rowcount the
// count in the command tag (-1 when it has none). Errors raise what puff.postgres's factory makes.
#include "pg/pool.hpp"
#include "py/hub.hpp"
#include "py/ops.hpp"
#include "py/pg_values.hpp"

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_set>
#include <string>
#include <vector>

namespace puff::py {

namespace {

struct PoolObject {
  PyObject_HEAD
  std::shared_ptr<pg::Pool>* pool;  // null once closed
};

struct LeaseObject {
  PyObject_HEAD
  std::shared_ptr<pg::Lease>* lease;  // null once released
};

// Live Python objects, so the runtime's stop can close every pool and release every lease
// while the I/O threads still run (a Pool must not outlive the IoPool's threads in use).
std::unordered_set<PoolObject*>& all_pools() {
  static std::unordered_set<PoolObject*> v;
  return v;
}
std::unordered_set<LeaseObject*>& all_leases() {
  static std::unordered_set<LeaseObject*> v;
  return v;
}

PyObject* build_result(const pg::Result& r) {
  if (!r.ok()) return raise_pg_error(r.error());
  if (r.status() > pg::Result::Status::Error) return build_copy_result(r);
  if (!pg_values_init()) return nullptr;
  PyObject *rows = Py_None, *cols = Py_None;
  Py_INCREF(Py_None);
  Py_INCREF(Py_None);
  if (r.status() == pg::Result::Status::Rows) {
    Py_DECREF(rows);
    Py_DECREF(cols);
    rows = decode_rows(r);
    if (!rows) return nullptr;
    cols = PyList_New(r.column_count());
    if (!cols) {
      Py_DECREF(rows);
      return nullptr;
    }
    for (int c = 0; c < r.column_count(); ++c) {
      auto name = r.column_name(c);
      PyObject* t = Py_BuildValue("(s#I)", name.data(), static_cast<Py_ssize_t>(name.size()),
                                  static_cast<unsigned>(r.column_type(c)));
      if (!t) {
        Py_DECREF(rows);
        Py_DECREF(cols);
        return nullptr;
      }
      PyList_SET_ITEM(cols, c, t);
    }
  }
  auto tag = r.command_tag();
  return Py_BuildValue("(NNLs#)", rows, cols, static_cast<long long>(r.rows_affected()), tag.data(),
                       static_cast<Py_ssize_t>(tag.size()));
}

/** Lets the Python thread cancel queries that an I/O thread submitted. Shared, because run()
 *  must not touch its op once the last query is submitted (the op may complete and be freed). */
struct CancelState {
  std::mutex m;
  std::vector<pg::QueryHandle> handles;
  pg::AcquireHandle acquire;
  bool cancelled = false;
  void add(pg::QueryHandle h) {
    std::lock_guard<std::mutex> lock(m);
    if (cancelled) h.cancel();
    else handles.push_back(std::move(h));
  }
  void set_acquire(pg::AcquireHandle h) {
    std::lock_guard<std::mutex> lock(m);
    if (cancelled) h.cancel();
    else acquire = std::move(h);
  }
  void cancel() {
    std::lock_guard<std::mutex> lock(m);
    cancelled = true;
    for (auto& h : handles) h.cancel();
    acquire.cancel();
  }
};

class QueryOp final : public Op {
 public:
  QueryOp(std::shared_ptr<pg::Pool> pool, std::shared_ptr<pg::Lease> lease, pg::Query q)
      : pool_(std::move(pool)), lease_(std::move(lease)), q_(std::move(q)) {}
  void run() override {
    auto cb = [this](pg::Result&& r) {
      result_ = std::move(r);
      complete();
    };
    auto cs = cancel_;  // `this` may be gone once the query is submitted
    cs->add(lease_ ? lease_->query(std::move(q_), cb) : pool_->query(std::move(q_), cb));
  }
  PyObject* result() override { return build_result(result_); }
  void on_abandoned() override { cancel_->cancel(); }
  bool run_inline() const noexcept override { return true; }  // the pool posts to the connection
  std::shared_ptr<CancelState> cancel_state() const { return cancel_; }

 private:
  std::shared_ptr<pg::Pool> pool_;
  std::shared_ptr<pg::Lease> lease_;
  pg::Query q_;
  pg::Result result_;
  std::shared_ptr<CancelState> cancel_ = std::make_shared<CancelState>();
};

PyTypeObject LeaseType = {PyVarObject_HEAD_INIT(nullptr, 0)};

class AcquireOp final : public Op {
 public:
  explicit AcquireOp(std::shared_ptr<pg::Pool> pool) : pool_(std::move(pool)) {}
  void run() override {
    auto cs = cancel_;
    cs->set_acquire(pool_->acquire_exclusive([this](pg::Lease&& l) {
      lease_ = std::make_shared<pg::Lease>(std::move(l));
      complete();
    }));
  }
  void on_abandoned() override { cancel_->cancel(); }  // a lease granted anyway is released unused
  bool run_inline() const noexcept override { return true; }
  std::shared_ptr<CancelState> cancel_state() const { return cancel_; }
  PyObject* result() override {
    if (!*lease_) return raise_pg_error(*lease_->error());
    auto* self = PyObject_New(LeaseObject, &LeaseType);
    if (!self) return nullptr;
    self->lease = new std::shared_ptr<pg::Lease>(std::move(lease_));
    all_leases().insert(self);
    return reinterpret_cast<PyObject*>(self);
  }

 private:
  std::shared_ptr<pg::Pool> pool_;
  std::shared_ptr<pg::Lease> lease_;
  std::shared_ptr<CancelState> cancel_ = std::make_shared<CancelState>();
};

/** (sql, params=(), prepare=True) -> pg::Query; false with an exception set. */
bool parse_query(PyObject* const* args, Py_ssize_t nargs, pg::Query& q) {
  if (nargs < 1 || nargs > 3 || !PyUnicode_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "query(sql: str, params: sequence = (), prepare: bool = True)");
    return false;
  }
  Py_ssize_t n;
  const char* sql = PyUnicode_AsUTF8AndSize(args[0], &n);
  if (!sql) return false;
  q.sql.assign(sql, static_cast<std::size_t>(n));
  if (nargs >= 3) {
    int p = PyObject_IsTrue(args[2]);
    if (p < 0) return false;
    q.prepare = p != 0;
  }
  if (nargs >= 2 && args[1] != Py_None) {
    PyObject* seq = PySequence_Fast(args[1], "query: params must be a sequence");
    if (!seq) return false;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < count; ++i) {
      if (!encode_param(PySequence_Fast_GET_ITEM(seq, i), q.params, static_cast<int>(i))) {
        Py_DECREF(seq);
        return false;
      }
    }
    Py_DECREF(seq);
  }
  return true;
}

/** Many statements submitted in order from one run() (executemany): they pipeline, and on a
 *  lease they keep their order. result() is a list with, per statement, its result tuple or the
 *  exception it failed with (not raised). */
class QueryManyOp final : public Op {
 public:
  QueryManyOp(std::shared_ptr<pg::Pool> pool, std::shared_ptr<pg::Lease> lease, std::vector<pg::Query> qs)
      : pool_(std::move(pool)), lease_(std::move(lease)), qs_(std::move(qs)), results_(qs_.size()),
        remaining_(qs_.size()) {}
  void run() override {
    if (qs_.empty()) {
      complete();
      return;
    }
    std::size_t n = qs_.size();
    auto cs = cancel_;
    for (std::size_t i = 0; i < n; ++i) {
      auto cb = [this, i](pg::Result&& r) {
        results_[i] = std::move(r);
        if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) complete();
      };
      // After the last submission `this` may already be gone: read nothing from it afterwards.
      cs->add(lease_ ? lease_->query(std::move(qs_[i]), cb) : pool_->query(std::move(qs_[i]), cb));
    }
  }
  void on_abandoned() override { cancel_->cancel(); }
  bool run_inline() const noexcept override { return true; }
  std::shared_ptr<CancelState> cancel_state() const { return cancel_; }
  PyObject* result() override {
    PyObject* list = PyList_New(static_cast<Py_ssize_t>(results_.size()));
    if (!list) return nullptr;
    for (std::size_t i = 0; i < results_.size(); ++i) {
      PyObject* item = build_result(results_[i]);
      if (!item) {
        item = take_exception();
        if (!item) {
          Py_DECREF(list);
          return nullptr;
        }
      }
      PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), item);
    }
    return list;
  }

 private:
  std::shared_ptr<pg::Pool> pool_;
  std::shared_ptr<pg::Lease> lease_;
  std::vector<pg::Query> qs_;
  std::vector<pg::Result> results_;
  std::atomic<std::size_t> remaining_;
  std::shared_ptr<CancelState> cancel_ = std::make_shared<CancelState>();
};

/** [(sql, params), ...] -> queries (prepared); false with an exception set. */
bool parse_many(PyObject* arg, std::vector<pg::Query>& out) {
  PyObject* seq = PySequence_Fast(arg, "query_many: expected a sequence of (sql, params)");
  if (!seq) return false;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  out.reserve(static_cast<std::size_t>(n));
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(seq, i);
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
      Py_DECREF(seq);
      PyErr_SetString(PyExc_TypeError, "query_many: each item must be a (sql, params) tuple");
      return false;
    }
    pg::Query q;
    PyObject* const* args = &PyTuple_GET_ITEM(item, 0);
    if (!parse_query(args, 2, q)) {
      Py_DECREF(seq);
      return false;
    }
    out.push_back(std::move(q));
  }
  Py_DECREF(seq);
  return true;
}

/** start(op); for a future (a coroutine caller), cancelling it cancels the queries too. */
template <class OpT>
PyObject* start_cancellable(OpT* op) {
  auto cs = op->cancel_state();
  return on_future_cancelled(start(op), [cs] { cs->cancel(); });  // `op` may be gone after start()
}

/** Python thread: runs what is ready on the hub's own I/O loop now (a released lease's
 *  connection returns to the pool at once when it is idle, as it would on an I/O thread) rather
 *  than at the hub's next wait. Its handlers never touch Python objects. */
void settle_driven() {
  if (hub() && hub()->io && on_python_thread()) hub()->io->poll_driven();
}

bool check_hub() {
  if (!hub() || !hub()->io) {
    PyErr_SetString(PyExc_RuntimeError, "puff.postgres needs the Puff runtime (run inside puff)");
    return false;
  }
  return true;
}

// ---- PgPool ---------------------------------------------------------------------------------

PyObject* pool_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  const char* url;
  const char* name = "default";
  unsigned int pool_size = 10, connect_timeout_ms = 5000, statement_timeout_ms = 0, max_prepared = 256;
  int hub_connection = 1;
  static const char* kw[] = {"url", "pool_size", "name", "connect_timeout_ms", "statement_timeout_ms",
                             "max_prepared", "hub_connection", nullptr};
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|IsIIIp:PgPool", const_cast<char**>(kw), &url, &pool_size,
                                   &name, &connect_timeout_ms, &statement_timeout_ms, &max_prepared,
                                   &hub_connection))
    return nullptr;
  if (!check_hub() || !pg_values_init()) return nullptr;
  pg::PoolSettings s;
  s.name = name;
  s.url = url;
  s.pool_size = pool_size;
  s.connect_timeout_ms = connect_timeout_ms;
  s.statement_timeout_ms = statement_timeout_ms;
  s.max_prepared = max_prepared;
  // Greenlet runtimes: the hub runs its own I/O loop whenever it waits, so the first connection
  // lives there (sequential queries need no thread hand-off). Not under asyncio, whose loop waits
  // instead of the hub.
  s.first_on_driven = hub_connection && hub()->loop == nullptr;
  std::shared_ptr<pg::Pool> pool;
  try {
    pool = std::make_shared<pg::Pool>(*hub()->io, std::move(s));
  } catch (const std::exception& e) {
    PyErr_Format(PyExc_ValueError, "postgres pool %s: %s", name, e.what());
    return nullptr;
  }
  auto* self = reinterpret_cast<PoolObject*>(type->tp_alloc(type, 0));
  if (!self) return nullptr;
  self->pool = new std::shared_ptr<pg::Pool>(pool);
  all_pools().insert(self);
  return reinterpret_cast<PyObject*>(self);
}

void pool_dealloc(PyObject* o) {
  auto* self = reinterpret_cast<PoolObject*>(o);
  all_pools().erase(self);
  if (self->pool) {
    (*self->pool)->close();
    delete self->pool;
    self->pool = nullptr;
  }
  Py_TYPE(o)->tp_free(o);
}

bool pool_open(PoolObject* self) {
  if (!self->pool) {
    PyErr_SetString(PyExc_RuntimeError, "the Postgres pool is closed");
    return false;
  }
  return check_hub();
}

PyObject* pool_query(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  auto* self = reinterpret_cast<PoolObject*>(o);
  if (!pool_open(self)) return nullptr;
  pg::Query q;
  if (!parse_query(args, nargs, q)) return nullptr;
  return start_cancellable(new QueryOp(*self->pool, nullptr, std::move(q)));
}

PyObject* pool_query_many(PyObject* o, PyObject* arg) {
  auto* self = reinterpret_cast<PoolObject*>(o);
  if (!pool_open(self)) return nullptr;
  std::vector<pg::Query> qs;
  if (!parse_many(arg, qs)) return nullptr;
  return start_cancellable(new QueryManyOp(*self->pool, nullptr, std::move(qs)));
}

PyObject* pool_acquire(PyObject* o, PyObject*) {
  auto* self = reinterpret_cast<PoolObject*>(o);
  if (!pool_open(self)) return nullptr;
  return start_cancellable(new AcquireOp(*self->pool));
}

PyObject* pool_close(PyObject* o, PyObject*) {
  auto* self = reinterpret_cast<PoolObject*>(o);
  if (self->pool) {
    (*self->pool)->close();
    delete self->pool;
    self->pool = nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* pool_stats(PyObject* o, PyObject*) {
  auto* self = reinterpret_cast<PoolObject*>(o);
  if (!self->pool) return PyDict_New();
  auto s = (*self->pool)->stats();
  return Py_BuildValue("{s:n,s:n,s:n,s:n,s:K,s:K}", "connections", static_cast<Py_ssize_t>(s.connections),
                       "pinned", static_cast<Py_ssize_t>(s.pinned), "in_flight", static_cast<Py_ssize_t>(s.in_flight),
                       "waiting", static_cast<Py_ssize_t>(s.waiting), "opened", static_cast<unsigned long long>(s.opened),
                       "lost", static_cast<unsigned long long>(s.lost));
}

PyObject* pool_closed(PyObject* o, void*) { return PyBool_FromLong(reinterpret_cast<PoolObject*>(o)->pool == nullptr); }

#define FASTCALL(f) reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f))

PyMethodDef pool_methods[] = {
    {"query", FASTCALL(pool_query), METH_FASTCALL,
     "query(sql, params=(), prepare=True) -> (rows, columns, rowcount, tag). Dual-mode; autocommit "
     "(pipelined on shared connections)."},
    {"query_many", pool_query_many, METH_O,
     "query_many([(sql, params), ...]) -> [result or exception, ...]. Dual-mode; all pipelined, each "
     "in autocommit."},
    {"acquire", pool_acquire, METH_NOARGS, "acquire() -> PgLease. Dual-mode: pins a connection."},
    {"close", pool_close, METH_NOARGS, "close(): fails in-flight queries (08003) and closes the connections."},
    {"stats", pool_stats, METH_NOARGS, "stats() -> dict"},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef pool_getset[] = {
    {"closed", pool_closed, nullptr, "True after close().", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyTypeObject PoolType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "puff._native.PgPool";
  t.tp_basicsize = sizeof(PoolObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc = "PgPool(url, pool_size=10, name='default', connect_timeout_ms=5000, statement_timeout_ms=0, "
             "max_prepared=256, hub_connection=True): a pipelined Postgres pool on Puff's I/O threads (inside the "
             "runtime); with hub_connection (greenlet runtimes) its first connection lives on the Python thread's "
             "own loop.";
  t.tp_new = pool_new;
  t.tp_dealloc = pool_dealloc;
  t.tp_methods = pool_methods;
  t.tp_getset = pool_getset;
  return t;
}();

// ---- PgLease --------------------------------------------------------------------------------

void lease_dealloc(PyObject* o) {
  auto* self = reinterpret_cast<LeaseObject*>(o);
  all_leases().erase(self);
  if (self->lease) {
    (*self->lease)->release();  // rolls back an open transaction first
    delete self->lease;
    self->lease = nullptr;
    settle_driven();
  }
  PyObject_Free(o);
}

PyObject* lease_query(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  auto* self = reinterpret_cast<LeaseObject*>(o);
  if (!self->lease) {
    PyErr_SetString(PyExc_RuntimeError, "the lease was released");
    return nullptr;
  }
  if (!check_hub()) return nullptr;
  pg::Query q;
  if (!parse_query(args, nargs, q)) return nullptr;
  return start_cancellable(new QueryOp(nullptr, *self->lease, std::move(q)));
}

PyObject* lease_query_many(PyObject* o, PyObject* arg) {
  auto* self = reinterpret_cast<LeaseObject*>(o);
  if (!self->lease) {
    PyErr_SetString(PyExc_RuntimeError, "the lease was released");
    return nullptr;
  }
  if (!check_hub()) return nullptr;
  std::vector<pg::Query> qs;
  if (!parse_many(arg, qs)) return nullptr;
  return start_cancellable(new QueryManyOp(nullptr, *self->lease, std::move(qs)));
}

PyObject* lease_copy(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  auto* self = reinterpret_cast<LeaseObject*>(o);
  if (!self->lease) {
    PyErr_SetString(PyExc_RuntimeError, "the lease was released");
    return nullptr;
  }
  if (!check_hub()) return nullptr;
  pg::Query q;
  if (!parse_copy_step(args, nargs, q)) return nullptr;
  return start_cancellable(new QueryOp(nullptr, *self->lease, std::move(q)));
}

PyObject* lease_release(PyObject* o, PyObject*) {
  auto* self = reinterpret_cast<LeaseObject*>(o);
  if (self->lease) {
    (*self->lease)->release();
    delete self->lease;
    self->lease = nullptr;
    settle_driven();
  }
  Py_RETURN_NONE;
}

PyObject* lease_backend_pid(PyObject* o, void*) {
  auto* self = reinterpret_cast<LeaseObject*>(o);
  return PyLong_FromLong(self->lease ? (*self->lease)->backend_pid() : 0);
}

PyMethodDef lease_methods[] = {
    {"query", FASTCALL(lease_query), METH_FASTCALL,
     "query(sql, params=(), prepare=True) -> (rows, columns, rowcount, tag). Dual-mode; on the pinned connection."},
    {"query_many", lease_query_many, METH_O,
     "query_many([(sql, params), ...]) -> [result or exception, ...]. Dual-mode; pipelined in order."},
    {"copy", FASTCALL(lease_copy), METH_FASTCALL,
     "copy(step, data=b'') -> 'in' | 'out' (start), bytes (read: b'' never; write: b''), or the final "
     "(rows, columns, rowcount, tag). Dual-mode; one COPY step on the pinned connection (pg_copy.cpp)."},
    {"release", lease_release, METH_NOARGS,
     "release(): returns the connection (after a ROLLBACK if a transaction is open). Idempotent."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef lease_getset[] = {
    {"backend_pid", lease_backend_pid, nullptr, "The pinned connection's server process id.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyObject* set_pg_errors(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyCallable_Check(args[0]) || !PyType_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "pg_set_errors(factory, DataError)");
    return nullptr;
  }
  auto& c = pg_error_classes();
  Py_XSETREF(c.factory, Py_NewRef(args[0]));
  Py_XSETREF(c.data_error, Py_NewRef(args[1]));
  Py_RETURN_NONE;
}

PyMethodDef module_methods[] = {
    {"pg_set_errors", FASTCALL(set_pg_errors), METH_FASTCALL,
     "pg_set_errors(factory, DataError): how Postgres errors become exceptions (puff.postgres)."},
    {nullptr, nullptr, 0, nullptr},
};

}  // namespace

void close_pg_pools() {
  close_pg_listeners();
  for (LeaseObject* l : all_leases()) {
    if (!l->lease) continue;
    (*l->lease)->release();
    delete l->lease;
    l->lease = nullptr;
  }
  for (PoolObject* p : all_pools()) {
    if (!p->pool) continue;
    (*p->pool)->close();
    delete p->pool;
    p->pool = nullptr;
  }
}

bool add_pg_types(PyObject* module) {
  LeaseType.tp_name = "puff._native.PgLease";
  LeaseType.tp_basicsize = sizeof(LeaseObject);
  LeaseType.tp_flags = Py_TPFLAGS_DEFAULT;
  LeaseType.tp_doc = "A Postgres connection pinned for a transaction (from PgPool.acquire()).";
  LeaseType.tp_dealloc = lease_dealloc;
  LeaseType.tp_methods = lease_methods;
  LeaseType.tp_getset = lease_getset;
  if (PyType_Ready(&PoolType) < 0 || PyType_Ready(&LeaseType) < 0) return false;
  Py_INCREF(&PoolType);
  if (PyModule_AddObject(module, "PgPool", reinterpret_cast<PyObject*>(&PoolType)) < 0) return false;
  Py_INCREF(&LeaseType);
  if (PyModule_AddObject(module, "PgLease", reinterpret_cast<PyObject*>(&LeaseType)) < 0) return false;
  return PyModule_AddFunctions(module, module_methods) == 0 && add_pg_listen_types(module);
}

}  // namespace puff::py
