"""Server processes: start one in its own session, wait until it answers, account its CPU time
(the whole process tree: master and workers), stop it (SIGTERM, then SIGKILL of the group)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import time
from typing import Callable, Dict, List, Optional

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Server:
    """One running server. `log` receives its stdout and stderr."""

    def __init__(self, argv: List[str], cwd: str, log_path: str):
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)

    def wait_ready(self, probe: Callable[[], Optional[str]], timeout: float) -> Optional[str]:
        """Calls probe() (None: ready, else why not) until it passes. None when ready."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"exited with status {self.proc.returncode}: {self.log_tail()}"
            why = probe()
            if why is None:
                return None
            last = why
            time.sleep(0.05)
        return f"not ready after {timeout:g} s ({last}): {self.log_tail()}"

    def log_tail(self, lines: int = 3) -> str:
        self._log.flush()
        try:
            with open(self.log_path, "rb") as f:
                text = f.read()[-4000:].decode("utf-8", "replace")
        except OSError:
            return ""
        tail = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
        return " | ".join(tail) or "(no output)"

    def cpu_seconds(self) -> Dict[int, float]:
        """utime+stime (and reaped children's) per process of the tree, in seconds."""
        return tree_cpu(self.proc.pid)

    def stop(self, grace: float = 1.5) -> None:
        pgid = self.proc.pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
        try:  # workers that outlived their master, or a master that ignored SIGTERM
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def tcp_probe(host: str, port: int) -> Optional[str]:
    """None once something accepts connections on host:port."""
    try:
        socket.create_connection((host, port), timeout=1.0).close()
        return None
    except OSError as e:
        return f"connect failed: {e.__class__.__name__}"


def http1_probe(host: str, port: int, head: Optional[Dict] = None) -> Optional[str]:
    """None once GET / answers 200; the response's headers go into head (lower-case names)."""
    try:
        conn = http.client.HTTPConnection(host, port, timeout=1.0)
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        conn.close()
    except (OSError, http.client.HTTPException) as e:
        return f"GET / failed: {e.__class__.__name__}"
    if resp.status != 200:
        return f"GET / answered {resp.status}"
    if head is not None:
        head.update((k.lower(), v) for k, v in resp.getheaders())
    return None


def raw_head(host: str, port: int) -> str:
    """The head of the answer to one GET /, as the bytes came (for "why did the client fail")."""
    try:
        with socket.create_connection((host, port), timeout=2.0) as s:
            s.sendall(f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 8192:
                chunk = s.recv(8192)
                if not chunk:
                    break
                data += chunk
    except OSError as e:
        return f"GET / failed: {e.__class__.__name__}"
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return " / ".join(head.split("\r\n"))


def _stat(pid: int):
    """(ppid, cpu seconds) from /proc/PID/stat, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    # after the command: state ppid ... utime(11) stime(12) cutime(13) cstime(14)
    ticks = sum(int(x) for x in fields[11:15])
    return int(fields[1]), ticks / CLK_TCK


def tree_cpu(root: int) -> Dict[int, float]:
    stats = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                stats[int(name)] = st
    children: Dict[int, List[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out[pid] = stats[pid][1]
            todo.extend(children.get(pid, ()))
    return out


def cpu_delta(before: Dict[int, float], after: Dict[int, float]) -> float:
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        parts = f.readline().split()[1:]
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in parts[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK
