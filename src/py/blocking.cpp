// The blocking pool: a bounded set of OS threads that run Python functions which would
// otherwise stall every greenlet (third-party blocking libraries, CPU-heavy calls).
// Threads start lazily up to settings.blocking_threads; extra jobs wait in a FIFO.
#include "py/hub.hpp"
#include "py/ops.hpp"

#include <csignal>
#include <deque>
#include <memory>
#include <pthread.h>
#include <thread>

namespace puff::py {

namespace {

struct Job {
  PyObject* fn;       // owned
  PyObject* on_done;  // owned
};

/** The outcome of a job, delivered on the Python thread as on_done(value, exc). */
class JobDone final : public Completion {
 public:
  JobDone(PyObject* on_done, PyObject* value, PyObject* exc) : on_done_(on_done), value_(value), exc_(exc) {}
  ~JobDone() override {
    Py_XDECREF(on_done_);
    Py_XDECREF(value_);
    Py_XDECREF(exc_);
  }
  void deliver() override {
    PyObject* r = PyObject_CallFunctionObjArgs(on_done_, value_ ? value_ : Py_None, exc_ ? exc_ : Py_None, nullptr);
    if (!r) PyErr_WriteUnraisable(on_done_);
    Py_XDECREF(r);
    delete this;
  }

 private:
  PyObject *on_done_, *value_, *exc_;
};

class BlockingPool : public std::enable_shared_from_this<BlockingPool> {
 public:
  BlockingPool(PyInterpreterState* interp, unsigned max_threads) : interp_(interp), max_threads_(max_threads) {}

  /** Idle threads exit; busy ones exit after their current job. Queued jobs are dropped (their
   *  handles never finish: the runtime that would deliver them is gone). GIL held. */
  void shutdown() {
    std::deque<Job> dropped;
    {
      std::lock_guard<std::mutex> lock(m_);
      stopping_ = true;
      dropped.swap(jobs_);
    }
    cv_.notify_all();
    for (Job& j : dropped) {
      Py_DECREF(j.fn);
      Py_DECREF(j.on_done);
    }
  }

  /** Python thread, GIL held. Takes the job's references. */
  void submit(Job job) {
    std::unique_lock<std::mutex> lock(m_);
    jobs_.push_back(job);
    ++queued_total_;
    if (idle_ == 0 && threads_ < max_threads_) {
      ++threads_;
      lock.unlock();
      sigset_t all, old;
      sigfillset(&all);
      pthread_sigmask(SIG_BLOCK, &all, &old);
      std::thread([self = shared_from_this()] {
        pthread_setname_np(pthread_self(), "puff-blocking");
        self->worker();
      }).detach();
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      return;
    }
    lock.unlock();
    cv_.notify_one();
  }

  PyObject* stats() {
    std::lock_guard<std::mutex> lock(m_);
    return Py_BuildValue("{s:I,s:I,s:n,s:K}", "threads", threads_, "idle", idle_,
                         "queued", static_cast<Py_ssize_t>(jobs_.size()), "submitted",
                         static_cast<unsigned long long>(queued_total_));
  }

 private:
  void worker() {
    PyThreadState* ts = PyThreadState_New(interp_);  // one thread state for the thread's life
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(m_);
        ++idle_;
        cv_.wait(lock, [this] { return !jobs_.empty() || stopping_; });
        --idle_;
        if (stopping_) {
          --threads_;
          lock.unlock();
          PyEval_RestoreThread(ts);
          PyThreadState_Clear(ts);
          PyThreadState_DeleteCurrent();
          return;
        }
        job = jobs_.front();
        jobs_.pop_front();
      }
      PyEval_RestoreThread(ts);
      PyObject* value = PyObject_CallNoArgs(job.fn);
      PyObject* exc = value ? nullptr : take_exception();
      Py_DECREF(job.fn);
      auto* done = new JobDone(job.on_done, value, exc);
      PyEval_SaveThread();
      push(done);
    }
  }

  PyInterpreterState* interp_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  unsigned max_threads_;
  bool stopping_ = false;
  unsigned threads_ = 0;
  unsigned idle_ = 0;
  unsigned long long queued_total_ = 0;
};

// One pool per runtime run; its detached threads hold a reference until they exit.
std::shared_ptr<BlockingPool> g_pool;

}  // namespace

PyObject* run_blocking(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2 || !PyCallable_Check(args[0]) || !PyCallable_Check(args[1])) {
    PyErr_SetString(PyExc_TypeError, "run_blocking(fn, on_done): both must be callable");
    return nullptr;
  }
  if (!hub() || !hub()->io) {
    PyErr_SetString(PyExc_RuntimeError, "the Puff runtime is not running");
    return nullptr;
  }
  if (!g_pool) g_pool = std::make_shared<BlockingPool>(PyThreadState_Get()->interp, hub()->settings.blocking_threads);
  g_pool->submit(Job{Py_NewRef(args[0]), Py_NewRef(args[1])});
  Py_RETURN_NONE;
}

void shutdown_blocking_pool() {
  if (g_pool) {
    g_pool->shutdown();
    g_pool.reset();
  }
}

PyObject* blocking_stats(PyObject*, PyObject*) {
  if (!g_pool) return Py_BuildValue("{s:I,s:I,s:n,s:K}", "threads", 0u, "idle", 0u, "queued", Py_ssize_t{0}, "submitted", 0ull);
  return g_pool->stats();
}

}  // namespace puff::py
