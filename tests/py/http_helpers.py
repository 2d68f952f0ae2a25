"""Black-box helpers for the `puff serve` tests: start the real command in a scratch project on
a free port (``--bind 127.0.0.1:0``; the port is read from its "Listening on" log line), talk
to it with real clients (http.client, raw sockets), stop it with a signal.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest

from conftest import PUFF, Project

APPS = Path(__file__).resolve().parent / "serve_apps"
_LISTENING = re.compile(r"Listening on (https?://(\[[^\]]+\]|[^:/]+):(\d+)|unix:(\S+))")


class _Reader(threading.Thread):
    """Collects a pipe's lines so that the server never blocks on a full pipe."""

    def __init__(self, pipe) -> None:
        super().__init__(daemon=True)
        self.pipe = pipe
        self.lines: List[str] = []
        self.cond = threading.Condition()
        self.start()

    def run(self) -> None:
        for line in self.pipe:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.lines.append("")  # EOF marker
            self.cond.notify_all()

    @property
    def text(self) -> str:
        with self.cond:
            return "".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = 10.0, count: int = 1) -> List[re.Match]:
        """Waits until ``pattern`` (a regex) has matched ``count`` lines; returns the matches."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        with self.cond:
            while True:
                found = [m for m in (rx.search(line) for line in self.lines) if m]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.lines and self.lines[-1] == ""):
                    pytest.fail(f"{pattern!r} not logged {count} time(s) within {timeout} s; got:\n"
                                + "".join(self.lines))
                self.cond.wait(left)


class Server:
    """A running ``puff serve`` process."""

    def __init__(self, project: Project, *args: str, env: Optional[Dict[str, str]] = None,
                 listeners: int = 1, command: str = "serve") -> None:
        self.project = project
        self.proc = subprocess.Popen([str(PUFF), command, *args], cwd=project.root,
                                     env={**project.env, **(env or {})}, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.err = _Reader(self.proc.stderr)
        self.out = _Reader(self.proc.stdout)
        self.urls: List[Tuple[str, int]] = []
        self.unix_paths: List[str] = []
        for m in self.err.wait_for(_LISTENING.pattern, count=listeners):
            if m.group(4):
                self.unix_paths.append(m.group(4))
            else:
                self.urls.append((m.group(2).strip("[]"), int(m.group(3))))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def host(self) -> str:
        return self.urls[0][0]

    @property
    def port(self) -> int:
        return self.urls[0][1]

    def connect(self, timeout: float = 10.0) -> socket.socket:
        if self.urls:
            return socket.create_connection((self.host, self.port), timeout=timeout)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(timeout)
        s.connect(self.unix_paths[0])
        return s

    def request(self, method: str, path: str, body=None, headers: Optional[dict] = None,
                timeout: float = 10.0) -> Tuple[int, http.client.HTTPMessage, bytes]:
        """One request on a fresh connection: (status, headers, body)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        finally:
            conn.close()

    def get(self, path: str, **kw) -> Tuple[int, http.client.HTTPMessage, bytes]:
        return self.request("GET", path, **kw)

    def raw(self, data: bytes, timeout: float = 5.0) -> bytes:
        """Sends ``data`` on a fresh connection and reads until the server closes it."""
        with self.connect(timeout) as s:
            s.sendall(data)
            return read_until_close(s)

    def alive(self) -> bool:
        """True if the server answers a fresh connection."""
        status, _h, body = self.get("/hello")
        return status == 200 and body == b"hello"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def read_until_close(s: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def read_response(s: socket.socket, buf: bytes = b"") -> Tuple[bytes, dict, bytes, bytes]:
    """Reads one response from ``s`` (Content-Length or chunked; close-delimited otherwise):
    (status line, headers with lower-case names, body, bytes read past it)."""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a complete head: {buf!r}")
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers: dict = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower().decode()] = value.strip().decode()
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise ConnectionError("closed inside the body")
            buf += chunk
        return lines[0], headers, buf[:n], buf[n:]
    if headers.get("transfer-encoding") == "chunked":
        body, buf = read_chunked(s, buf)
        return lines[0], headers, body, buf
    return lines[0], headers, buf + read_until_close(s), b""


def read_chunked(s: socket.socket, buf: bytes) -> Tuple[bytes, bytes]:
    body = b""
    while True:
        while b"\r\n" not in buf:
            buf += _recv(s)
        size_line, _, buf = buf.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(buf) < size + 2:
            buf += _recv(s)
        if size == 0:
            assert buf[:2] == b"\r\n", buf[:20]
            return body, buf[2:]
        body += buf[:size]
        assert buf[size:size + 2] == b"\r\n"
        buf = buf[size + 2:]


def _recv(s: socket.socket) -> bytes:
    chunk = s.recv(65536)
    if not chunk:
        raise ConnectionError("closed inside a chunked body")
    return chunk


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def start(project: Project, app: str = "wsgi_app.py", toml: str = "", args=(), **kw) -> Server:
    """Copies ``serve_apps/<app>`` into the project as ``app.py``, writes a puff.toml with
    ``wsgi = "app:app"`` plus ``toml``, and starts ``puff serve --bind 127.0.0.1:0 ARGS``."""
    shutil.copy(APPS / app, project.root / "app.py")
    project.write("puff.toml", 'wsgi = "app:app"\n' + toml)
    bind = [] if any(a.startswith("--bind") for a in args) else ["--bind", "127.0.0.1:0"]
    return Server(project, *bind, *args, **kw)


def refused(host: str, port: int) -> bool:
    """True if a TCP connection to host:port is refused (nothing listens). A connection reset
    while the listeners close (a handshake caught in a closing listener's queue) is not yet
    "refused": False, so that wait_until() asks again."""
    try:
        socket.create_connection((host, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    except ConnectionResetError:
        return False
    return False


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still "exists": look at its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
