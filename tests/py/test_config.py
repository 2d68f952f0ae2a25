"""puff.toml, .env, PUFF_* variables and flags, seen through the `puff` command."""

import re
import tomllib
from pathlib import Path

import pytest

from puff import _dotenv
from puff.config import ConfigError, import_object

SHOW = """\
    import puff, puff.config
    from puff import _runtime

    def show(argv):
        cfg = puff.config.current
        opts = _runtime.options()
        for kind, name in (a.split(":") for a in argv):
            if kind == "runtime":
                print(name, "=", getattr(opts, name), "|", cfg.sources.get("runtime." + name, "-"))
            else:
                pool = cfg.pool(kind, name)
                print(kind, name, pool.url, "|", cfg.sources[kind + "." + name + ".url"])
"""
SHOW_CMD = """
[[commands]]
function = "show_mod:show"
command_name = "show"
"""


def test_missing_default_file_means_defaults(project):
    r = project.run("config")
    assert r.returncode == 0, r.stderr
    data = tomllib.loads(r.stdout)
    assert "no puff.toml" in r.stdout
    assert data["asyncio"] is False and data["dotenv"] is True and data["add_cwd_to_path"] is True
    assert data["runtime"] == {"io_threads": 0, "blocking_threads": 32, "spin_us": 50,
                               "shutdown_timeout_ms": 10000, "uvloop": True}
    assert data["http_client"] == [{"name": "default", "http2_prior_knowledge": False}]


@pytest.mark.parametrize("how", ["env", "flag"])
def test_missing_explicit_file_is_an_error(project, how):
    if how == "env":
        r = project.run("config", env={"PUFF_CONFIG": "nope.toml"})
    else:
        r = project.run("--config", "nope.toml", "config")
    assert r.returncode == 2
    assert "nope.toml" in r.stderr and "does not exist" in r.stderr
    assert ("PUFF_CONFIG" if how == "env" else "--config") in r.stderr


def test_config_path_from_env_and_flag(project):
    project.write("a.toml", "asyncio = true\n")
    project.write("b.toml", "django = true\n")
    r = project.run("config", env={"PUFF_CONFIG": "a.toml"})
    assert tomllib.loads(r.stdout)["asyncio"] is True
    r = project.run("--config", "b.toml", "config", env={"PUFF_CONFIG": "a.toml"})  # the flag wins
    data = tomllib.loads(r.stdout)
    assert data["django"] is True and data["asyncio"] is False
    r = project.run("--config=b.toml", "config")
    assert tomllib.loads(r.stdout)["django"] is True


# ---- errors: exit 2, file, line, a useful message ----------------------------------------------


def check_error(project, toml, *fragments, args=("config",), env=None):
    project.write("puff.toml", toml)
    r = project.run(*args, env=env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    for fragment in fragments:
        assert fragment in r.stderr, r.stderr
    return r.stderr


def test_toml_syntax_error_names_file_and_line(project):
    check_error(project, "django = true\n\nasyncio = tru\n", "puff.toml:3:", "invalid TOML")


def test_unknown_top_level_key_suggests(project):
    check_error(project, "django = true\ndjanog = false\n", "puff.toml:2:", "unknown key 'djanog'",
                "did you mean 'django'?")


def test_unknown_key_in_second_pool_entry(project):
    toml = """\
        [[postgres]]
        name = "a"

        [[postgres]]
        name = "b"
        pool_sise = 3
    """
    check_error(project, toml, "puff.toml:6:", "unknown key 'pool_sise' in [[postgres]]",
                "did you mean 'pool_size'?")


@pytest.mark.parametrize("toml, line, fragment", [
    ("[runtime]\nio_thread = 2\n", 2, "did you mean 'io_threads'?"),
    ("[cors]\nmax_age = 5\n", 2, "did you mean 'max_age_secs'?"),
    ("[[graphql]]\nschema = 'a.S'\nsubscriptions_urls = '/s'\n", 3, "did you mean 'subscriptions_url'?"),
    ("[[task_queue]]\nmax_concurrent = 3\n", 2, "did you mean 'max_concurrent_tasks'?"),
])
def test_unknown_keys_in_tables(project, toml, line, fragment):
    check_error(project, toml, f"puff.toml:{line}:", "unknown key", fragment)


@pytest.mark.parametrize("toml, line, fragments", [
    ('asyncio = "yes"\n', 1, ["'asyncio' must be a boolean", 'got string "yes"']),
    ('[[redis]]\npool_size = "10"\n', 2, ["'pool_size' must be an integer", 'got string "10"']),
    ("[runtime]\nuvloop = 1\n", 2, ["'uvloop' must be a boolean", "got integer 1"]),
    ("pytest_path = ['a']\n", 1, ["'pytest_path' must be a string", "got array"]),
    ("[[http_client]]\nmax_idle_connections = 1.5\n", 2, ["must be an integer", "got float 1.5"]),
])
def test_wrong_types(project, toml, line, fragments):
    check_error(project, toml, f"puff.toml:{line}:", *fragments)


@pytest.mark.parametrize("toml, line, fragment", [
    ("[postgres]\nname = 'x'\n", 1, "write [[postgres]], not [postgres]"),
    ("redis = true\n", 1, "'redis' must be an array of tables"),
    ("wsgi = 'app'\n", 1, "dotted path like 'package.module.attr'"),
    ("[[commands]]\nfunction = 'a.b'\n", 1, "'command_name' is required"),
    ("[[commands]]\nfunction = 'a.b'\ncommand_name = 'python'\n", 3, "is a built-in puff command"),
    ("[[commands]]\nfunction = 'a.b'\ncommand_name = 'x'\n[[commands]]\nfunction = 'a.c'\n"
     "command_name = 'x'\n", 6, "duplicate command_name \"x\" (first defined at line 1)"),
    ("[[redis]]\n[[redis]]\nname = 'default'\n", 3, "duplicate name \"default\""),
    ("[[redis]]\nname = 'bad name'\n", 2, "'name' must be letters, digits"),
    ("[[postgres]]\nurl = 'mysql://x/y'\n", 2, "the scheme must be postgres:// or postgresql://"),
    ("[[pubsub]]\nurl = 'redis://h:notaport'\n", 2, "invalid URL"),
    ("[[redis]]\npool_size = 0\n", 2, "'pool_size' must be >= 1"),
    ("[runtime]\nblocking_threads = 0\n", 2, "'blocking_threads' must be >= 1"),
    ("[cors]\nbase_config = 'permissive'\n", 2, "did you mean 'Permissive'?"),
    ("[cors]\nallowed_origins = ['http://a.com/path']\n", 2, "must be http(s)://host[:port]"),
    ("[cors]\nallowed_methods = 'GET'\n", 2, "must be \"*\" or an array of strings"),
    ("[cors]\nexpose_headers = ['a b']\n", 2, "not a valid token"),
    ("[[static]]\ndirectory = 'x'\n", 1, "[[static]]: 'url' is required"),
    ("[[static]]\nurl = 'static/'\ndirectory = 'x'\n", 2, "'url' must be a URL path starting with '/'"),
    ("[[static]]\nurl = '/a b/'\ndirectory = 'x'\n", 2, "'url' must be a URL path starting with '/'"),
    ("[[static]]\nurl = '/s/'\ndirectory = 'x'\nindex = 'a/b.html'\n", 4, "'index' must be a file name"),
    ("[[static]]\nurl = '/s/'\ndirectory = 'x'\nmax_age = -1\n", 4, "'max_age' must be >= 0"),
    ("[[static]]\nurl = '/s/'\ndirectory = 'x'\n[[static]]\nurl = '/s/'\ndirectory = 'y'\n", 5,
     "duplicate url \"/s/\" (first defined at line 1)"),
    ("[[graphql]]\nurl = '/g'\n", 1, "'schema' is required"),
    ("[[graphql]]\nschema = 'a.S'\nplayground_url = '/p'\n", 3, "'playground_url' needs 'url'"),
    ("[[graphql]]\nschema = 'a.S'\nurl = 'graphql'\n", 3, "must be a path starting with '/'"),
    ("[[postgres]]\nname = 'main'\n[[graphql]]\nschema = 'a.S'\ndatabase = 'mian'\n", 5,
     "did you mean 'main'?"),
    ("[[graphql]]\nschema = 'a.S'\nsubscription_url = '/a'\nsubscriptions_url = '/b'\n", 4,
     "set either 'subscription_url' or 'subscriptions_url'"),
    ("[[http_client]]\nuser_agent = \"a\\nb\"\n", 2, "not a valid header value"),
])
def test_bad_values(project, toml, line, fragment):
    check_error(project, toml, f"puff.toml:{line}:", fragment)


def test_import_failures_name_module_or_attribute(project):
    project.write("mymod.py", "def hello():\n    pass\n")
    project.write("broken.py", "import json\nimport not_installed_dep\n")
    toml = """\
        [[commands]]
        function = "mymod.helo"
        command_name = "attr"

        [[commands]]
        function = "nomod:func"
        command_name = "nomod"

        [[commands]]
        function = "broken.func"
        command_name = "broken"

        [[commands]]
        function = "mymod.sub.func"
        command_name = "sub"
    """
    project.write("puff.toml", toml)
    r = project.run("attr")
    assert r.returncode == 2
    assert "puff.toml:2:" in r.stderr and "module 'mymod' has no attribute 'helo'" in r.stderr
    assert "did you mean 'hello'?" in r.stderr
    r = project.run("nomod")
    assert r.returncode == 2 and "puff.toml:6:" in r.stderr and "No module named 'nomod'" in r.stderr
    r = project.run("broken")
    assert r.returncode == 2 and "puff.toml:10:" in r.stderr
    assert "importing module 'broken' failed" in r.stderr
    assert "Traceback (most recent call last)" in r.stderr
    assert 'broken.py", line 2' in r.stderr and "No module named 'not_installed_dep'" in r.stderr
    r = project.run("sub")
    assert r.returncode == 2 and "No module named 'mymod.sub'" in r.stderr


def test_global_state_import_failure(project):
    check_error(project, "global_state = 'nowhere:make'\n[[commands]]\nfunction='os.getcwd'\n"
                         "command_name='x'\n", "puff.toml:1:", "global_state 'nowhere:make'",
                "No module named 'nowhere'", args=("x",))


@pytest.mark.parametrize("env, fragment", [
    ({"PUFF_IO_THREADS": "many"}, "env PUFF_IO_THREADS: expected an integer, got 'many'"),
    ({"PUFF_UVLOOP": "maybe"}, "env PUFF_UVLOOP: expected a boolean"),
    ({"PUFF_BLOCKING_THREADS": "0"}, "env PUFF_BLOCKING_THREADS: must be >= 1"),
    ({"PUFF_DEFAULT_REDIS_URL": "http://x"}, "env PUFF_DEFAULT_REDIS_URL: invalid redis URL"),
])
def test_bad_environment_values(project, env, fragment):
    check_error(project, "[[redis]]\n", fragment, env=env)


def test_bad_flag_values(project):
    project.write("puff.toml", "[[redis]]\n")
    r = project.run("--default-redis-url", "postgres://x/y", "config")
    assert r.returncode == 2 and "flag --default-redis-url: invalid redis URL" in r.stderr
    r = project.run("--spin-us", "fast", "config")
    assert r.returncode == 2 and "--spin-us: invalid int value" in r.stderr


# ---- precedence: flags > PUFF_* > puff.toml > defaults ------------------------------------------


def test_pool_url_precedence(project):
    project.write("show_mod.py", SHOW)
    project.write("puff.toml", SHOW_CMD + """
        [[postgres]]
        name = "main"
        url = "postgres://toml@h1/db"

        [[postgres]]
        name = "other"
    """)
    arg = ["show", "postgres:main", "postgres:other"]
    r = project.run(*arg)
    assert r.returncode == 0, r.stderr
    assert "postgres main postgres://toml@h1/db | puff.toml" in r.stdout
    assert "postgres other postgres://postgres:password@localhost:5432/postgres | default" in r.stdout
    env = {"PUFF_MAIN_POSTGRES_URL": "postgres://env@h2/db", "PUFF_OTHER_POSTGRES_URL": "postgres://e@h/o"}
    r = project.run(*arg, env=env)
    assert "postgres main postgres://env@h2/db | env PUFF_MAIN_POSTGRES_URL" in r.stdout
    assert "postgres other postgres://e@h/o | env PUFF_OTHER_POSTGRES_URL" in r.stdout
    r = project.run("--main-postgres-url", "postgres://flag@h3/db", *arg, env=env)
    assert "postgres main postgres://flag@h3/db | flag --main-postgres-url" in r.stdout
    assert "postgres other postgres://e@h/o" in r.stdout


def test_runtime_setting_precedence(project):
    project.write("show_mod.py", SHOW)
    project.write("puff.toml", SHOW_CMD + "[runtime]\nblocking_threads = 5\nuvloop = false\n")
    arg = ["show", "runtime:blocking_threads", "runtime:spin_us", "runtime:uvloop"]
    r = project.run(*arg)
    assert r.returncode == 0, r.stderr
    assert "blocking_threads = 5 | -" in r.stdout and "spin_us = 50 | -" in r.stdout
    assert "uvloop = False" in r.stdout
    env = {"PUFF_BLOCKING_THREADS": "6", "PUFF_UVLOOP": "yes"}
    r = project.run(*arg, env=env)
    assert "blocking_threads = 6 | env PUFF_BLOCKING_THREADS" in r.stdout and "uvloop = True" in r.stdout
    r = project.run("--blocking-threads", "7", "--spin-us", "0", "--no-uvloop", *arg, env=env)
    assert "blocking_threads = 7 | flag --blocking-threads" in r.stdout
    assert "spin_us = 0 | flag --spin-us" in r.stdout and "uvloop = False | flag --uvloop" in r.stdout


def test_config_command_shows_sources_and_hides_passwords(project):
    project.write("puff.toml", "[[redis]]\nname = 'cache'\n[[task_queue]]\n")
    r = project.run("--io-threads", "3", "config",
                    env={"PUFF_CACHE_REDIS_URL": "redis://:s3cret@cachehost:6380/1"})
    assert r.returncode == 0, r.stderr
    assert "s3cret" not in r.stdout
    assert 'url = "redis://:***@cachehost:6380/1"  # from env PUFF_CACHE_REDIS_URL' in r.stdout
    assert "io_threads = 3  # from flag --io-threads" in r.stdout
    data = tomllib.loads(r.stdout)
    assert data["task_queue"][0]["url"] == "redis://localhost:6379"
    assert data["task_queue"][0]["max_concurrent_tasks"] >= 4


def test_every_named_pool_gets_a_flag_and_variable(project):
    project.write("puff.toml", """\
        [[postgres]]
        [[postgres]]
        name = "readonly"
        [[postgres]]
        name = "off"
        enable = false
        [[redis]]
        name = "other"
        [[pubsub]]
        [[task_queue]]
        name = "jobs"
    """)
    r = project.run("--help")
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    for flag, var in [("--default-postgres-url", "PUFF_DEFAULT_POSTGRES_URL"),
                      ("--readonly-postgres-url", "PUFF_READONLY_POSTGRES_URL"),
                      ("--other-redis-url", "PUFF_OTHER_REDIS_URL"),
                      ("--default-pubsub-url", "PUFF_DEFAULT_PUBSUB_URL"),
                      ("--jobs-task-queue-url", "PUFF_JOBS_TASK_QUEUE_URL")]:
        assert flag in out and var in out
    assert "--off-postgres-url" not in out  # disabled entries are skipped
    assert "postgres://postgres:***@localhost:5432/postgres" in out and "redis://localhost:6379" in out
    assert "--io-threads" in out and "PUFF_IO_THREADS" in out and "--no-uvloop" in out


# ---- the seed's forms, every key, example-config -----------------------------------------------


def test_seed_forms_are_accepted(project):
    project.write("puff.toml", """\
        pytest = true
        [[postgres]]
        [[graphql]]
        schema = "my_app.Schema"
        url = "/graphql/"
        subscriptions_url = "/subscriptions/"
        database = "default"
    """)
    r = project.run("config")
    assert r.returncode == 0, r.stderr
    data = tomllib.loads(r.stdout)
    assert data["pytest_path"] == "./"
    assert data["graphql"][0]["subscription_url"] == "/subscriptions/"


def test_example_config_round_trip(project):
    for name in ("example-config", "example_config"):
        r = project.run(name)
        assert r.returncode == 0 and "[[commands]]" in r.stdout
    tomllib.loads(r.stdout)
    project.write("puff.toml", r.stdout)
    c = project.run("config")
    assert c.returncode == 0, c.stderr
    data = tomllib.loads(c.stdout)
    assert [p["name"] for p in data["postgres"]] == ["default"]
    assert data["task_queue"][0]["max_concurrent_tasks"] == 100
    assert data["graphql"][0]["database"] == "default"
    assert data["cors"]["allowed_headers"] == "*"
    h = project.run("--help")
    assert h.returncode == 0 and "execute_func" in h.stdout


def test_example_config_works_even_with_a_broken_config(project):
    project.write("puff.toml", "this is not toml\n")
    assert project.run("example-config").returncode == 0
    assert project.run("config").returncode == 2


# ---- .env ----------------------------------------------------------------------------------------

ENV_CMD = SHOW_CMD.replace("show_mod:show", "env_mod:show")
ENV_MOD = "import os\ndef show(argv):\n    print([os.environ.get(k) for k in argv])\n"


def test_dotenv_is_loaded_and_environment_wins(project):
    project.write("env_mod.py", ENV_MOD)
    project.write("puff.toml", ENV_CMD)
    project.write(".env", "A=from_file\nexport B='two words'  \nC=\"x ${A}\" # note\n")
    r = project.run("show", "A", "B", "C")
    assert r.stdout.strip() == "['from_file', 'two words', 'x from_file']", r.stderr
    r = project.run("show", "A", "C", env={"A": "outside"})
    assert r.stdout.strip() == "['outside', 'x outside']"


def test_dotenv_found_in_a_parent_directory_and_sets_pool_urls(project):
    project.write("env_mod.py", ENV_MOD)
    project.write("show_mod.py", SHOW)
    project.write(".env", "PUFF_DEFAULT_REDIS_URL=redis://fromdotenv:1\n")
    sub = project.root / "sub"
    sub.mkdir()
    (sub / "puff.toml").write_text(SHOW_CMD + "[[redis]]\n")
    env = {"PYTHONPATH": str(project.root)}
    r = project.run("show", "redis:default", cwd=sub, env=env)
    assert r.returncode == 0, r.stderr
    assert "redis default redis://fromdotenv:1 | env PUFF_DEFAULT_REDIS_URL (from " in r.stdout


def test_dotenv_false_and_dotenv_path(project):
    project.write("env_mod.py", ENV_MOD)
    project.write(".env", "A=default_file\n")
    project.write("other.env", "A=other_file\n")
    project.write("puff.toml", "dotenv = false\n" + ENV_CMD)
    assert project.run("show", "A").stdout.strip() == "[None]"
    project.write("puff.toml", "dotenv_path = 'other.env'\n" + ENV_CMD)
    assert project.run("show", "A").stdout.strip() == "['other_file']"
    project.write("puff.toml", "dotenv_path = 'missing.env'\n" + ENV_CMD)
    r = project.run("show", "A")
    assert r.returncode == 2 and "puff.toml:1:" in r.stderr and "'missing.env' does not exist" in r.stderr


def test_bad_dotenv_line(project):
    project.write(".env", "A=1\nthis line is wrong\n")
    r = project.run("config")
    assert r.returncode == 2 and ".env:2:" in r.stderr and "expected KEY=VALUE" in r.stderr


def test_dotenv_parser_details():
    text = ('export A=1\n# c\n\nB = " spaced\\n"\nC=\'lit ${A}\'\nD=${A}${NOPE:-dflt}\n'
            'E="multi\nline"\nF=a#b\n')
    assert _dotenv.parse(text, environ={}) == {
        "A": "1", "B": " spaced\n", "C": "lit ${A}", "D": "1dflt", "E": "multi\nline", "F": "a#b"}
    with pytest.raises(_dotenv.DotenvError, match=r"x.env:2: unterminated"):
        _dotenv.parse('A=1\nB="open\n', "x.env", {})
    with pytest.raises(_dotenv.DotenvError, match="after the closing quote"):
        _dotenv.parse('A="x" y\n', "x.env", {})


# ---- sys.path, asyncio, global_state, dotted paths -----------------------------------------------


def test_add_cwd_to_path(project):
    project.write("here.py", "def f():\n    print('imported from cwd')\n")
    project.write("puff.toml", "[[commands]]\nfunction = 'here.f'\ncommand_name = 'f'\n")
    assert project.run("f").stdout.strip() == "imported from cwd"
    project.write("puff.toml", "add_cwd_to_path = false\n[[commands]]\nfunction = 'here.f'\n"
                               "command_name = 'f'\n")
    r = project.run("f")
    assert r.returncode == 2 and "No module named 'here'" in r.stderr


def test_asyncio_key_starts_the_loop_and_global_state_is_made_once(project):
    project.write("app.py", """\
        import puff
        from puff import _runtime, _scheduler
        calls = []

        def make_state():
            calls.append(1)
            puff.sleep_ms(1)  # inside the runtime, in a greenlet
            return {"db": "ready"}

        def main():
            print(_runtime.options().asyncio, _scheduler.state.loop is not None,
                  puff.global_state, len(calls))
    """)
    cmd = "global_state = 'app.make_state'\n[[commands]]\nfunction = 'app.main'\ncommand_name = 'main'\n"
    project.write("puff.toml", cmd)
    assert project.run("main").stdout.split() == ["False", "False", "{'db':", "'ready'}", "1"]
    project.write("puff.toml", "asyncio = true\n" + cmd)
    r = project.run("main")
    assert r.stdout.split() == ["True", "True", "{'db':", "'ready'}", "1"], r.stderr


def test_import_object_forms():
    assert import_object("os.path.join") is import_object("os.path:join") is import_object("os:path.join")
    with pytest.raises(ConfigError, match="object 'os.path' has no attribute 'nope'"):
        import_object("os:path.nope")
    with pytest.raises(ConfigError, match="No module named 'no_such_pkg_xyz'") as e:
        import_object("no_such_pkg_xyz.mod.attr", "wsgi", ("puff.toml", 4))
    assert str(e.value).startswith("puff.toml:4: wsgi 'no_such_pkg_xyz.mod.attr'")


DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("doc", ["config.md", "cli.md", "http.md"])
def test_toml_examples_in_the_docs_load(project, doc):
    blocks = re.findall(r"^```toml\n(.*?)^```", (DOCS / doc).read_text(), re.S | re.M)
    assert blocks
    for block in blocks:
        project.write("puff.toml", block)
        r = project.run("config")
        assert r.returncode == 0, f"{block}\n{r.stderr}"


def test_docs_example_config_is_the_real_one(project):
    documented = re.search(r"^```toml\n(.*?)^```", (DOCS / "config.md").read_text(), re.S | re.M).group(1)
    printed = tomllib.loads(project.run("example-config").stdout)
    assert tomllib.loads(documented) == printed
