"""The load generators and what they report: wrk (HTTP/1.1), h2load (HTTP/2 cleartext with prior
knowledge) and ws_echo_client (WebSocket echo). Each run returns a Sample-shaped dict:
count (requests or messages), seconds, p50_ms, p99_ms, errors {kind: n}, client_cpu_s."""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
WRK_SCRIPT = os.path.join(HERE, "wrk_report.lua")

WRK_CONNECTIONS = 64
H2_CONNECTIONS, H2_STREAMS = 8, 10
WS_CONNECTIONS, WS_MESSAGE_BYTES = 16, 32


def wrk_argv(host: str, port: int, seconds: float, path: str = "/") -> List[str]:
    # wrk takes whole seconds only
    return ["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency",
            "-s", WRK_SCRIPT, f"http://{host}:{port}{path}"]


def h2load_argv(host: str, port: int, seconds: float, log_file: str) -> List[str]:
    return ["h2load", "-t1", "-c", str(H2_CONNECTIONS), "-m", str(H2_STREAMS),
            "-D", _secs(seconds), f"--log-file={log_file}", f"http://{host}:{port}/"]


def ws_argv(client: str, host: str, port: int, seconds: float) -> List[str]:
    return [client, host, str(port), "/", str(WS_CONNECTIONS), _secs(seconds),
            str(WS_MESSAGE_BYTES)]


def _secs(seconds: float) -> str:
    return f"{seconds:g}" if seconds != int(seconds) else str(int(seconds))


def _oneline(text: str) -> str:
    return " ".join(text.split())[-300:]


def _run(argv: List[str], timeout: float) -> Tuple[int, str, str, float]:
    """Runs a client to completion: (status, stdout, stderr, its CPU seconds)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        try:
            _, status, ru = _wait4(proc, timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return (proc.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"), ru.ru_utime + ru.ru_stime)


def _wait4(proc: subprocess.Popen, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            return pid, status, ru
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        time.sleep(0.02)


class LoadError(Exception):
    """The client could not produce a result (it crashed, or nothing got through)."""


def h2_probe(host: str, port: int) -> Optional[str]:
    """None once one HTTP/2 request (h2c prior knowledge) gets a 2xx answer."""
    rc, out, err, _ = _run(["h2load", "-n1", "-c1", f"http://{host}:{port}/"], 10)
    m = _H2_REQUESTS.search(out)
    if m and int(m.group(4)) == 1 and "1 2xx" in out:
        return None
    return "no HTTP/2 answer (h2c prior knowledge): " + _first_problem(out + err)


def run_wrk(host: str, port: int, seconds: float, close_delimited: bool = False, path: str = "/") -> Dict:
    """close_delimited: the server ends bodies by closing the connection, which wrk counts as
    a read error per response; those are then reported as eof_bodies, not as errors."""
    rc, out, err, cpu = _run(wrk_argv(host, port, seconds, path), seconds + 30)
    line = next((ln for ln in out.splitlines() if ln.startswith("{")), None)
    if line is None:
        raise LoadError(f"wrk exited {rc}: {_oneline(err or out)}")
    r = json.loads(line)
    errors = {k: r[k] for k in ("connect", "read", "write", "timeout") if r[k]}
    if r["status"]:
        errors["non2xx"] = r["status"]
    notes = {}
    if close_delimited and errors.get("read"):
        notes["eof_bodies"] = errors.pop("read")
    if r["requests"] == 0:
        raise LoadError("failed under load: wrk read no valid response ("
                        + ", ".join(f"{k} errors {v}" for k, v in errors.items()) + ")")
    return {"count": r["requests"], "seconds": r["duration_us"] / 1e6, "bytes": r["bytes"],
            "p50_ms": r["p50_us"] / 1e3, "p99_ms": r["p99_us"] / 1e3, "errors": errors,
            "client_cpu_s": cpu, **({"notes": notes} if notes else {})}


_H2_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                          r"(\d+) failed, (\d+) errored, (\d+) timeout")
_H2_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_H2_FINISHED = re.compile(r"finished in ([\d.]+)(m?s)")


def run_h2load(host: str, port: int, seconds: float) -> Dict:
    with tempfile.NamedTemporaryFile(suffix=".log") as log:
        rc, out, err, cpu = _run(h2load_argv(host, port, seconds, log.name), seconds + 30)
        m, st, fin = _H2_REQUESTS.search(out), _H2_STATUS.search(out), _H2_FINISHED.search(out)
        if not (m and st and fin):
            raise LoadError(f"h2load exited {rc}: {_oneline(err or out)}")
        durations = sorted(int(ln.split("\t")[2]) for ln in open(log.name) if ln.count("\t") == 2)
    ok, failed, errored, timeout = (int(m.group(i)) for i in (4, 5, 6, 7))
    if ok == 0 or "no protocol" in out.lower():
        raise LoadError("no HTTP/2 response (h2c prior knowledge): " + _first_problem(out))
    elapsed = float(fin.group(1)) / (1000 if fin.group(2) == "ms" else 1)
    errors = {k: v for k, v in (("failed", failed), ("errored", errored), ("timeout", timeout))
              if v}
    non2xx = sum(int(st.group(i)) for i in (2, 3, 4))
    if non2xx:
        errors["non2xx"] = non2xx
    return {"count": ok, "seconds": elapsed, "p50_ms": _pct(durations, 0.50) / 1e3,
            "p99_ms": _pct(durations, 0.99) / 1e3, "errors": errors, "client_cpu_s": cpu}


def _first_problem(out: str) -> str:
    for ln in out.splitlines():
        if "fail" in ln.lower() or "error" in ln.lower() or "protocol" in ln.lower():
            return ln.strip()
    return out.strip().splitlines()[-1] if out.strip() else "no output"


def _pct(sorted_values: List[int], q: float) -> float:
    if not sorted_values:
        return 0.0
    return float(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))])


def run_ws(client: str, host: str, port: int, seconds: float) -> Dict:
    rc, out, err, cpu = _run(ws_argv(client, host, port, seconds), seconds + 30)
    line = next((ln for ln in out.splitlines() if ln.startswith("{")), None)
    if line is None:
        raise LoadError(f"ws_echo_client exited {rc}: {_oneline(err or out)}")
    r = json.loads(line)
    if r["messages"] == 0:
        raise LoadError("no WebSocket echo (upgrade refused or no messages echoed)")
    errors = {"dropped_connections": r["errors"]} if r["errors"] else {}
    stuck = WS_CONNECTIONS - r["open"] - r["errors"]
    if stuck:
        errors["never_upgraded"] = stuck
    return {"count": r["messages"], "seconds": r["seconds"], "p50_ms": r["p50_us"] / 1e3,
            "p99_ms": r["p99_us"] / 1e3, "errors": errors, "client_cpu_s": cpu}
