// The C API capsule (include/puff/puff.h) for separately compiled native extensions.
#include "puff/puff.h"

#include "core/io_pool.hpp"
#include "py/hub.hpp"
#include "py/ops.hpp"

namespace puff::py {

namespace {

/** Adapts an extension's puff_op to an Op. */
class CapiOp final : public Op {
 public:
  explicit CapiOp(puff_op* op) : op_(op) { op_->puff_private = this; }
  ~CapiOp() override {
    if (op_->destroy) op_->destroy(op_);
  }
  void run() override {
    try {
      op_->run(op_);
    } catch (...) {
      // A C++ exception out of extension code must not cross into the I/O loop.
      failed_ = true;
      complete();
    }
  }
  PyObject* result() override {
    if (failed_) {
      PyErr_SetString(PyExc_RuntimeError, "native extension function threw a C++ exception");
      return nullptr;
    }
    return op_->result(op_);
  }

 private:
  puff_op* op_;
  bool failed_ = false;
};

PyObject* capi_start(puff_op* op) {
  if (!op || !op->run || !op->result) {
    if (op && op->destroy) op->destroy(op);
    PyErr_SetString(PyExc_SystemError, "puff_capi.start: op needs run and result");
    return nullptr;
  }
  return start(new CapiOp(op));
}

void capi_complete(puff_op* op) { static_cast<CapiOp*>(op->puff_private)->complete(); }

int capi_io_thread_index() { return core::IoPool::current_index(); }

unsigned capi_io_thread_count() {
  Hub* h = hub();
  return h && h->io ? static_cast<unsigned>(h->io->size()) : 0u;
}

const puff_capi g_capi = {
    PUFF_CAPI_VERSION, capi_start, capi_complete, capi_io_thread_index, capi_io_thread_count,
};

}  // namespace

bool add_capi(PyObject* module) {
  PyObject* cap = PyCapsule_New(const_cast<puff_capi*>(&g_capi), PUFF_CAPI_CAPSULE, nullptr);
  if (!cap) return false;
  if (PyModule_AddObject(module, "_C_API", cap) < 0) {
    Py_DECREF(cap);
    return false;
  }
  return true;
}

}  // namespace puff::py
