"""The demo site of `make run` (examples/site): Flask at /, FastAPI mounted at /api with a
WebSocket echo, served by one `puff serve` — the way a user runs it."""

import json
import re
import signal
import subprocess
import urllib.request
from pathlib import Path

from websockets.sync.client import connect as ws_connect

from conftest import PUFF

SITE = Path(__file__).resolve().parents[2] / "examples" / "site"


def test_demo_site_serves_flask_fastapi_and_websocket():
    proc = subprocess.Popen([str(PUFF), "serve", "--bind", "127.0.0.1:0"], cwd=SITE, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, text=True)
    try:
        port = None
        lines = []
        for line in proc.stderr:
            lines.append(line)
            m = re.search(r"Listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "".join(lines)
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
    Puff) and prints the echo into the page."""
    import shutil

    import pytest

    chromium = shutil.which("chromium")
    if not chromium:
        pytest.skip("chromium is installed by scripts/install-system-deps.sh")
    # Chromium's virtual clock waits for page loads but not for a WebSocket: it can dump the page
    # before the handshake is done (seen about once in ten runs under the measured placement,
    # while a Python client's WebSocket to the same server was answered at once). Up to three
    # tries, each with a fresh server and browser; a server that never answers fails all three.
    for attempt in range(3):
        proc = subprocess.Popen([str(PUFF), "serve", "--bind", "127.0.0.1:0"], cwd=SITE, stderr=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, text=True)
        try:
            port = None
            for line in proc.stderr:
                m = re.search(r"Listening on http://127\.0\.0\.1:(\d+)", line)
                if m:
                    port = int(m.group(1))
                    break
            assert port
            dom = subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / f'profile{attempt}'}", "--virtual-time-budget=5000", "--dump-dom",
                 f"http://127.0.0.1:{port}/echo"],
                capture_output=True, text=True, timeout=90,
            ).stdout
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        if "connected" in dom:
            break
    assert "connected" in dom and "&lt; echo: hello puff" in dom, dom[-2000:]
