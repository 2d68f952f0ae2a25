"""`puff serve` as a command: configuration and its errors, binds, graceful shutdown, the
access log, and pre-forked workers. Black-box: each test starts the real command."""

import http.client
import json
import os
import shutil
import signal
import socket
import threading
import time

import pytest

from http_helpers import APPS, Server, pid_alive, read_response, refused, start, wait_until

# ---- configuration errors (exit 2) ---------------------------------------------------------------


@pytest.mark.parametrize("toml, args, message", [
    ('wsgi = "nomod:app"\n', (), "wsgi 'nomod:app': cannot import module: No module named 'nomod'"),
    ('wsgi = "app:nope"\n', (), "puff.toml:1: wsgi 'app:nope': module 'app' has no attribute 'nope'"),
    ('wsgi = "app:CLOSED"\n', (), "is not callable (it is set)"),
    ('wsgi = "broken:app"\n', (), "importing module 'broken' failed: ZeroDivisionError"),
    ("", ("--wsgi", "nomod.app"), "flag --wsgi 'nomod.app': cannot import module"),
    ("", ("--wsgi", "not a path"), "flag --wsgi: expected a dotted path"),
    ("", (), "nothing to serve"),
    ('asgi = "app:nope"\n', (), "asgi 'app:nope': module 'app' has no attribute 'nope'"),
    ('wsgi = "app:app"\n[server]\nworkers = 0\n', (), "puff.toml:3: [server]: 'workers' must be >= 1, got 0"),
    ('wsgi = "app:app"\n[server]\nworkrs = 2\n', (), "unknown key 'workrs' in [server] (did you mean 'workers'?)"),
    ('wsgi = "app:app"\n[server]\nbind = "localhost"\n', (), "bad 'bind' address 'localhost': expected host:port"),
    ('wsgi = "app:app"\n[server]\nbind = "::1:80"\n', (), "an IPv6 address needs brackets"),
    ('wsgi = "app:app"\n[server]\nurl_scheme = "ftp"\n', (), "'url_scheme' must be \"http\" or \"https\""),
    ('wsgi = "app:app"\n[server]\nroot_path = "api"\n', (), "'root_path' must be a URL path starting with '/'"),
    ('wsgi = "app:app"\n', ("--bind", "1.2.3.4:70000"), "flag --bind: '1.2.3.4:70000': the port must be"),
    ('wsgi = "app:app"\n', ("--workers", "many"), "flag --workers: expected an integer, got 'many'"),
    ('wsgi = "app:app"\n', ("--max-body", "-1"), "flag --max-body: must be >= 0, got -1"),
    ('wsgi = "app:app"\n', ("--reuse-port", "maybe"), "flag --reuse-port: expected a boolean"),
    ('wsgi = "app:app"\n', ("--cpu-affinity", "sometimes"), "flag --cpu-affinity: expected \"auto\" or \"off\""),
    ('wsgi = "app:app"\n[server]\ncpu_affinity = "all"\n', (), "'cpu_affinity' must be \"auto\" or \"off\""),
    ('wsgi = "app:app"\n', ("--bind", "no-such-host.invalid:80"), "cannot resolve 'no-such-host.invalid'"),
    ('wsgi = "app:app"\nglobal_state = "nomod:make"\n', (), "global_state 'nomod:make': cannot import module"),
    ('wsgi = "app:app"\nglobal_state = "app:CLOSED"\n', ("--workers", "2"), "global_state 'app:CLOSED' is not callable"),
    ('wsgi = "app:app"\n', ("--nope",), "unrecognized arguments: --nope"),
])
def test_configuration_errors_exit_2(project, toml, args, message):
    project.write("app.py", "CLOSED = set()\ndef app(environ, start_response):\n    pass\n")
    project.write("broken.py", "1 / 0\n")
    project.write("puff.toml", toml)
    r = project.run("serve", *args, timeout=20)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr


def test_env_variables_are_checked(project):
    project.write("puff.toml", 'wsgi = "app:app"\n')
    r = project.run("serve", env={"PUFF_WORKERS": "0"})
    assert r.returncode == 2 and "env PUFF_WORKERS: must be >= 1, got 0" in r.stderr
    r = project.run("serve", env={"PUFF_BIND": "127.0.0.1"})
    assert r.returncode == 2 and "env PUFF_BIND: '127.0.0.1': expected host:port" in r.stderr


def test_help(project):
    r = project.run("serve", "--help")
    assert r.returncode == 0 and "--bind ADDR" in r.stdout and "--workers N" in r.stdout
    assert "serve" in project.run("--help").stdout


def test_address_in_use_exits_1(project):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        project.write("puff.toml", 'wsgi = "app:app"\n')
        project.write("app.py", "def app(environ, start_response):\n    pass\n")
        r = project.run("serve", "--bind", f"127.0.0.1:{port}", timeout=20)
        assert r.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in r.stderr, r.stderr
        r = project.run("serve", "--bind", f"127.0.0.1:{port}", "--workers", "2", timeout=20)
        assert r.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in r.stderr, r.stderr


# ---- serving ---------------------------------------------------------------------------------------


def test_runserver_alias_dotted_path_and_reuse_port(project):
    # Upstream's old command name, the seed's dotted form (pkg.module.attr) and --reuse-port.
    shutil.copy(APPS / "wsgi_app.py", project.root / "app.py")
    project.write("puff.toml", 'wsgi = "app.app"\n')
    srv = Server(project, "--bind", "127.0.0.1:0", "--reuse-port", "false", command="runserver")
    try:
        assert srv.alive()
        srv.err.wait_for("flag --reuse-port: SO_REUSEPORT is always on in Puff; 'false' is ignored")
    finally:
        assert srv.stop(signal.SIGINT) == 0
    srv = Server(project, "--bind", "127.0.0.1:0", env={"PUFF_REUSE_PORT": "true"})
    assert srv.alive() and srv.stop() == 0


def test_wsgi_flag_and_both_apps_configured(project):
    srv = start(project, toml='asgi = "app:app"\n', args=("--wsgi", "app:app"))
    try:
        srv.err.wait_for(r"both wsgi and asgi are configured: serving the WSGI app 'app:app'; "
                         r"the ASGI app 'app:app' is NOT served")
        assert srv.alive()
    finally:
        assert srv.stop() == 0


def test_several_binds_and_root_path(project):
    ipv6 = socket.has_ipv6
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        ipv6 = False
    binds = ["--bind", "127.0.0.1:0"] + (["--bind", "[::1]:0"] if ipv6 else [])
    srv = start(project, toml='[server]\nroot_path = "/api/"\n', args=binds, listeners=len(binds) // 2)
    try:
        assert len(srv.urls) == len(binds) // 2
        for host, port in srv.urls:
            with socket.create_connection((host, port)) as s:
                s.sendall(b"GET /api/environ HTTP/1.1\r\nHost: x\r\n\r\n")
                env = json.loads(read_response(s)[2])
            assert env["SCRIPT_NAME"] == ["str", "/api"] and env["PATH_INFO"] == ["str", "/environ"]
            assert env["SERVER_NAME"] == ["str", host] and env["SERVER_PORT"] == ["str", str(port)]
        if ipv6:
            srv.err.wait_for(r"Listening on http://\[::1\]:\d+")
    finally:
        assert srv.stop() == 0


def test_unix_socket(project, tmp_path):
    path = tmp_path / "app.sock"
    srv = start(project, args=("--bind", f"unix:{path}"))
    try:
        assert srv.unix_paths == [str(path)]
        with srv.connect() as s:
            s.sendall(b"GET /environ HTTP/1.1\r\nHost: example.com:8080\r\n\r\n")
            env = json.loads(read_response(s)[2])
        assert env["SERVER_NAME"] == ["str", "example.com"] and env["SERVER_PORT"] == ["str", "80"]
        assert env["REMOTE_ADDR"] == ["str", ""]
    finally:
        assert srv.stop() == 0
    assert not path.exists()  # removed at exit
    # A plain absolute path is a Unix socket too; a live server's socket is not taken over.
    srv = start(project, args=("--bind", str(path)))
    try:
        r = project.run("serve", "--bind", str(path), timeout=20)
        assert r.returncode == 1 and "another server is listening on" in r.stderr
    finally:
        assert srv.stop() == 0


def test_threads_sets_the_io_threads(project):
    counts = []
    for threads in ("1", "3"):
        srv = start(project, args=("--threads", threads))
        counts.append(len(os.listdir(f"/proc/{srv.pid}/task")))
        assert srv.stop() == 0
    assert counts[1] - counts[0] == 2


@pytest.mark.parametrize("toml, environ, expected", [
    ("[server]\nworkers = 1\nthreads = 1\n", {}, 50),              # 2 threads: spins on >= 2 cores
    ("[server]\nworkers = 64\n", {}, 0),                            # more threads than cores
    ("[server]\nworkers = 64\n[runtime]\nspin_us = 20\n", {}, 20),   # set in the file: kept
    ("[server]\nworkers = 64\n", {"PUFF_SPIN_US": "7"}, 7),          # set by a variable: kept
    ('[server]\nhttp_thread = "python"\n', {}, 50),                 # idle I/O threads do not count
    ('[server]\nworkers = 64\nhttp_thread = "python"\n', {}, 0),   # more workers than cores
])
def test_spin_is_off_by_default_when_workers_outnumber_the_cores(tmp_path, toml, environ, expected):
    from puff import config
    from puff._serve import runtime_options
    if expected == 50 and (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 cores")
    (tmp_path / "puff.toml").write_text(toml)
    cfg = config.load(tmp_path / "puff.toml", environ=dict(environ), dotenv=False)
    assert runtime_options(cfg).spin_us == expected


@pytest.mark.parametrize("http_thread, io_threads", [("python", 1), ("io", 0)])
def test_serving_on_the_python_thread_keeps_one_io_thread(tmp_path, http_thread, io_threads):
    from puff import config
    from puff._serve import runtime_options
    (tmp_path / "puff.toml").write_text(f'[server]\nhttp_thread = "{http_thread}"\n')
    cfg = config.load(tmp_path / "puff.toml", environ={}, dotenv=False)
    assert runtime_options(cfg).io_threads == io_threads  # 0: one per CPU


def test_access_log(project):
    srv = start(project, args=("--access-log",))
    try:
        srv.get("/hello?x=1")
        srv.get("/stream?n=2")
        srv.request("HEAD", "/hello")
        srv.get("/missing")
        lines = [m.group(0) for m in srv.out.wait_for(r'^127\.0\.0\.1 - - \[[^\]]+\] "[^"]*" \d{3} \S+$', count=4)]
    finally:
        assert srv.stop() == 0
    assert lines[0].endswith('"GET /hello?x=1 HTTP/1.1" 200 5')
    assert lines[1].endswith('"GET /stream?n=2 HTTP/1.1" 200 14')
    assert lines[2].endswith('"HEAD /hello HTTP/1.1" 200 -')
    assert lines[3].endswith('"GET /missing HTTP/1.1" 404 9')


def test_access_log_is_off_by_default(project):
    srv = start(project)
    srv.get("/hello")
    assert srv.stop() == 0
    assert "GET /hello" not in srv.out.text


# ---- stopping --------------------------------------------------------------------------------------


def _slow_request(srv, ms=1000):
    """GET /sleep?ms=MS in a thread: result["r"] is (status, headers, body), or result["error"]."""
    result = {}

    def run():
        try:
            result["r"] = srv.get(f"/sleep?ms={ms}")
        except (OSError, http.client.HTTPException) as e:
            result["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_finishes_the_request_in_flight_then_exits_0(project, sig):
    # The runtime's own watchdog is shorter than the request: serve must extend it.
    srv = start(project, toml="[runtime]\nshutdown_timeout_ms = 100\n")
    idle = srv.connect()
    idle.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_response(idle)[2] == b"hello"  # ...and the connection stays open, idle
    thread, result = _slow_request(srv)
    srv.err.wait_for("sleep started")
    srv.proc.send_signal(sig)
    srv.err.wait_for(f"received {signal.Signals(sig).name}: finishing requests in flight")
    assert wait_until(lambda: refused(srv.host, srv.port), timeout=3), "new connections are still accepted"
    assert idle.recv(100) == b"" and thread.is_alive()  # idle keep-alive: closed at once
    idle.close()
    thread.join(10)
    status, _h, body = result["r"]
    assert (status, body) == (200, b"slept")
    assert srv.proc.wait(10) == 0
    srv.err.wait_for(r"stopped \(2 request\(s\) served\)")


def test_graceful_timeout_closes_what_is_left(project):
    srv = start(project, args=("--graceful-timeout-ms", "200"))
    thread, result = _slow_request(srv, ms=5000)
    srv.err.wait_for("sleep started")
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(10) == 0
    assert time.monotonic() - started < 3
    srv.err.wait_for(r"graceful timeout \(200 ms\) reached with 1 request\(s\) unfinished")
    thread.join(10)
    assert "error" in result  # the client saw the connection close


def test_second_signal_exits_at_once(project):
    srv = start(project)
    _slow_request(srv, ms=5000)
    srv.err.wait_for("sleep started")
    srv.proc.send_signal(signal.SIGTERM)
    srv.err.wait_for("received SIGTERM")
    started = time.monotonic()
    srv.proc.send_signal(signal.SIGTERM)
    assert srv.proc.wait(10) == 143 and time.monotonic() - started < 2


def test_an_app_whose_global_state_fails_exits_1(project):
    project.write("state.py", "def make():\n    raise RuntimeError('no database')\n")
    project.write("app.py", "def app(environ, start_response):\n    pass\n")
    project.write("puff.toml", 'wsgi = "app:app"\nglobal_state = "state:make"\n')
    r = project.run("serve", "--bind", "127.0.0.1:0", timeout=20)
    assert r.returncode == 1 and "RuntimeError: no database" in r.stderr
    r = project.run("serve", "--bind", "127.0.0.1:0", "--workers", "2", timeout=20)
    assert r.returncode == 1 and "RuntimeError: no database" in r.stderr
    assert "before it was ready: the application cannot start" in r.stderr


# ---- workers ---------------------------------------------------------------------------------------


def _workers(srv, count=2):
    return [int(m.group(1)) for m in srv.err.wait_for(r"worker (\d+) ready", count=count)]


def test_workers_serve_restart_and_stop(project):
    srv = start(project, args=("--workers", "2"))
    try:
        pids = _workers(srv)
        seen = set()
        for _ in range(60):
            seen.add(int(srv.get("/pid")[2]))
            if seen == set(pids):
                break
        assert seen <= set(pids) and len(seen) >= 1
        env = json.loads(srv.get("/environ")[2])
        assert env["wsgi.multiprocess"] == ["bool", True]
        os.kill(pids[0], signal.SIGKILL)
        srv.err.wait_for(rf"worker {pids[0]} exited with signal 9 \(SIGKILL\); restarting")
        new = _workers(srv, count=3)[2]
        assert new not in pids and pid_alive(new)
        assert all(srv.alive() for _ in range(5))
    finally:
        code = srv.stop()
    assert code == 0, srv.err.text
    srv.err.wait_for("all workers stopped")
    assert not pid_alive(pids[1]) and not pid_alive(new)


def test_keep_alive_connections_are_spread_over_the_workers(project):
    # A burst of connections (opened before any request, as a load balancer's pool or wrk does)
    # lands on per-worker SO_REUSEPORT sockets: with one shared socket the first worker to wake
    # accepted nearly all of them (62 of 64) and did all the work.
    srv = start(project, args=("--workers", "2"))
    conns = []
    try:
        pids = _workers(srv)
        conns = [socket.create_connection((srv.host, srv.port), timeout=10) for _ in range(32)]
        served = []
        for c in conns:
            c.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
        for c in conns:
            status, _headers, body, _rest = read_response(c)
            assert status.startswith(b"HTTP/1.1 200"), status
            served.append(int(body))
    finally:
        for c in conns:
            c.close()
        assert srv.stop() == 0, srv.err.text
    counts = [served.count(pid) for pid in pids]
    assert sum(counts) == 32 and min(counts) >= 4, counts  # a 32-way hash split is never this uneven


def _cpus_of(pid):
    """The CPUs every thread of `pid` may run on, one set per thread."""
    return [os.sched_getaffinity(int(tid)) for tid in os.listdir(f"/proc/{pid}/task")]


@pytest.mark.parametrize("mode", ["auto", "off"])
def test_cpu_affinity_pins_each_worker_and_its_threads(project, mode):
    cpus = sorted(os.sched_getaffinity(0))
    workers = max(2, len(cpus))
    srv = start(project, args=("--workers", str(workers), "--cpu-affinity", mode))
    try:
        pids = _workers(srv, count=workers)
        assert srv.get("/hello")[2] == b"hello"
        per_worker = [_cpus_of(pid) for pid in pids]
    finally:
        assert srv.stop() == 0, srv.err.text
    for threads in per_worker:
        assert len(threads) >= 2  # the Python thread and at least one I/O thread
        if mode == "auto":
            assert all(len(t) == 1 for t in threads) and len({frozenset(t) for t in threads}) == 1
        else:
            assert all(t == set(cpus) for t in threads)
    if mode == "auto":  # round robin: every CPU gets a worker
        assert {next(iter(threads[0])) for threads in per_worker} == set(cpus)


def test_cpu_affinity_auto_needs_as_many_workers_as_cpus():
    from puff._supervisor import affinity_cpu
    cpus = sorted(os.sched_getaffinity(0))
    n = len(cpus)
    assert affinity_cpu("auto", 0, 1) is None  # one worker: its threads should spread
    assert affinity_cpu("off", 0, max(2, n)) is None
    if n >= 2:
        assert affinity_cpu("auto", 0, n - 1) is None
    workers = max(2, n) + 1  # more workers than CPUs: round robin
    assert [affinity_cpu("auto", i, workers) for i in range(workers)] == [cpus[i % n] for i in range(workers)]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_workers_finish_requests_in_flight(project, sig):
    srv = start(project, args=("--workers", "2"))
    _workers(srv)
    thread, result = _slow_request(srv)
    srv.err.wait_for("sleep started")
    srv.proc.send_signal(sig)
    name = signal.Signals(sig).name
    srv.err.wait_for(f"received {name}: stopping 2 worker")
    srv.err.wait_for(rf"worker \d+: received {name}: finishing requests in flight", count=2)
    assert wait_until(lambda: refused(srv.host, srv.port), timeout=10)  # generous: a loaded CI machine is slow to close
    thread.join(10)
    assert result["r"][0] == 200 and result["r"][2] == b"slept"
    assert srv.proc.wait(10) == 0


def test_workers_on_a_unix_socket(project, tmp_path):
    path = tmp_path / "w.sock"
    srv = start(project, args=("--workers", "2", "--bind", f"unix:{path}"))
    try:
        _workers(srv)
        for _ in range(4):
            with srv.connect() as s:
                s.sendall(b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                assert read_response(s)[2] == b"hello"
    finally:
        assert srv.stop() == 0
    assert not path.exists()


def test_workers_on_a_unix_socket_have_a_pep3333_environ(project, tmp_path):
    path = tmp_path / "w.sock"
    srv = start(project, args=("--workers", "2", "--bind", f"unix:{path}"))
    try:
        _workers(srv)
        with srv.connect() as s:
            s.sendall(b"GET /environ HTTP/1.1\r\nHost: example.com:8080\r\n\r\n")
            status, _h, body, _ = read_response(s)
        assert status == b"HTTP/1.1 200 OK", body
        env = json.loads(body)
        assert env["SERVER_NAME"] == ["str", "example.com"] and env["SERVER_PORT"] == ["str", "80"]
    finally:
        assert srv.stop() == 0


def test_supervisor_killed_takes_its_workers_along(project):
    srv = start(project, args=("--workers", "2"))
    pids = _workers(srv)
    srv.proc.kill()
    srv.proc.wait()
    assert wait_until(lambda: not any(pid_alive(p) for p in pids), timeout=10)
