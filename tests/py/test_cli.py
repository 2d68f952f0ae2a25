"""The `puff` command, black-box: each test runs the real console script in a scratch project."""

import contextlib
import os
import signal
import socket
import struct
import subprocess
import threading
import time
import tomllib

import pytest

from conftest import PUFF, wait_for_output

APP = """\
    import sys
    import puff

    def hello():
        puff.sleep_ms(5)
        print("hello from", sys.argv, puff.is_greenlet())
        return 42  # ignored

    async def ahello():
        await puff.sleep_ms(5)
        print("async hello", puff.is_asyncio())

    def echo(argv):
        print("argv", argv, "sys.argv", sys.argv)

    def star(*args):
        print("star", args)

    def two(a, b):
        pass

    def boom():
        def inner():
            raise ValueError("kaboom")
        inner()

    def leave(argv):
        sys.exit(int(argv[0]) if argv[0].isdigit() else argv[0])

    async def aleave():
        raise SystemExit(9)

    def sleeper():
        try:
            print("started", flush=True)
            while True:
                puff.sleep_ms(1000)
        finally:
            print("finally ran", flush=True)

    async def asleeper():
        try:
            print("started", flush=True)
            while True:
                await puff.sleep_ms(1000)
        finally:
            print("finally ran", flush=True)

    def make_state():
        raise RuntimeError("no state today")
"""
COMMANDS = ["hello", "ahello", "echo", "star", "two", "boom", "leave", "aleave", "sleeper", "asleeper"]


@pytest.fixture
def app(project):
    project.write("app.py", APP)
    project.write("puff.toml", "".join(f"[[commands]]\nfunction = 'app.{c}'\ncommand_name = '{c}'\n\n"
                                       for c in COMMANDS))
    return project


# ---- help, version, unknown commands -------------------------------------------------------------


def test_help_version_and_no_arguments(app):
    import puff

    r = app.run("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"puff {puff.__version__}"
    assert app.run("-V").stdout == r.stdout
    for args in ([], ["--help"]):
        r = app.run(*args)
        assert r.returncode == 0 and r.stdout.startswith("usage: puff")
        for name in ["python", "pytest", "wait_forever", "check", "config", "example-config", *COMMANDS]:
            assert f"    {name} " in r.stdout
        assert "Execute python function `app.hello` in a Puff context." in " ".join(r.stdout.split())
        assert "django" not in r.stdout  # only with django = true


def test_options_without_a_command(app):
    r = app.run("--io-threads", "2")
    assert r.returncode == 2 and "a command is required" in r.stderr


def test_unknown_command_suggests(app):
    r = app.run("helo")
    assert r.returncode == 2 and "unknown command 'helo'" in r.stderr and "did you mean 'hello'?" in r.stderr


@pytest.mark.parametrize("name", ["serve", "runserver"])
def test_serve_without_an_app_is_a_config_error(app, name):
    # Serving itself is tested in test_serve*.py.
    r = app.run(name, "--bind", "0.0.0.0:7777")
    assert r.returncode == 2 and "nothing to serve" in r.stderr and "--wsgi" in r.stderr


# ---- [[commands]] --------------------------------------------------------------------------------


def test_plain_and_async_commands(app):
    r = app.run("hello")
    assert (r.returncode, r.stdout) == (0, "hello from ['hello'] True\n"), r.stderr
    r = app.run("ahello")
    assert (r.returncode, r.stdout) == (0, "async hello True\n"), r.stderr


def test_argument_passing(app):
    r = app.run("echo", "a", "-b", "--c=d", "--help")
    assert r.stdout == "argv ['a', '-b', '--c=d', '--help'] sys.argv ['echo', 'a', '-b', '--c=d', '--help']\n"
    assert app.run("echo").stdout == "argv [] sys.argv ['echo']\n"
    assert app.run("star", "x", "y").stdout == "star (['x', 'y'],)\n"
    r = app.run("hello", "x")
    assert r.returncode == 2 and "command 'hello' takes no arguments" in r.stderr
    r = app.run("hello", "--help")
    assert r.returncode == 0 and "usage: puff hello" in r.stdout
    r = app.run("two")
    assert r.returncode == 2 and "has signature (a, b)" in r.stderr and "puff.toml:18:" in r.stderr


def test_failing_command_exits_1_with_a_traceback(app):
    r = app.run("boom")
    assert r.returncode == 1
    assert r.stderr.startswith("Traceback (most recent call last):\n"), r.stderr
    assert "in boom" in r.stderr and "in inner" in r.stderr and "ValueError: kaboom" in r.stderr
    assert "_runtime.py" not in r.stderr and "cli.py" not in r.stderr


@pytest.mark.parametrize("args, code, err", [
    (["leave", "0"], 0, ""),
    (["leave", "3"], 3, ""),
    (["leave", "bye now"], 1, "bye now\n"),
    (["aleave"], 9, ""),
])
def test_system_exit_status_is_propagated(app, args, code, err):
    r = app.run(*args)
    assert (r.returncode, r.stderr) == (code, err)


@pytest.mark.parametrize("cmd", ["sleeper", "asleeper"])
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_a_command_cleanly(app, cmd, sig, code):
    proc = app.popen(cmd)
    try:
        wait_for_output(proc, "started")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "finally ran" in out


def test_async_command_gets_global_state_made_in_a_greenlet(project):
    project.write("app.py", """\
        import puff

        def make_state():
            puff.sleep_ms(1)  # a greenlet, even though the command is a coroutine
            return "state-" + str(puff.is_greenlet())

        async def main():
            await puff.sleep_ms(1)
            print(puff.global_state, puff.is_asyncio())
    """)
    project.write("puff.toml", "global_state = 'app.make_state'\n[[commands]]\nfunction = 'app.main'\n"
                               "command_name = 'main'\n")
    r = project.run("main")
    assert (r.returncode, r.stdout) == (0, "state-True True\n"), r.stderr


def test_global_state_factory_failure_exits_1(app):
    app.write("puff.toml", "global_state = 'app:make_state'\n" + (app.root / "puff.toml").read_text())
    r = app.run("hello")
    assert r.returncode == 1 and "RuntimeError: no state today" in r.stderr and "in make_state" in r.stderr


# ---- puff python ---------------------------------------------------------------------------------


def test_python_c_runs_in_a_greenlet(project):
    r = project.run("python", "-c", 'import puff, sys; puff.sleep_ms(5); print("ok", __name__, sys.argv)',
                    "x", "-y")
    assert (r.returncode, r.stdout) == (0, "ok __main__ ['-c', 'x', '-y']\n"), r.stderr


def test_python_script(project):
    script = project.write("scripts/job.py", """\
        import os, sys
        import puff
        import helper  # next to the script: sys.path[0] is the script's directory
        puff.sleep_ms(5)
        print(__name__, sys.argv, os.path.basename(sys.path[0]), helper.VALUE)
        if "--fail" in sys.argv:
            raise KeyError("bad key")
        sys.exit(len(sys.argv))
    """)
    project.write("scripts/helper.py", "VALUE = 'helped'\n")
    r = project.run("python", "scripts/job.py", "a", "b")
    assert r.returncode == 3, r.stderr
    assert r.stdout == "__main__ ['scripts/job.py', 'a', 'b'] scripts helped\n"
    r = project.run("python", str(script), "--fail")
    assert r.returncode == 1 and "KeyError: 'bad key'" in r.stderr and "job.py\", line 7" in r.stderr


def test_python_module_stdin_and_errors(project):
    project.write("pkg/__init__.py")
    project.write("pkg/__main__.py", "import sys, puff\npuff.sleep_ms(1)\nprint('pkg main', sys.argv[1:])\n")
    r = project.run("python", "-m", "pkg", "q")
    assert (r.returncode, r.stdout) == (0, "pkg main ['q']\n"), r.stderr
    code = "import puff, sys\npuff.sleep_ms(1)\nprint('stdin', sys.argv)\n"
    r = project.run("python", "-", "arg", input=code)
    assert r.stdout == "stdin ['-', 'arg']\n"
    for args, message in [(["missing.py"], "can't open file 'missing.py'"),
                          (["-m", "no_such_module"], "no module named 'no_such_module'"),
                          (["-c"], "-c needs an argument"),
                          (["-X", "dev"], "unknown option '-X'")]:
        r = project.run("python", *args)
        assert r.returncode == 2 and message in r.stderr
    assert "usage: puff python" in project.run("python", "--help").stdout


def test_python_repl(project):
    r = project.run("python", input="import puff\npuff.sleep_ms(2)\nx = 6 * 7\nprint('answer', x)\n")
    assert r.returncode == 0, r.stderr
    assert "answer 42" in r.stdout and "Puff calls work here" in r.stderr


def test_python_repl_ctrl_c_interrupts_the_statement_not_the_console(project):
    proc = subprocess.Popen([str(PUFF), "python"], cwd=project.root, env=project.env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write("import puff\nprint('waiting')\npuff.sleep_ms(20000)\n")
        proc.stdin.flush()
        wait_for_output(proc, "waiting")
        time.sleep(0.5)  # let the console enter puff.sleep_ms
        proc.send_signal(signal.SIGINT)
        proc.stdin.write("print('still here', 6 * 7)\n")
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
    assert "still here 42" in proc.stdout.read()
    assert "KeyboardInterrupt" in proc.stderr.read()


# ---- puff pytest ---------------------------------------------------------------------------------

TESTS = """\
    import puff

    def test_in_a_greenlet():
        puff.sleep_ms(2)
        assert puff.is_greenlet()

    def test_maybe_fails():
        import os
        assert not os.environ.get("MAKE_IT_FAIL")
"""


def test_pytest_exit_status(project):
    project.write("test_things.py", TESTS)
    r = project.run("pytest", "-q", "-p", "no:cacheprovider")
    assert r.returncode == 0 and "2 passed" in r.stdout, r.stdout + r.stderr
    r = project.run("pytest", "-q", "-p", "no:cacheprovider", env={"MAKE_IT_FAIL": "1"})
    assert r.returncode == 1 and "1 failed, 1 passed" in r.stdout
    r = project.run("pytest", "-q", "-p", "no:cacheprovider", "-k", "nothing_matches")
    assert r.returncode == 5


def test_pytest_help_reaches_pytest(project):
    r = project.run("pytest", "-h")
    assert r.returncode == 0 and "usage: pytest" in r.stdout and "--rootdir" in r.stdout


def test_pytest_path_is_the_root(project):
    project.write("tests/test_things.py", TESTS)
    project.write("tests/test_where.py",
                  "import os\ndef test_cwd():\n    assert os.path.basename(os.getcwd()) == 'tests'\n")
    project.write("puff.toml", "pytest_path = 'tests'\n")
    r = project.run("pytest", "-q", "-p", "no:cacheprovider")
    assert r.returncode == 0 and "3 passed" in r.stdout, r.stdout + r.stderr
    project.write("puff.toml", "pytest_path = 'nowhere'\n")
    r = project.run("pytest")
    assert r.returncode == 2 and "puff.toml:1:" in r.stderr and "'nowhere' is not a directory" in r.stderr


# ---- puff django ---------------------------------------------------------------------------------

FAKE_DJANGO = """\
    import sys
    import puff

    class ManagementUtility:
        def __init__(self, argv):
            self.argv = argv

        def execute(self):
            puff.sleep_ms(1)
            print("management", self.argv, sys.argv)
            if "fail" in self.argv:
                sys.exit(3)
"""


def test_help_works_with_a_broken_puff_toml(project):
    project.write("puff.toml", "bogus = = 1\n")
    for args in (["--help"], [], ["serve", "--help"]):
        r = project.run(*args)
        assert r.returncode == 0 and "usage: puff" in r.stdout, (args, r.stderr)
        assert "puff.toml:1: invalid TOML" in r.stderr
    r = project.run("serve")
    assert r.returncode == 2 and "puff.toml:1: invalid TOML" in r.stderr and "usage" not in r.stdout


def test_django_command(project):
    r = project.run("django", "migrate")
    assert r.returncode == 2 and "needs `django = true`" in r.stderr
    project.write("puff.toml", "django = true\n")
    # The venv has Django (for the serve tests): shadow it with one that cannot be imported.
    project.write("django/__init__.py", "raise ImportError('No module named django')\n")
    r = project.run("django", "migrate")
    assert r.returncode == 2 and "needs Django" in r.stderr and "pip install django" in r.stderr
    project.write("django/__init__.py")
    project.write("django/core/__init__.py")
    project.write("django/core/management/__init__.py", FAKE_DJANGO)
    assert "django" in project.run("--help").stdout
    r = project.run("django", "migrate", "--noinput")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("management ['puff django', 'migrate', '--noinput'] "
                        "['puff django', 'migrate', '--noinput']\n")
    assert project.run("django", "fail").returncode == 3
    r = project.run("django", "runserver")
    assert r.returncode == 2 and "not supported" in r.stderr
    # --parallel is refused before Django runs (it would create the test database first).
    for parallel in (["--parallel"], ["--parallel", "2"], ["--parallel=auto"], ["--parallel", "auto"]):
        r = project.run("django", "test", *parallel)
        assert r.returncode == 2 and "--parallel` is not supported" in r.stderr and "management" not in r.stdout
    for one in (["--parallel", "1"], ["--parallel=1"], ["--", "--parallel"]):
        r = project.run("django", "test", *one)
        assert r.returncode == 0 and "management" in r.stdout, r.stderr


# ---- puff wait_forever ---------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_wait_forever_stops_on_a_signal_with_status_0(project, sig):
    proc = project.popen("wait_forever")
    try:
        wait_for_output(proc, "Program will now wait forever.", stream="stderr")
        t0 = time.monotonic()
        proc.send_signal(sig)
        proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert time.monotonic() - t0 < 3


# ---- puff check ----------------------------------------------------------------------------------


@contextlib.contextmanager
def fake_server(*replies: bytes):
    """A TCP server on 127.0.0.1 that answers each read with the next of ``replies``."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.1)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(3)
                try:
                    for reply in replies:
                        if not conn.recv(4096):
                            break
                        conn.sendall(reply)
                    conn.recv(4096)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield srv.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        srv.close()


def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as s:
        return s.getsockname()[1]


def pg_message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!i", len(payload) + 4) + payload


def test_check_against_a_closed_port(project):
    port = closed_port()
    project.write("puff.toml", f"[[redis]]\nurl = 'redis://:hunter2@127.0.0.1:{port}'\n")
    r = project.run("check")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"default redis redis://:***@127.0.0.1:{port}: FAILED (connection refused)" in r.stdout
    assert "hunter2" not in r.stdout


def test_check_against_fake_servers(project):
    md5 = pg_message(b"R", struct.pack("!ii", 5, 1234))
    pg_error = pg_message(b"E", b"SFATAL\0C3D000\0Mdatabase \"nope\" does not exist\0\0")
    with fake_server(b"+PONG\r\n") as redis_port, \
            fake_server(b"+OK\r\n", b"+PONG\r\n") as auth_port, \
            fake_server(b"-NOAUTH Authentication required.\r\n") as noauth_port, \
            fake_server(md5) as pg_port, fake_server(pg_error) as pg_err_port:
        project.write("puff.toml", f"""\
            [[redis]]
            url = "redis://127.0.0.1:{redis_port}"
            [[pubsub]]
            url = "redis://user:pw@127.0.0.1:{auth_port}/0"
            [[task_queue]]
            url = "redis://127.0.0.1:{noauth_port}"
            [[postgres]]
            url = "postgres://me:pw@127.0.0.1:{pg_port}/db"
            [[postgres]]
            name = "other"
            url = "postgres://me@127.0.0.1:{pg_err_port}/nope"
        """)
        r = project.run("check")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "config puff.toml: ok"
    assert any(line.startswith(f"default redis redis://127.0.0.1:{redis_port}: ok (") for line in lines)
    assert f"default pubsub redis://user:***@127.0.0.1:{auth_port}/0: ok (" in r.stdout
    assert any("default task_queue" in line and "authentication is required" in line for line in lines)
    assert any(line.startswith(f"default postgres postgres://me:***@127.0.0.1:{pg_port}/db: ok (")
               and "auth: md5" in line for line in lines)
    assert any("other postgres" in line and 'database "nope" does not exist' in line for line in lines)


def test_check_against_something_else(project):
    with fake_server(b"HTTP/1.1 400 Bad Request\r\n\r\n") as port:
        project.write("puff.toml", f"[[redis]]\nurl = 'redis://127.0.0.1:{port}'\n"
                                   f"[[postgres]]\nurl = 'postgres://127.0.0.1:{port}/x'\n")
        r = project.run("check")
    assert r.returncode == 1
    assert "FAILED (not a Redis server?" in r.stdout and "FAILED (not a Postgres server?" in r.stdout


def test_check_imports_dotted_paths(project):
    project.write("puff.toml", "[[commands]]\nfunction = 'os.getcwd'\ncommand_name = 'cwd'\n"
                               "[[commands]]\nfunction = 'os.nope'\ncommand_name = 'nope'\n")
    r = project.run("check")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "[[commands]] cwd os.getcwd: ok" in r.stdout
    assert "[[commands]] nope os.nope: FAILED (" in r.stdout and "has no attribute 'nope'" in r.stdout
    assert "no pools configured" in r.stdout


def test_check_covers_what_serve_needs(project):
    # Mounted apps import, [[static]] directories exist, TLS files are readable: what `puff serve`
    # would refuse with status 2, `puff check` reports first.
    project.write("hello.py", "def app(environ, start_response):\n    pass\n")
    project.write("puff.toml", 'wsgi = "hello:app"\n[[mount]]\nprefix = "/api"\nasgi = "nomod:app"\n'
                               '[[static]]\nurl = "/s/"\ndirectory = "nodir"\n'
                               '[server]\ncertfile = "cert.pem"\nkeyfile = "key.pem"\n')
    r = project.run("check")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "wsgi hello:app: ok" in r.stdout
    assert "[[mount]] /api asgi nomod:app: FAILED (" in r.stdout and "No module named 'nomod'" in r.stdout
    assert "[[static]] directories: FAILED ([[static]] '/s/': directory 'nodir' does not exist" in r.stdout
    assert "TLS files: FAILED ([server] certfile 'cert.pem' is missing or not readable)" in r.stdout
    (project.root / "nodir").mkdir()
    (project.root / "cert.pem").write_text("x")
    (project.root / "key.pem").write_text("x")
    project.write("puff.toml", 'wsgi = "hello:app"\n[[mount]]\nprefix = "/api"\nwsgi = "hello:app"\n'
                               '[[static]]\nurl = "/s/"\ndirectory = "nodir"\n'
                               '[server]\ncertfile = "cert.pem"\nkeyfile = "key.pem"\n')
    r = project.run("check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[[mount]] /api wsgi hello:app: ok" in r.stdout
    assert "[[static]] directories: ok" in r.stdout and "TLS files: ok" in r.stdout


@pytest.mark.parametrize("kind, var", [("redis", "PUFF_TEST_REDIS_URL"),
                                       ("postgres", "PUFF_TEST_POSTGRES_URL")])
def test_check_against_real_services(project, kind, var):
    url = os.environ.get(var)
    if not url:
        pytest.skip(f"{var} is not set")
    project.write("puff.toml", f"[[{kind}]]\n")
    r = project.run("check", env={f"PUFF_DEFAULT_{kind.upper()}_URL": url})
    assert r.returncode == 0, r.stdout
    assert f"default {kind} " in r.stdout and ": ok (" in r.stdout


def test_config_command_output_loads(app):
    r = app.run("config")
    assert r.returncode == 0
    assert [c["command_name"] for c in tomllib.loads(r.stdout)["commands"]] == COMMANDS
