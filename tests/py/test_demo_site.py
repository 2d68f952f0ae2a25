"""The demo site of `make run` (examples/site): Flask at /, FastAPI mounted at /api with a
WebSocket echo, served by one `puff serve` — the way a user runs it."""

import contextlib
import json
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

from websockets.sync.client import connect as ws_connect

from conftest import PUFF

SITE = Path(__file__).resolve().parents[2] / "examples" / "site"


def _start_site():
    proc = subprocess.Popen([str(PUFF), "serve", "--bind", "127.0.0.1:0"], cwd=SITE, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        m = re.search(r"Listening on http://127\.0\.0\.1:(\d+)", line)
        if m:
            return proc, int(m.group(1)), lines
    proc.kill()
    raise AssertionError("puff serve exited before listening:\n" + "".join(lines))


class _DevTools:
    """A page of headless Chromium driven over the DevTools protocol, so the test waits for the
    page in real time (Chromium's --virtual-time-budget does not wait for a WebSocket)."""

    def __init__(self, chromium, profile):
        import time

        self._stack = contextlib.ExitStack()
        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # Chromium writes the port it chose into the profile once DevTools listens.
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not (port_file.exists() and port_file.read_text().strip()):
                assert self.proc.poll() is None, f"chromium exited with {self.proc.returncode}"
                assert time.monotonic() < deadline, "chromium did not open its DevTools port in 30 s"
                time.sleep(0.05)
            port = int(port_file.read_text().split()[0])
            targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
            page = next(t for t in targets if t["type"] == "page")
            self.ws = self._stack.enter_context(ws_connect(page["webSocketDebuggerUrl"], max_size=None))
        except BaseException:
            self.close()
            raise
        self.next_id = 0

    def call(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == self.next_id:
                assert "error" not in reply, reply
                return reply["result"]

    def text_of(self, element_id):
        r = self.call("Runtime.evaluate", expression=f"(document.getElementById({element_id!r}) || {{}}).textContent || ''",
                      returnByValue=True)
        return r["result"]["value"]

    def close(self):
        self._stack.close()
        self.proc.kill()
        self.proc.wait(15)


def test_demo_site_serves_flask_fastapi_and_websocket():
    proc, port, lines = _start_site()
    try:
        assert any("Mounted ASGI app at /api" in line for line in lines)
        base = f"http://127.0.0.1:{port}"
        page = urllib.request.urlopen(base + "/", timeout=10).read().decode()
        assert "Flask" in page and "/api/hello" in page
        echo_page = urllib.request.urlopen(base + "/echo", timeout=10).read().decode()
        assert "new WebSocket" in echo_page and "/api/ws" in echo_page
        data = json.loads(urllib.request.urlopen(base + "/api/hello", timeout=10).read())
        assert data == {"message": "Hello from FastAPI on Puff", "served_by": "asyncio"}
        with ws_connect(f"ws://127.0.0.1:{port}/api/ws") as c:
            c.send("ping")
            assert c.recv(timeout=5) == "echo: ping"
        missing = urllib.request.Request(base + "/api/nope")
        try:
            urllib.request.urlopen(missing, timeout=10)
            raise AssertionError("expected 404")
        except urllib.error.HTTPError as e:
            assert e.code == 404  # FastAPI's 404: the /api prefix belongs to the mounted app
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_demo_echo_page_in_a_real_browser(tmp_path):
    """Headless Chromium loads /echo; its JavaScript opens the WebSocket to /api/ws (FastAPI on
    Puff) and prints the echo into the page. The test reads the page's log in real time until the
    echo is there or 20 s have passed."""
    import shutil
    import time

    import pytest

    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("chromium is installed by scripts/install-system-deps.sh")
    proc, port, _ = _start_site()
    browser = None
    try:
        browser = _DevTools(chromium, tmp_path / "profile")
        browser.call("Page.enable")
        browser.call("Page.navigate", url=f"http://127.0.0.1:{port}/echo")
        deadline = time.monotonic() + 20
        log = ""
        while time.monotonic() < deadline and "< echo: hello puff" not in log:
            time.sleep(0.05)
            log = browser.text_of("log")
        assert log.splitlines()[:3] == ["connected", "> hello puff", "< echo: hello puff"], log
    finally:
        if browser:
            browser.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
