// Python objects lent to the I/O threads: response body chunks written without a copy.
#include "py/http_bridge.hpp"

namespace puff::py {

namespace {

/** Gives one reference back on the Python thread (the I/O thread that drops the holder has no
 *  GIL). Rides the hub's wake queue, which costs no syscall while the Python thread is busy. */
class Release final : public Completion {
 public:
  explicit Release(PyObject* o) : o_(o) {}
  void deliver() override {
    Py_DECREF(o_);
    delete this;
  }
  void discard() override { deliver(); }

 private:
  PyObject* o_;
};

}  // namespace

std::shared_ptr<const void> hold_object(PyObject* o) {
  Py_INCREF(o);
  return std::shared_ptr<const void>(o, [](const void* p) {
    push(new Release(static_cast<PyObject*>(const_cast<void*>(p))));
  });
}

bool queue_body(http::Exchange& ex, http::ResponseWriter& w, std::string before, PyObject* obj, const char* data,
                std::size_t n, bool last) {
  std::string after;
  std::string_view lent;
  if (obj && n >= kZeroCopyMin && !w.compressing() && PyBytes_CheckExact(obj)) {
    lent = std::string_view(data, w.frame_around(before, after, n));
  } else {
    w.frame(before, data, n);
  }
  if (last) after += w.finish();
  ex.keep_alive = w.keep_alive();
  if (lent.empty()) return ex.write(std::move(before) + after, last);
  return ex.write_ref(std::move(before), lent, hold_object(obj), std::move(after), last);
}

}  // namespace puff::py
