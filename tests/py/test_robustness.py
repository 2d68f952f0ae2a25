"""Robustness: scale, leaks, errors across the native boundary, killed greenlets, signals.

Every scenario runs in its own interpreter (``sys.executable script.py``) so that a crash, an
abort or a hang is a failed test with the child's output, never a dead pytest. The measured
numbers (peak RSS, drift, timings) are printed (``pytest -s`` shows them) and recorded with
``record_property`` (they land in ``--junitxml`` reports).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PY = sys.executable
CRASH_MARKERS = ("Fatal Python error", "terminate called", "Segmentation fault", "core dumped", "Aborted")


def child_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith(("PUFF_", "PYTEST_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # a crash prints the Python stacks
    return env


def write_script(tmp_path: Path, code: str, name: str = "scenario.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(code))
    return path


def run_script(tmp_path: Path, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """Runs ``code`` as a script in a fresh interpreter; a hang fails with the output so far."""
    path = write_script(tmp_path, code)
    try:
        return subprocess.run([PY, str(path)], cwd=tmp_path, env=child_env(), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        pytest.fail(f"scenario hung (no exit within {timeout} s)\n--- stdout ---\n{out}\n--- stderr ---\n{err}")


def assert_no_crash(r: subprocess.CompletedProcess) -> None:
    assert r.returncode >= 0, f"killed by signal {-r.returncode}\n{r.stdout}\n{r.stderr}"
    for marker in CRASH_MARKERS:
        assert marker not in r.stderr, f"{marker!r} in stderr:\n{r.stderr}"


def assert_ok(r: subprocess.CompletedProcess) -> None:
    assert_no_crash(r)
    assert r.returncode == 0, f"exit {r.returncode}\n--- stdout ---\n{r.stdout}\n--- stderr ---\n{r.stderr}"


def result_line(r: subprocess.CompletedProcess) -> dict:
    """The scenario's last ``RESULT {json}`` line."""
    lines = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
    assert lines, f"no RESULT line\n--- stdout ---\n{r.stdout}\n--- stderr ---\n{r.stderr}"
    return json.loads(lines[-1][len("RESULT "):])


# ---- scale -------------------------------------------------------------------------------------


def test_100k_concurrent_sleeping_greenlets(tmp_path, record_property):
    r = run_script(tmp_path, """
        import json, resource, time
        import puff

        N = 100_000

        def main():
            t0 = time.perf_counter()
            handles = [puff.spawn(puff.sleep_ms, 50) for _ in range(N)]
            t1 = time.perf_counter()
            results = puff.join_all(handles)
            t2 = time.perf_counter()
            assert all(h.finished and h.exception is None for h in handles)
            return {"finished": len(results), "spawn_s": round(t1 - t0, 3), "join_s": round(t2 - t1, 3),
                    "pending_after": puff._native.stats()["pending"]}

        out = puff.run(main)
        out["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        print("RESULT " + json.dumps(out))
    """, timeout=120)
    assert_ok(r)
    res = result_line(r)
    print(f"\n100k sleeping greenlets: {res}")
    for k, v in res.items():
        record_property(k, v)
    assert res["finished"] == 100_000
    assert res["pending_after"] == 0
    assert res["peak_rss_mib"] < 2048, res


def test_a_million_native_calls_leak_nothing(tmp_path, record_property):
    # 1000 greenlets x 1000 calls for each of puff._native.noop_async and the extension's
    # hello_from_cpp_async (2M calls), then error paths; memory measured after a warm-up.
    r = run_script(tmp_path, """
        import gc, json, sys, time
        import puff, puff_native_ext as ext

        def rss_mib():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

        import os

        def snapshot():
            gc.collect()
            return {"rss_mib": rss_mib(), "objects": len(gc.get_objects()), "blocks": sys.getallocatedblocks()}

        def hammer(fn, greenlets, calls):
            def worker():
                for _ in range(calls):
                    fn()
            puff.join_all([puff.spawn(worker) for _ in range(greenlets)])

        def failing():
            try:
                ext.fail_async("x")
            except RuntimeError:
                pass
            try:
                ext.convert_fail_async()
            except ValueError:
                pass

        noop = puff._native.noop_async
        hello = lambda: ext.hello_from_cpp_async("x")

        def main():
            out = {}
            for name, fn, greenlets, calls, per_call in [("noop", noop, 1000, 1000, 1), ("hello", hello, 1000, 1000, 1),
                                                         ("errors", failing, 100, 1000, 2)]:
                hammer(fn, greenlets, 20)  # warm-up at full width: greenlet stacks, pools, arenas
                before = snapshot()
                t0 = time.perf_counter()
                hammer(fn, greenlets, calls)
                elapsed = time.perf_counter() - t0
                after = snapshot()
                out[name] = {
                    "calls": greenlets * calls * per_call, "seconds": round(elapsed, 2),
                    "us_per_call": round(elapsed / (greenlets * calls * per_call) * 1e6, 2),
                    "rss_drift_mib": round(after["rss_mib"] - before["rss_mib"], 2),
                    "objects_drift": after["objects"] - before["objects"],
                    "blocks_drift": after["blocks"] - before["blocks"],
                    "rss_mib": round(after["rss_mib"], 1),
                }
            out["pending_after"] = puff._native.stats()["pending"]
            return out

        async def amain():
            # the coroutine path (futures instead of greenlet switches): 100 tasks x 1000 awaits
            import asyncio

            async def worker(calls):
                for _ in range(calls):
                    await ext.hello_from_cpp_async("x")

            async def hammer_async(tasks, calls):
                await asyncio.gather(*(worker(calls) for _ in range(tasks)))

            await hammer_async(100, 50)
            before = snapshot()
            t0 = time.perf_counter()
            await hammer_async(100, 1000)
            elapsed = time.perf_counter() - t0
            after = snapshot()
            return {"calls": 100_000, "seconds": round(elapsed, 2), "us_per_call": round(elapsed / 100_000 * 1e6, 2),
                    "rss_drift_mib": round(after["rss_mib"] - before["rss_mib"], 2),
                    "objects_drift": after["objects"] - before["objects"],
                    "blocks_drift": after["blocks"] - before["blocks"], "rss_mib": round(after["rss_mib"], 1)}

        res = puff.run(main)
        res["asyncio_hello"] = puff.run(amain)
        print("RESULT " + json.dumps(res))
    """, timeout=120)
    assert_ok(r)
    res = result_line(r)
    print("\n1M native calls per function:")
    for name in ("noop", "hello", "errors", "asyncio_hello"):
        print(f"  {name}: {res[name]}")
        for k, v in res[name].items():
            record_property(f"{name}_{k}", v)
    assert res["pending_after"] == 0
    for name in ("noop", "hello", "errors", "asyncio_hello"):
        m = res[name]
        # A leak of one Python object per call would show up as ~1M here; of 4 bytes, as 4 MiB.
        assert m["objects_drift"] < 100, m
        assert m["blocks_drift"] < 1000, m
        assert m["rss_drift_mib"] < 4, m


# ---- exceptions across the native boundary ------------------------------------------------------


def test_python_exception_in_a_native_callback_reaches_the_caller(tmp_path):
    r = run_script(tmp_path, """
        import asyncio, threading
        import puff, puff_native_ext as ext
        from puff import _native

        class Boom(Exception):
            pass

        def raising_wrap_return(v):
            raise Boom(f"wrap_return got {v!r}")

        def from_thread(value, exc=None):
            return lambda ret: threading.Thread(target=ret, args=(value, exc)).start()

        def main():
            # wrap_return raising while ret_func was called from another thread
            try:
                puff.wrap_async(from_thread(1), wrap_return=raising_wrap_return)
            except Boom as e:
                print("greenlet wrap_return:", e)
            # wrap_return raising on a value produced by the native extension in that thread
            def f(ret):
                threading.Thread(target=lambda: ret(ext.hello_from_cpp_async("t"), None)).start()
            try:
                puff.wrap_async(f, wrap_return=lambda s: int(s))
            except ValueError as e:
                print("greenlet int(hello):", type(e).__name__)
            # f itself raising before it hands ret_func on
            try:
                puff.wrap_async(lambda ret: 1 / 0)
            except ZeroDivisionError:
                print("greenlet f raised: ZeroDivisionError")
            # a ret_func whose target raises, called on the Python thread: raised to that caller
            rf = _native.RetFunc(lambda v, e: raising_wrap_return(v))
            try:
                rf(5, None)
            except Boom as e:
                print("ret_func on python thread:", e)
            # ... and called from another thread: reported (unraisable), nothing crashes
            rf2 = _native.RetFunc(lambda v, e: raising_wrap_return(v))
            t = threading.Thread(target=rf2, args=(6, None))
            t.start(); t.join()
            puff.sleep_ms(20)  # let the hub deliver it
            # the conversion step of a native function raising
            try:
                ext.convert_fail_async()
            except ValueError as e:
                print("convert:", type(e).__name__)
            # a blocking job raising
            try:
                puff.spawn_blocking(raising_wrap_return, 7).join()
            except Boom as e:
                print("blocking:", e)
            # a done-callback raising does not stop the other callbacks
            h = puff.spawn(lambda: 8)
            seen = []
            h.add_done_callback(lambda _h: raising_wrap_return("cb"))
            h.add_done_callback(lambda _h: seen.append(_h.result))
            h.join()
            print("callbacks after a failing one:", seen)
            return ext.add_async(1, 2)

        async def amain():
            try:
                await puff.wrap_async(from_thread(2), wrap_return=raising_wrap_return)
            except Boom as e:
                print("asyncio wrap_return:", e)
            try:
                await puff.wrap_async(from_thread(None, KeyError("k")))
            except KeyError:
                print("asyncio ret_func exception: KeyError")
            try:
                await ext.convert_fail_async()
            except ValueError as e:
                print("asyncio convert:", type(e).__name__)
            return await ext.add_async(2, 2)

        print("greenlet result:", puff.run(main))
        print("asyncio result:", puff.run(amain))
    """)
    assert_ok(r)
    out = r.stdout
    assert "greenlet wrap_return: wrap_return got 1" in out
    assert "greenlet int(hello): ValueError" in out
    assert "greenlet f raised: ZeroDivisionError" in out
    assert "ret_func on python thread: wrap_return got 5" in out
    assert "wrap_return got 6" in r.stderr  # the unraisable report of the thread-side call
    assert "convert: ValueError" in out
    assert "blocking: wrap_return got 7" in out
    assert "callbacks after a failing one: [8]" in out
    assert "wrap_return got 'cb'" in r.stderr
    assert "greenlet result: 3" in out
    assert "asyncio wrap_return: wrap_return got 2" in out
    assert "asyncio ret_func exception: KeyError" in out
    assert "asyncio convert: ValueError" in out
    assert "asyncio result: 4" in out


def test_cpp_exception_in_a_native_function_becomes_runtime_error(tmp_path):
    r = run_script(tmp_path, """
        import asyncio
        import puff, puff_native_ext as ext

        def check(e, i):
            assert type(e) is RuntimeError and str(e) == f"boom {i}", repr(e)

        def worker(i):
            try:
                ext.fail_async(f"boom {i}")
            except RuntimeError as e:
                check(e, i)
                return i
            raise AssertionError("no exception")

        def main():
            got = puff.join_all([puff.spawn(worker, i) for i in range(1000)])
            assert got == list(range(1000))
            # and on blocking-pool threads
            got = puff.join_all([puff.spawn_blocking(worker, i) for i in range(50)])
            assert got == list(range(50))
            print("greenlets and threads ok")

        async def amain():
            res = await asyncio.gather(*(ext.fail_async(f"boom {i}") for i in range(1000)), return_exceptions=True)
            for i, e in enumerate(res):
                check(e, i)
            print("asyncio ok")

        puff.run(main)
        puff.run(amain)
    """)
    assert_ok(r)
    assert "greenlets and threads ok" in r.stdout and "asyncio ok" in r.stdout


# ---- killed greenlets --------------------------------------------------------------------------


def test_greenlet_killed_while_waiting_for_io(tmp_path):
    r = run_script(tmp_path, """
        import json, os, tempfile, time
        import greenlet, puff, puff_native_ext as ext

        log = []

        def waiter(what, fn, *args):
            try:
                fn(*args)
                log.append((what, "returned"))
            finally:
                log.append((what, "finally"))

        def kill_and_join(what, fn, args, exc):
            h = puff.spawn(waiter, what, fn, *args)
            puff.sleep_ms(10)  # it is now waiting in its call
            assert not h.finished
            t0 = time.monotonic()
            h.kill() if exc is None else h.kill(exc)
            try:
                h.join()
            except BaseException as e:
                caught = e
            else:
                caught = None
            return caught, time.monotonic() - t0

        def main():
            out = {}
            for what, fn, args in [("sleep_ms", puff.sleep_ms, (10_000,)),
                                   ("ext.sleep_async", ext.sleep_async, (10_000,)),
                                   ("ext.add_async", ext.add_async, (1, 2, 200_000))]:
                caught, dt = kill_and_join(what, fn, args, None)
                assert isinstance(caught, greenlet.GreenletExit), repr(caught)
                out[what + " GreenletExit"] = round(dt, 4)
                caught, dt = kill_and_join(what, fn, args, ValueError("x"))
                assert isinstance(caught, ValueError) and str(caught) == "x", repr(caught)
                out[what + " ValueError"] = round(dt, 4)

            # read_file_bytes on a FIFO that has a writer but no data: the read blocks until we write.
            fifo = os.path.join(tempfile.mkdtemp(), "fifo")
            os.mkfifo(fifo)
            wfd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # keeps the reader's open() from blocking
            h = puff.spawn(waiter, "read_file_bytes", puff.read_file_bytes, fifo)
            def reader_opened():
                n = 0
                for fd in os.listdir("/proc/self/fd"):
                    try:
                        n += os.readlink(f"/proc/self/fd/{fd}") == fifo
                    except OSError:
                        pass
                return n >= 2
            deadline = time.monotonic() + 5
            while not reader_opened():
                assert time.monotonic() < deadline, "the I/O thread never opened the FIFO"
                # End the scheduler round (its submissions are posted) without a Puff timer:
                # the I/O thread blocked in read() would be the one to run it.
                puff._native.yield_now()
                time.sleep(0.002)
            t0 = time.monotonic()
            h.kill(ValueError("fifo"))
            try:
                h.join()
            except ValueError as e:
                assert str(e) == "fifo"
                out["read_file_bytes ValueError"] = round(time.monotonic() - t0, 4)
            os.write(wfd, b"late data")
            os.close(wfd)  # EOF: the abandoned read completes and is freed

            # The runtime stays healthy.
            assert ext.add_async(20, 22) == 42
            assert ext.hello_from_cpp_async("after").startswith("Hello, after!")
            puff.sleep_ms(5)
            assert b"import json, os" in puff.read_file_bytes(__file__)
            assert puff.join_all([puff.spawn(ext.add_async, i, i) for i in range(100)]) == [2 * i for i in range(100)]
            out["finally_ran"] = log.count(("sleep_ms", "finally")) + log.count(("ext.sleep_async", "finally")) \\
                + log.count(("ext.add_async", "finally")) + log.count(("read_file_bytes", "finally"))
            out["returned"] = sum(1 for _, s in log if s == "returned")
            return out

        t0 = time.monotonic()
        res = puff.run(main)
        res["run_s"] = round(time.monotonic() - t0, 3)
        print("RESULT " + json.dumps(res))
    """, timeout=30)
    assert_ok(r)
    res = result_line(r)
    print(f"\nkill while waiting: {res}")
    assert res["finally_ran"] == 7 and res["returned"] == 0, res
    for k, v in res.items():
        if k.endswith(("GreenletExit", "ValueError")):
            assert v < 1.0, (k, v)  # promptly, not when the 10 s wait would have ended
    assert res["run_s"] < 5, res  # pending 10 s timers do not hold up the exit


def test_coroutine_cancelled_while_awaiting_native_call(tmp_path):
    r = run_script(tmp_path, """
        import asyncio, time
        import puff, puff_native_ext as ext

        async def main():
            cleaned = []
            async def waiter(aw):
                try:
                    await aw
                finally:
                    cleaned.append(True)
            for make in (lambda: ext.sleep_async(10_000), lambda: puff.sleep_ms(10_000),
                         lambda: ext.add_async(1, 2, 100_000)):
                t = asyncio.ensure_future(waiter(make()))
                await asyncio.sleep(0.01)
                t0 = time.monotonic()
                t.cancel()
                try:
                    await t
                except asyncio.CancelledError:
                    pass
                assert time.monotonic() - t0 < 1
            assert cleaned == [True] * 3
            assert await ext.add_async(1, 1) == 2
            print("cancelled ok")

        t0 = time.monotonic()
        puff.run(main)
        print("run_s", round(time.monotonic() - t0, 2))
    """, timeout=30)
    assert_ok(r)
    assert "cancelled ok" in r.stdout


def test_kill_before_the_greenlet_started(tmp_path):
    # kill() on a handle whose greenlet has not run yet: join() must raise at once, not hang.
    r = run_script(tmp_path, """
        import greenlet, puff

        ran = []

        def main():
            h = puff.spawn(lambda: ran.append(1))
            h.kill()
            try:
                h.join()
            except greenlet.GreenletExit:
                print("GreenletExit")
            h2 = puff.spawn(lambda: ran.append(2))
            h2.kill(ValueError("early"))
            try:
                h2.join()
            except ValueError as e:
                print("ValueError", e)
            print("ran", ran)

        puff.run(main)
    """, timeout=5)
    assert_ok(r)
    assert "GreenletExit" in r.stdout
    assert "ValueError early" in r.stdout
    assert "ran []" in r.stdout


def test_runtime_stop_with_native_calls_still_in_flight(tmp_path):
    # puff.h lets run() merely start the work and call api->complete(op) later from any thread
    # (the extension's sleep_async does). When the runtime stops first, those late complete()
    # calls must not touch freed ops, and a later runtime must work.
    r = run_script(tmp_path, """
        import time
        import puff, puff_native_ext as ext

        def main():
            for _ in range(1000):
                puff.spawn(ext.sleep_async, 200)
            puff.sleep_ms(20)  # every op started; main returns and the runtime stops

        puff.run(main)
        time.sleep(0.5)  # the helper threads complete their ops now

        def main2():
            for _ in range(100):
                puff.sleep_ms(1)
            return ext.add_async(1, 2)

        print("second run:", puff.run(main2))
    """, timeout=30)
    assert_ok(r)
    assert "second run: 3" in r.stdout


# ---- tracebacks ----------------------------------------------------------------------------------


def test_spawned_greenlet_exception_keeps_its_traceback(tmp_path):
    script = """
        import gc, traceback
        import puff

        def inner_failure(n):
            return 10 // n  # LINE_A

        def outer(n):
            puff.sleep_ms(1)
            return inner_failure(n)

        def never_joined():
            puff.sleep_ms(1)
            raise LookupError("nobody asked")  # LINE_B

        def main():
            h = puff.spawn(outer, 0)
            try:
                h.join()
            except ZeroDivisionError:
                print("JOINED:\\n" + traceback.format_exc())
            lost = puff.spawn(never_joined)
            puff.sleep_ms(20)
            assert lost.finished
            del lost
            gc.collect()
            print("main done")

        puff.run(main)
    """
    path = write_script(tmp_path, script)
    lines = path.read_text().splitlines()
    line_a = next(i for i, l in enumerate(lines, 1) if "LINE_A" in l)
    line_b = next(i for i, l in enumerate(lines, 1) if "LINE_B" in l)
    r = subprocess.run([PY, str(path)], cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=30)
    assert_ok(r)
    joined = r.stdout.split("JOINED:", 1)[1]
    assert f'File "{path}", line {line_a}, in inner_failure' in joined, joined
    assert "in outer" in joined and "ZeroDivisionError" in joined
    assert "was never retrieved" in r.stderr, r.stderr
    assert f'File "{path}", line {line_b}, in never_joined' in r.stderr, r.stderr
    assert "LookupError: nobody asked" in r.stderr


def test_failing_run_propagates_the_exception(tmp_path):
    r = run_script(tmp_path, """
        import puff

        def greenlet_main():
            puff.sleep_ms(1)
            raise KeyError("from greenlet main")

        async def async_main():
            await puff.sleep_ms(1)
            raise IndexError("from async main")

        for fn, exc in ((greenlet_main, KeyError), (async_main, IndexError)):
            try:
                puff.run(fn)
            except exc as e:
                print("caught", type(e).__name__, e)
        print("again", puff.run(lambda: puff.sleep_ms(1) or "fine"))
        puff.run(greenlet_main)  # uncaught: the process fails with the traceback
    """)
    assert_no_crash(r)
    assert "caught KeyError 'from greenlet main'" in r.stdout
    assert "caught IndexError from async main" in r.stdout
    assert "again fine" in r.stdout
    assert r.returncode == 1
    assert "Traceback" in r.stderr and "in greenlet_main" in r.stderr
    assert r.stderr.rstrip().endswith("KeyError: 'from greenlet main'")


# ---- signals -------------------------------------------------------------------------------------


def start_scenario(tmp_path: Path, code: str) -> subprocess.Popen:
    path = write_script(tmp_path, code)
    return subprocess.Popen([PY, str(path)], cwd=tmp_path, env=child_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_ready(proc: subprocess.Popen, timeout: float = 15) -> None:
    line = ""
    deadline = time.monotonic() + timeout
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while "ready" not in line:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                out, err = proc.communicate()
                pytest.fail(f"scenario not ready (exit {proc.returncode})\n{line}{out}\n{err}")
            if sel.select(0.1):
                line += proc.stdout.readline()


def signal_and_wait(proc: subprocess.Popen, sig: int, timeout: float):
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"no exit within {timeout} s after signal {sig}\n--- stdout ---\n{out}\n--- stderr ---\n{err}")
    return proc.returncode, out, err, time.monotonic() - t0


SLEEPING_MAIN = {
    "greenlet": """
        import puff
        def main():
            try:
                print("ready", flush=True)
                puff.sleep_ms(60_000)
            finally:
                print("finally ran", flush=True)
        puff.run(main)
    """,
    "asyncio": """
        import puff
        async def main():
            try:
                print("ready", flush=True)
                await puff.sleep_ms(60_000)
            finally:
                print("finally ran", flush=True)
        puff.run(main)
    """,
    "native_ext": """
        import puff, puff_native_ext as ext
        def main():
            try:
                print("ready", flush=True)
                ext.sleep_async(60_000)
            finally:
                print("finally ran", flush=True)
        puff.run(main)
    """,
    "busy_python_loop": """
        import puff
        def main():
            n = 0
            try:
                print("ready", flush=True)
                while True:
                    n += 1
            finally:
                print("finally ran", flush=True)
        puff.run(main, options=puff.RuntimeOptions(shutdown_timeout_ms=1000))
    """,
}


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("kind", list(SLEEPING_MAIN))
def test_signal_stops_run_cleanly(tmp_path, record_property, kind, sig, code):
    proc = start_scenario(tmp_path, SLEEPING_MAIN[kind])
    wait_ready(proc)
    rc, out, err, elapsed = signal_and_wait(proc, sig, timeout=10)
    record_property("exit_s", round(elapsed, 3))
    assert rc == code, f"exit {rc}\n{out}\n{err}"
    assert "finally ran" in out, out
    for marker in CRASH_MARKERS:
        assert marker not in err, err
    assert elapsed < 3, elapsed


def test_main_that_swallows_the_signal_is_stopped_after_shutdown_timeout(tmp_path):
    proc = start_scenario(tmp_path, """
        import puff
        def main():
            while True:
                try:
                    print("ready", flush=True)
                    while True:
                        pass
                except BaseException:
                    pass  # a stubborn main: ignores KeyboardInterrupt
        puff.run(main, options=puff.RuntimeOptions(shutdown_timeout_ms=1000))
    """)
    wait_ready(proc)
    rc, out, err, elapsed = signal_and_wait(proc, signal.SIGINT, timeout=10)
    assert rc == 130, f"exit {rc}\n{out}\n{err}"
    assert "did not stop within 1000 ms" in err
    assert 0.9 <= elapsed < 4, elapsed


def test_signal_stops_run_even_when_an_io_thread_is_stuck(tmp_path):
    # read_file_bytes on a FIFO nobody writes to blocks an I/O thread in open(). SIGTERM must still
    # end the process within shutdown_timeout_ms (+ slack), not hang while joining the I/O threads.
    proc = start_scenario(tmp_path, """
        import os, tempfile
        import puff
        fifo = os.path.join(tempfile.mkdtemp(), "fifo")
        os.mkfifo(fifo)
        def main():
            try:
                print("ready", flush=True)
                puff.read_file_bytes(fifo)
            finally:
                print("finally ran", flush=True)
        puff.run(main, options=puff.RuntimeOptions(shutdown_timeout_ms=1000))
    """)
    wait_ready(proc)
    time.sleep(0.2)  # let the read reach the I/O thread
    rc, out, err, elapsed = signal_and_wait(proc, signal.SIGTERM, timeout=8)
    assert rc == 143, f"exit {rc}\n{out}\n{err}"
    assert "finally ran" in out
    assert elapsed < 4, elapsed
