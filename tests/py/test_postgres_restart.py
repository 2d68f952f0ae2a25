"""Postgres stopped and restarted under load from Python: in-flight statements fail with
OperationalError, nothing hangs, the pool and the LISTEN connection recover, and no transaction
is reported committed that is not in the table. On a throwaway cluster of its own (initdb on a
free port), never the shared test server."""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import puff
from puff import postgres as pg

PG_BIN = Path(os.environ.get("PUFF_PG_BIN", "/usr/lib/postgresql/15/bin"))
pytestmark = pytest.mark.skipif(not (PG_BIN / "initdb").exists(), reason=f"no {PG_BIN}/initdb")


class ScratchPostgres:
    """initdb + pg_ctl in a temporary directory, as the `postgres` user when we are root (the
    server refuses to run as root), on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="puff-pgpy-")
        self.root = os.geteuid() == 0
        if self.root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._pg("initdb", "-D", f"{self.dir}/data", "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8",
                 "--locale=C.UTF-8")
        self.start()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _pg(self, tool: str, *args: str) -> None:
        cmd = [str(PG_BIN / tool), *args]
        if self.root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, cwd="/", check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._pg("pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/server.log", "-w", "-t", "30", "-s", "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg("pg_ctl", "-D", f"{self.dir}/data", "-m", mode, "-w", "-t", "30", "-s", "stop")

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.SubprocessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def scratch():
    try:
        s = ScratchPostgres()
    except (subprocess.SubprocessError, OSError, KeyError) as e:
        pytest.skip(f"no scratch Postgres: {e}")
    yield s
    s.destroy()


def test_restart_under_load(scratch):
    state = {"ok": 0, "operational": 0, "other": [], "committed": set(), "failed": set(), "stop": False}

    def worker(i):
        n = 0
        while not state["stop"]:
            n += 1
            key = i * 1000000 + n
            try:
                if i % 2:
                    cur = pg.connect("scratch", autocommit=True).execute("select pg_sleep(0.005), %s::int", [i])
                    assert cur.fetchone()[1] == i
                else:
                    try:
                        with pg.connect("scratch") as conn:
                            conn.execute("insert into restart_log values (%s)", [key])
                    except pg.OperationalError as e:
                        if e.pgcode != "08007":  # unknown outcome: neither list
                            state["failed"].add(key)
                        raise
                    state["committed"].add(key)
                state["ok"] += 1
            except pg.OperationalError:
                state["operational"] += 1
                puff.sleep_ms(10)
            except Exception as e:  # noqa: BLE001 (anything else is a failure of the test)
                state["other"].append(repr(e))
                puff.sleep_ms(10)

    def wait_until(cond, seconds):
        deadline = time.monotonic() + seconds
        while not cond() and time.monotonic() < deadline:
            puff.sleep_ms(20)
        return cond()

    def main():
        pg.configure("scratch", scratch.url, pool_size=4)
        auto = pg.connect("scratch", autocommit=True)
        auto.execute("create table restart_log (k bigint primary key)", prepare=False)
        sub = pg.listen("restart_ch", name="scratch")
        handles = [puff.spawn(worker, i) for i in range(8)]
        results = []
        for mode in ("fast", "immediate"):
            assert wait_until(lambda: state["ok"] > 50, 10), state
            before = state["operational"]
            puff.spawn_blocking(scratch.stop, mode).join()
            assert wait_until(lambda: state["operational"] > before + 5, 10), state  # failing fast, not hanging
            puff.spawn_blocking(scratch.start).join()
            ok = state["ok"]
            assert wait_until(lambda: state["ok"] > ok + 50, 15), state  # the pool recovered
            # the listener reconnected and LISTENs again
            got = None
            deadline = time.monotonic() + 10
            while got is None and time.monotonic() < deadline:
                auto.execute("NOTIFY restart_ch, 'back'")
                got = sub.get(timeout=0.1)
            results.append((mode, got, sub.interruptions))
        state["stop"] = True
        assert wait_until(lambda: all(h.finished for h in handles), 10), "a worker hangs"
        rows = {r[0] for r in auto.execute("select k from restart_log").fetchall()}
        return results, rows

    results, rows = puff.run(main)
    assert state["other"] == []
    assert [(m, g is not None and g.payload) for m, g, _ in results] == [("fast", "back"), ("immediate", "back")]
    assert results[-1][2] >= 2
    assert state["committed"] <= rows, "a transaction reported committed is missing"
    assert not (state["failed"] & rows), "a transaction reported failed was committed"
