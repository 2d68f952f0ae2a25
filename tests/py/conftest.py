"""Shared fixtures: run the real ``puff`` command in a scratch project directory.

``project`` is a :class:`Project` on a fresh ``tmp_path``: ``write()`` files into it (text is
dedented), ``run()`` or ``popen()`` the ``puff`` console script of this venv there, with an
environment free of ``PYTHONPATH`` and of the caller's ``PUFF_*`` / ``PYTEST_*`` variables
(except PUFF_HTTP_THREAD in the second HTTP pass, below).
"""

from __future__ import annotations

import os
import selectors
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Dict, Optional

import pytest

PUFF = Path(sys.executable).with_name("puff")

#: `make test` runs the HTTP suites twice more, with PUFF_TEST_HTTP_THREAD=python and =io: every
#: server then runs its connections on its Python thread (`http_thread = "python"`), or on its
#: I/O threads, in `puff serve` processes (through PUFF_HTTP_THREAD) and in-process servers
#: alike. The first pass leaves `puff serve` its default ("auto": with one worker on a machine
#: with more CPUs, each connection placed by the app's measured cost) and in-process servers
#: theirs (the I/O threads).
HTTP_THREAD = os.environ.get("PUFF_TEST_HTTP_THREAD", "")

if HTTP_THREAD:
    @pytest.fixture(autouse=True)
    def _http_thread_for_in_process_servers(monkeypatch):
        from puff import _native

        real = _native.HttpServer

        def http_server(app, options=None):
            return real(app, {**(options or {}), "python_thread": HTTP_THREAD == "python"})

        monkeypatch.setattr(_native, "HttpServer", http_server)


def clean_env(**extra: str) -> Dict[str, str]:
    """os.environ without PYTHONPATH, PUFF_* and PYTEST_* variables, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if k != "PYTHONPATH" and not k.startswith(("PUFF_", "PYTEST_"))}
    env["PYTHONUNBUFFERED"] = "1"
    if HTTP_THREAD:
        env["PUFF_HTTP_THREAD"] = HTTP_THREAD
    env.update(extra)
    return env


class Project:
    """A scratch directory with a puff.toml and modules, where ``puff`` is run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = clean_env()

    def write(self, name: str, text: str = "") -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def _env(self, env: Optional[Dict[str, str]]) -> Dict[str, str]:
        return {**self.env, **(env or {})}

    def run(self, *args: str, env: Optional[Dict[str, str]] = None, input: Optional[str] = None,
            cwd: Optional[Path] = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Runs ``puff ARGS`` to completion; returns the CompletedProcess (text output)."""
        return subprocess.run([str(PUFF), *args], cwd=cwd or self.root, env=self._env(env), input=input,
                              capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str, env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
        """Starts ``puff ARGS`` with piped stdout/stderr (text); see :func:`wait_for_output`."""
        return subprocess.Popen([str(PUFF), *args], cwd=self.root, env=self._env(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def wait_for_output(proc: subprocess.Popen, text: str, timeout: float = 10.0, stream: str = "stdout") -> str:
    """Reads ``proc``'s stdout (or ``stream="stderr"``) until ``text`` appears; returns what was
    read. Fails on timeout or if the process exits first."""
    seen = ""
    deadline = time.monotonic() + timeout
    pipe = getattr(proc, stream)
    with selectors.DefaultSelector() as sel:
        sel.register(pipe, selectors.EVENT_READ)
        while text not in seen:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"{text!r} not printed within {timeout} s; got {seen!r}")
            if sel.select(left):
                chunk = os.read(pipe.fileno(), 65536)  # unbuffered: communicate() gets the rest
                if not chunk:
                    pytest.fail(f"process exited ({proc.wait()}) before printing {text!r}; got {seen!r}; "
                                f"stderr: {proc.stderr.read() if stream == 'stdout' else ''}")
                seen += chunk.decode(errors="replace")
    return seen
