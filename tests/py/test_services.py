"""scripts/services.sh: private Postgres and Redis for tests, benchmarks and the demo.

Runs the script from a copy in a scratch folder (a "fresh clone" elsewhere), so it never touches
the repo's own services, which other suites or people may be using. Cheap: about 3-6 s, mostly
initdb; every step has a timeout.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "services.sh"
PG_BIN = Path("/usr/lib/postgresql/15/bin")

pytestmark = pytest.mark.skipif(
    not (shutil.which("redis-server") and shutil.which("redis-cli") and shutil.which("psql")
         and (PG_BIN / "pg_ctl").exists()),
    reason="postgresql 15 / redis-server not installed (make deps)",
)


class Clone:
    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "scripts").mkdir(parents=True)
        shutil.copy(SCRIPT, root / "scripts" / "services.sh")
        self.state = root / ".puff" / "services"

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(self.root / "scripts" / "services.sh"), *args], cwd=self.root,
                              capture_output=True, text=True, timeout=timeout)

    def env(self) -> dict:
        r = self.run("env")
        assert r.returncode == 0, r.stderr
        out = {}
        for line in r.stdout.splitlines():
            m = re.fullmatch(r"export (\w+)=(\S+)", line)
            assert m, f"not an export line: {line!r}"
            out[m.group(1)] = m.group(2)
        return out


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    # A private folder (0700 under root's pytest temp): Postgres, run as `postgres` when we are
    # root, must not need to reach it.
    c = Clone(tmp_path_factory.mktemp("clone"))
    yield c
    c.run("reset")


def ports(env: dict) -> tuple:
    pg = re.fullmatch(r"postgres://postgres@127\.0\.0\.1:(\d+)/puff", env["PUFF_DEFAULT_POSTGRES_URL"])
    rd = re.fullmatch(r"redis://127\.0\.0\.1:(\d+)/0", env["PUFF_DEFAULT_REDIS_URL"])
    assert pg and rd, env
    return int(pg.group(1)), int(rd.group(1))


def redis_cmd(port: int, *args: str) -> bytes:
    """One RESP command over a raw socket; returns the raw reply."""
    req = f"*{len(args)}\r\n".encode() + b"".join(f"${len(a)}\r\n{a}\r\n".encode() for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(req)
        data = b""
        while not data.endswith(b"\r\n") or (data[:1] == b"$" and data.count(b"\r\n") < 2):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def redis_info_field(port: int, field: str) -> str:
    info = redis_cmd(port, "INFO", "server").decode()
    m = re.search(rf"^{field}:(\S+)", info, re.M)
    assert m, info
    return m.group(1)


def psql(url: str, sql: str) -> str:
    r = subprocess.run(["psql", "-X", "-A", "-t", "-w", url, "-c", sql], capture_output=True, text=True,
                       timeout=15, env={**os.environ, "PGCONNECT_TIMEOUT": "5"})
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_start_env_and_both_answer(clone):
    r = clone.run("start")
    assert r.returncode == 0, r.stderr
    env = clone.env()
    assert set(env) == {"PUFF_DEFAULT_POSTGRES_URL", "PUFF_DEFAULT_REDIS_URL",
                        "PUFF_TEST_POSTGRES_URL", "PUFF_TEST_REDIS_URL"}
    assert env["PUFF_TEST_POSTGRES_URL"] == env["PUFF_DEFAULT_POSTGRES_URL"]
    assert env["PUFF_TEST_REDIS_URL"] == env["PUFF_DEFAULT_REDIS_URL"]
    pg_port, redis_port = ports(env)

    assert redis_cmd(redis_port, "PING") == b"+PONG\r\n"
    assert redis_cmd(redis_port, "SET", "puff:test", "hello") == b"+OK\r\n"
    assert redis_cmd(redis_port, "GET", "puff:test") == b"$5\r\nhello\r\n"

    # Postgres speaks the protocol on the port (SSLRequest -> 'N': no TLS on the private server)...
    with socket.create_connection(("127.0.0.1", pg_port), timeout=5) as s:
        s.sendall((8).to_bytes(4, "big") + (80877103).to_bytes(4, "big"))
        assert s.recv(1) == b"N"
    # ...and runs with the settings we asked for, with the `puff` database.
    url = env["PUFF_DEFAULT_POSTGRES_URL"]
    assert psql(url, "select current_database(), current_user") == "puff|postgres"
    assert psql(url, "select string_agg(current_setting(n), ',') from unnest("
                     "array['fsync','full_page_writes','synchronous_commit','listen_addresses']) n") \
        == "off,off,off,127.0.0.1"


def test_start_again_is_a_noop(clone):
    env = clone.env()
    pg_port, redis_port = ports(env)
    url = env["PUFF_DEFAULT_POSTGRES_URL"]
    pg_started = psql(url, "select pg_postmaster_start_time()")
    redis_run_id = redis_info_field(redis_port, "run_id")
    t0 = time.monotonic()
    r = clone.run("start")
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 10
    assert "postgres: already running" in r.stderr and "redis: already running" in r.stderr, r.stderr
    assert clone.env() == env
    assert psql(url, "select pg_postmaster_start_time()") == pg_started
    assert redis_info_field(redis_port, "run_id") == redis_run_id


def test_status(clone):
    env = clone.env()
    r = clone.run("status")
    assert r.returncode == 0, r.stdout + r.stderr
    assert env["PUFF_DEFAULT_POSTGRES_URL"] in r.stdout
    assert env["PUFF_DEFAULT_REDIS_URL"] in r.stdout


def test_stale_pid_files_after_a_reboot(clone):
    """Servers gone but their pid files left behind, naming live unrelated processes."""
    env = clone.env()
    assert clone.run("stop").returncode == 0
    assert clone.run("status").returncode == 3
    assert clone.run("env").returncode != 0
    datadir = Path((clone.state / "pg.datadir").read_text().strip())
    (clone.state / "redis" / "redis.pid").write_text("1\n")
    if os.access(datadir, os.W_OK):  # root, or the user Postgres runs as
        (datadir / "postmaster.pid").write_text(f"1\n{datadir}\n")
    r = clone.run("start")
    assert r.returncode == 0, r.stderr
    assert clone.env() == env  # same ports: they were still free
    _, redis_port = ports(env)
    assert redis_cmd(redis_port, "PING") == b"+PONG\r\n"
    assert psql(env["PUFF_DEFAULT_POSTGRES_URL"], "select 1") == "1"
    r = clone.run("stop")
    assert r.returncode == 0 and "stopped" in r.stderr, r.stderr
