// puff._native.PgListener and PgSubscription: LISTEN/NOTIFY (src/pg/listener.hpp) as dual-mode
// calls. PgListener(url, name) owns the pool's dedicated listening connection; listen(channels)
// returns a PgSubscription once every LISTEN is confirmed; PgSubscription.get(timeout_ms) returns
// (channel, payload, pid), or None when the timeout passed (or the wait was interrupted: the
// Python layer loops until its deadline). The Python API is puff/_pg_listen.py.
#include "pg/listener.hpp"
#include "py/hub.hpp"
#include "py/ops.hpp"
#include "py/pg_values.hpp"

#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

namespace puff::py {

namespace {

struct ListenerObject {
  PyObject_HEAD
  std::shared_ptr<pg::Listener>* listener;  // null once closed
};

struct SubscriptionObject {
  PyObject_HEAD
  std::shared_ptr<pg::Subscription>* sub;  // null once closed
};

std::unordered_set<ListenerObject*>& all_listeners() {
  static std::unordered_set<ListenerObject*> v;
  return v;
}

PyTypeObject SubscriptionType = {PyVarObject_HEAD_INIT(nullptr, 0)};

class ListenOp final : public Op {
 public:
  ListenOp(std::shared_ptr<pg::Listener> l, std::vector<std::string> channels)
      : listener_(std::move(l)), channels_(std::move(channels)) {}
  ~ListenOp() override {
    if (sub_) sub_->close();  // never handed to Python (the caller went away): unsubscribe
  }
  void run() override {
    auto l = listener_;
    l->subscribe(std::move(channels_), [this](std::shared_ptr<pg::Subscription> s, const pg::ErrorInfo* e) {
      sub_ = std::move(s);
      if (e) error_ = *e;
      complete();
    });
  }
  PyObject* result() override {
    if (!sub_) return raise_pg_error(error_);
    auto* o = PyObject_New(SubscriptionObject, &SubscriptionType);
    if (!o) return nullptr;
    o->sub = new std::shared_ptr<pg::Subscription>(std::move(sub_));
    sub_.reset();
    return reinterpret_cast<PyObject*>(o);
  }

 private:
  std::shared_ptr<pg::Listener> listener_;
  std::vector<std::string> channels_;
  std::shared_ptr<pg::Subscription> sub_;
  pg::ErrorInfo error_;
};

class WaitOp final : public Op {
 public:
  WaitOp(std::shared_ptr<pg::Subscription> s, std::int64_t timeout_ms) : sub_(std::move(s)), timeout_ms_(timeout_ms) {}
  void run() override {
    auto s = sub_;  // `this` may be gone once wait() has called complete()
    s->wait(timeout_ms_, [this] { complete(); });
  }
  bool spin_for() const noexcept override { return false; }  // a notification comes when it comes
  PyObject* result() override {
    auto n = sub_->pop();
    if (!n) Py_RETURN_NONE;
    auto decode = [](const std::string& s) {
      return PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "replace");
    };
    PyObject* ch = decode(n->channel);
    PyObject* payload = ch ? decode(n->payload) : nullptr;
    if (!payload) {
      Py_XDECREF(ch);
      return nullptr;
    }
    return Py_BuildValue("(NNi)", ch, payload, n->pid);
  }
  void on_abandoned() override { sub_->wake_all(); }  // the notification stays queued
  const std::shared_ptr<pg::Subscription>& sub() const { return sub_; }

 private:
  std::shared_ptr<pg::Subscription> sub_;
  std::int64_t timeout_ms_;
};

bool check_runtime() {
  if (!hub() || !hub()->io) {
    PyErr_SetString(PyExc_RuntimeError, "puff.postgres needs the Puff runtime (run inside puff)");
    return false;
  }
  return true;
}

// ---- PgListener -------------------------------------------------------------------------------

PyObject* listener_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  const char* url;
  const char* name = "default";
  unsigned int connect_timeout_ms = 5000;
  static const char* kw[] = {"url", "name", "connect_timeout_ms", nullptr};
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|sI:PgListener", const_cast<char**>(kw), &url, &name,
                                   &connect_timeout_ms))
    return nullptr;
  if (!check_runtime() || !pg_values_init()) return nullptr;
  pg::PoolSettings s;
  s.name = name;
  s.url = url;
  s.connect_timeout_ms = connect_timeout_ms;
  std::shared_ptr<pg::Listener> l;
  try {
    l = pg::Listener::make(*hub()->io, s);
  } catch (const std::exception& e) {
    PyErr_Format(PyExc_ValueError, "postgres pool %s: %s", name, e.what());
    return nullptr;
  }
  auto* self = reinterpret_cast<ListenerObject*>(type->tp_alloc(type, 0));
  if (!self) return nullptr;
  self->listener = new std::shared_ptr<pg::Listener>(std::move(l));
  all_listeners().insert(self);
  return reinterpret_cast<PyObject*>(self);
}

void listener_close_native(ListenerObject* self) {
  if (!self->listener) return;
  (*self->listener)->close();
  delete self->listener;
  self->listener = nullptr;
}

void listener_dealloc(PyObject* o) {
  auto* self = reinterpret_cast<ListenerObject*>(o);
  all_listeners().erase(self);
  listener_close_native(self);
  Py_TYPE(o)->tp_free(o);
}

PyObject* listener_listen(PyObject* o, PyObject* arg) {
  auto* self = reinterpret_cast<ListenerObject*>(o);
  if (!self->listener) {
    PyErr_SetString(PyExc_RuntimeError, "the Postgres listener is closed");
    return nullptr;
  }
  if (!check_runtime()) return nullptr;
  PyObject* seq = PySequence_Fast(arg, "listen: channels must be a sequence of str");
  if (!seq) return nullptr;
  std::vector<std::string> channels;
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(seq, i);
    Py_ssize_t n;
    const char* s = PyUnicode_Check(item) ? PyUnicode_AsUTF8AndSize(item, &n) : nullptr;
    if (!s) {
      Py_DECREF(seq);
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "listen: channels must be str");
      return nullptr;
    }
    channels.emplace_back(s, static_cast<std::size_t>(n));
  }
  Py_DECREF(seq);
  return start(new ListenOp(*self->listener, std::move(channels)));
}

PyObject* listener_close(PyObject* o, PyObject*) {
  listener_close_native(reinterpret_cast<ListenerObject*>(o));
  Py_RETURN_NONE;
}

PyObject* listener_closed(PyObject* o, void*) {
  return PyBool_FromLong(reinterpret_cast<ListenerObject*>(o)->listener == nullptr);
}

PyMethodDef listener_methods[] = {
    {"listen", listener_listen, METH_O,
     "listen(channels) -> PgSubscription, once the server confirmed every LISTEN. Dual-mode."},
    {"close", listener_close, METH_NOARGS, "close(): closes the connection and every subscription."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef listener_getset[] = {
    {"closed", listener_closed, nullptr, "True after close().", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyTypeObject ListenerType = [] {
  PyTypeObject t{PyVarObject_HEAD_INIT(nullptr, 0)};
  t.tp_name = "puff._native.PgListener";
  t.tp_basicsize = sizeof(ListenerObject);
  t.tp_flags = Py_TPFLAGS_DEFAULT;
  t.tp_doc = "PgListener(url, name='default', connect_timeout_ms=5000): a dedicated LISTEN connection.";
  t.tp_new = listener_new;
  t.tp_dealloc = listener_dealloc;
  t.tp_methods = listener_methods;
  t.tp_getset = listener_getset;
  return t;
}();

// ---- PgSubscription ---------------------------------------------------------------------------

void sub_dealloc(PyObject* o) {
  auto* self = reinterpret_cast<SubscriptionObject*>(o);
  if (self->sub) {
    (*self->sub)->close();
    delete self->sub;
    self->sub = nullptr;
  }
  PyObject_Free(o);
}

PyObject* sub_get(PyObject* o, PyObject* const* args, Py_ssize_t nargs) {
  auto* self = reinterpret_cast<SubscriptionObject*>(o);
  if (!self->sub) {
    PyErr_SetString(PyExc_RuntimeError, "the subscription is closed");
    return nullptr;
  }
  long long timeout_ms = -1;
  if (nargs > 1) {
    PyErr_SetString(PyExc_TypeError, "get(timeout_ms=-1)");
    return nullptr;
  }
  if (nargs == 1 && args[0] != Py_None) {
    timeout_ms = PyLong_AsLongLong(args[0]);
    if (timeout_ms == -1 && PyErr_Occurred()) return nullptr;
  }
  if (!check_runtime()) return nullptr;
  auto sub = *self->sub;
  // A cancelled asyncio future (wait_for's timeout, task.cancel()) wakes its WaitOp at once
  // instead of leaving it queued until the next notification; result() is not called for it, so
  // no notification is taken.
  PyObject* r = start(new WaitOp(sub, timeout_ms));
  return on_future_cancelled(r, [sub] { sub->wake_all(); });
}

PyObject* sub_close(PyObject* o, PyObject*) {
  auto* self = reinterpret_cast<SubscriptionObject*>(o);
  if (self->sub) (*self->sub)->close();  // waiting get()s wake; the object stays for pop()s
  Py_RETURN_NONE;
}

PyObject* sub_channels(PyObject* o, void*) {
  auto* self = reinterpret_cast<SubscriptionObject*>(o);
  if (!self->sub) return PyTuple_New(0);
  const auto& chs = (*self->sub)->channels();
  PyObject* t = PyTuple_New(static_cast<Py_ssize_t>(chs.size()));
  if (!t) return nullptr;
  for (std::size_t i = 0; i < chs.size(); ++i) {
    PyObject* s = PyUnicode_DecodeUTF8(chs[i].data(), static_cast<Py_ssize_t>(chs[i].size()), "replace");
    if (!s) {
      Py_DECREF(t);
      return nullptr;
    }
    PyTuple_SET_ITEM(t, static_cast<Py_ssize_t>(i), s);
  }
  return t;
}

PyObject* sub_closed(PyObject* o, void*) {
  auto* self = reinterpret_cast<SubscriptionObject*>(o);
  return PyBool_FromLong(!self->sub || (*self->sub)->closed());
}

PyObject* sub_dropped(PyObject* o, void*) {
  auto* self = reinterpret_cast<SubscriptionObject*>(o);
  return PyLong_FromUnsignedLongLong(self->sub ? (*self->sub)->dropped() : 0);
}

PyObject* sub_interruptions(PyObject* o, void*) {
  auto* self = reinterpret_cast<SubscriptionObject*>(o);
  return PyLong_FromUnsignedLongLong(self->sub ? (*self->sub)->interruptions() : 0);
}

#define FASTCALL(f) reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(f))

PyMethodDef sub_methods[] = {
    {"get", FASTCALL(sub_get), METH_FASTCALL,
     "get(timeout_ms=-1) -> (channel, payload, pid) or None (timeout, close, or an interrupted wait). Dual-mode."},
    {"close", sub_close, METH_NOARGS, "close(): UNLISTENs channels nobody else listens to; wakes waiters."},
    {nullptr, nullptr, 0, nullptr},
};

PyGetSetDef sub_getset[] = {
    {"channels", sub_channels, nullptr, "The channels (tuple of str).", nullptr},
    {"closed", sub_closed, nullptr, "True after close() (or the listener's).", nullptr},
    {"dropped", sub_dropped, nullptr, "Notifications dropped because the queue was full.", nullptr},
    {"interruptions", sub_interruptions, nullptr, "Times the listening connection was lost.", nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

}  // namespace

void close_pg_listeners() {
  for (ListenerObject* l : all_listeners()) listener_close_native(l);
}

bool add_pg_listen_types(PyObject* module) {
  SubscriptionType.tp_name = "puff._native.PgSubscription";
  SubscriptionType.tp_basicsize = sizeof(SubscriptionObject);
  SubscriptionType.tp_flags = Py_TPFLAGS_DEFAULT;
  SubscriptionType.tp_doc = "Notifications for some channels (from PgListener.listen()).";
  SubscriptionType.tp_dealloc = sub_dealloc;
  SubscriptionType.tp_methods = sub_methods;
  SubscriptionType.tp_getset = sub_getset;
  if (PyType_Ready(&ListenerType) < 0 || PyType_Ready(&SubscriptionType) < 0)
    return false;
  Py_INCREF(&ListenerType);
  if (PyModule_AddObject(module, "PgListener", reinterpret_cast<PyObject*>(&ListenerType)) < 0) return false;
  Py_INCREF(&SubscriptionType);
  return PyModule_AddObject(module, "PgSubscription", reinterpret_cast<PyObject*>(&SubscriptionType)) == 0;
}

}  // namespace puff::py
