"""Puff's configuration: ``puff.toml``, ``.env``, ``PUFF_*`` variables and command-line flags.

Precedence, highest first: command-line flags, ``PUFF_*`` environment variables (including
those set by ``.env``), ``puff.toml``, defaults. :func:`load` does everything but the flags;
the CLI applies those with :func:`override` and then publishes the result as
:data:`current`. The keys are described in docs/config.md; the schema lives in
``puff._config_schema``.

Every problem raises :class:`ConfigError` with the file and line when there is one; the
``puff`` command prints it and exits with status 2.
"""

from __future__ import annotations

import difflib
import importlib
import json
import os
import re
import tomllib
import traceback
from pathlib import Path
from typing import Any, List, MutableMapping, Optional, Tuple

from . import _dotenv
from ._config_schema import (
    BUILTIN_COMMANDS,
    DEFAULT_URLS,
    POOL_KINDS,
    CommandConfig,
    ConfigError,
    CorsConfig,
    GraphqlConfig,
    HttpClientConfig,
    PoolConfig,
    PostgresConfig,
    PuffConfig,
    RuntimeConfig,
    StaticConfig,
    TaskQueueConfig,
    build,
    check_url,
    redact_url,
)
from ._server_config import SERVER_SETTINGS, Bind, ServerConfig, parse_bind, setting_value

__all__ = [
    "BUILTIN_COMMANDS",
    "Bind",
    "CommandConfig",
    "ConfigError",
    "CorsConfig",
    "DEFAULT_URLS",
    "EXAMPLE_CONFIG",
    "GraphqlConfig",
    "HttpClientConfig",
    "POOL_KINDS",
    "PoolConfig",
    "PostgresConfig",
    "PuffConfig",
    "RUNTIME_SETTINGS",
    "RuntimeConfig",
    "SERVER_SETTINGS",
    "ServerConfig",
    "StaticConfig",
    "TaskQueueConfig",
    "current",
    "dump",
    "import_object",
    "load",
    "override",
    "parse_bind",
    "redact_url",
]

#: The configuration of the running ``puff`` command (set by the CLI before the command runs).
current: Optional[PuffConfig] = None

DEFAULT_PATH = "puff.toml"

#: ``[runtime]`` settings that have an environment variable and a flag:
#: key -> (environment variable, flag, minimum or None for a boolean).
RUNTIME_SETTINGS = {
    "io_threads": ("PUFF_IO_THREADS", "--io-threads", 0),
    "blocking_threads": ("PUFF_BLOCKING_THREADS", "--blocking-threads", 1),
    "spin_us": ("PUFF_SPIN_US", "--spin-us", 0),
    "shutdown_timeout_ms": ("PUFF_SHUTDOWN_TIMEOUT_MS", "--shutdown-timeout-ms", 0),
    "uvloop": ("PUFF_UVLOOP", "--uvloop", None),
}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def config_path(explicit: Optional[os.PathLike] = None,
                environ: Optional[MutableMapping[str, str]] = None) -> Tuple[Path, Optional[str]]:
    """The config file to read and who asked for it: ``--config``, ``PUFF_CONFIG`` or None
    (the default ``./puff.toml``, which may be missing)."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit), "--config"
    if env.get("PUFF_CONFIG"):
        return Path(env["PUFF_CONFIG"]), "PUFF_CONFIG"
    return Path(DEFAULT_PATH), None


def read_file(path: Path, origin: Optional[str] = None) -> PuffConfig:
    """Reads and validates one puff.toml. A missing file is an empty config unless ``origin``
    (the flag or variable that named it) says it was asked for explicitly."""
    if not path.exists():
        if origin:
            raise ConfigError(f"config file {str(path)!r} (from {origin}) does not exist")
        return build({})
    if path.is_dir():
        raise ConfigError(f"config file {str(path)!r} is a directory")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read config file: {e.strerror or e}", path) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"invalid TOML: the file is not UTF-8 ({e.reason})", path, line) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg, line = str(e), None
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", msg)
        if m:
            msg, line = msg[: m.start()] + f" (column {m.group(2)})", int(m.group(1))
        elif msg.endswith("(at end of document)"):
            msg, line = msg[: -len("(at end of document)")] + "(at the end of the file)", text.count("\n") + 1
        raise ConfigError(f"invalid TOML: {msg}", path, line) from None
    return build(data, path, text)


def load(path: Optional[os.PathLike] = None, *, environ: Optional[MutableMapping[str, str]] = None,
         dotenv: bool = True) -> PuffConfig:
    """Reads the configuration: the file (``path``, else ``$PUFF_CONFIG``, else ``./puff.toml``),
    then ``.env`` into ``environ`` (default ``os.environ``; skipped if ``dotenv`` is false or
    the file says ``dotenv = false``), then the ``PUFF_*`` variables."""
    env = os.environ if environ is None else environ
    file, origin = config_path(path, env)
    cfg = read_file(file, origin)
    from_dotenv = load_dotenv(cfg, env) if dotenv else {}
    apply_env(cfg, env, from_dotenv)
    return cfg


def load_dotenv(cfg: PuffConfig, environ: MutableMapping[str, str]) -> dict:
    """Loads the ``.env`` file the config asks for; returns the variables it set."""
    if not cfg.dotenv:
        return {}
    if cfg.dotenv_path:
        file = Path(cfg.dotenv_path)
        if not file.is_file():
            path, line = cfg.where("dotenv_path")
            raise ConfigError(f"dotenv_path {cfg.dotenv_path!r} does not exist (or is not a file)",
                              path, line)
    else:
        file = _dotenv.find_dotenv()
        if file is None:
            return {}
    try:
        applied = _dotenv.load(file, environ)
    except _dotenv.DotenvError as e:
        raise ConfigError(f"invalid .env file: {e.message}", e.path, e.line) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read .env file: {e}", file) from None
    cfg.dotenv_file = file
    return applied


def apply_env(cfg: PuffConfig, environ: MutableMapping[str, str], from_dotenv: Optional[dict] = None) -> None:
    """Applies the ``PUFF_<NAME>_<KIND>_URL``, runtime and server variables (an empty value is
    unset)."""
    from_dotenv = from_dotenv or {}

    def origin(var: str) -> str:
        return f"env {var}" + (f" (from {cfg.dotenv_file})" if var in from_dotenv else "")

    for pool in cfg.pools():
        if environ.get(pool.env_var):
            override(cfg, f"{pool.kind}.{pool.name}.url", environ[pool.env_var], origin(pool.env_var))
    for key, (var, _flag, _minimum) in RUNTIME_SETTINGS.items():
        if environ.get(var):
            override(cfg, f"runtime.{key}", environ[var], origin(var))
    for key, (var, _flag) in SERVER_SETTINGS.items():
        if var and environ.get(var):
            override(cfg, f"server.{key}", environ[var], origin(var))


def override(cfg: PuffConfig, key: str, value: Any, source: str) -> None:
    """Sets one overridable value and records where it came from.

    ``key`` is ``runtime.<setting>``, ``server.<setting>`` or ``<kind>.<pool name>.url``;
    ``value`` may be a string
    (from a variable) or already typed (from a flag); ``source`` is shown in errors and by
    ``puff config``."""
    section, _, rest = key.partition(".")
    if section == "runtime":
        setattr(cfg.runtime, rest, _runtime_value(rest, value, source))
    elif section == "server":
        try:
            setattr(cfg.server, rest, setting_value(rest, value))
        except ValueError as e:
            raise ConfigError(f"{source}: {e}") from None
    else:
        name = rest.rpartition(".")[0]
        pool = cfg.pool(section, name)
        if pool is None:
            raise ConfigError(f"{source}: there is no [[{section}]] pool named {name!r}")
        problem = check_url(section, value)
        if problem:
            raise ConfigError(f"{source}: {problem}")
        pool.url = value
    cfg.sources[key] = source


def _runtime_value(key: str, value: Any, source: str) -> Any:
    minimum = RUNTIME_SETTINGS[key][2]
    if minimum is None:  # a boolean
        if isinstance(value, bool):
            return value
        if str(value).strip().lower() in _TRUE:
            return True
        if str(value).strip().lower() in _FALSE:
            return False
        raise ConfigError(f"{source}: expected a boolean (true/false, 1/0, yes/no, on/off), got {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{source}: expected an integer, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{source}: must be >= {minimum}, got {number}")
    return number


# ---- dotted paths ------------------------------------------------------------------------------


def import_object(dotted: str, what: str = "",
                  where: Tuple[Optional[str], Optional[int]] = (None, None)) -> Any:
    """Imports ``pkg.module.attr`` or ``pkg.module:attr`` (the attribute may itself be dotted).

    Raises :class:`ConfigError` naming the module or attribute that failed; when the module's
    own code raised, ``detail`` holds that traceback. ``what`` (e.g. "[[commands]] function")
    and ``where`` (file, line) place the error."""
    label = f"{what} {dotted!r}" if what else repr(dotted)
    if ":" in dotted:
        modname, _, attrs = dotted.partition(":")
        candidates = [(modname, attrs.split("."))]
    else:
        parts = dotted.split(".")
        candidates = [(".".join(parts[:i]), parts[i:]) for i in range(len(parts) - 1, 0, -1)]
    not_found: Optional[ModuleNotFoundError] = None
    for modname, attrs in candidates:
        try:
            obj = importlib.import_module(modname)
        except ModuleNotFoundError as e:
            if e.name and (modname == e.name or modname.startswith(e.name + ".")):
                not_found = not_found or e
                continue
            raise _import_failed(label, modname, e, where) from None
        except BaseException as e:  # noqa: BLE001 - any failure of the module's own code
            if isinstance(e, KeyboardInterrupt):
                raise
            raise _import_failed(label, modname, e, where) from None
        owner = modname
        for attr in attrs:
            try:
                obj = getattr(obj, attr)
            except AttributeError:
                if not_found is not None:
                    raise ConfigError(f"{label}: cannot import module: {not_found}", *where) from None
                close = difflib.get_close_matches(attr, [n for n in dir(obj) if not n.startswith("_")], n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                kind = "module" if owner == modname else "object"
                message = f"{label}: {kind} {owner!r} has no attribute {attr!r}{hint}"
                raise ConfigError(message, *where) from None
            owner = f"{owner}.{attr}" if owner != modname else f"{modname}.{attr}"
        return obj
    raise ConfigError(f"{label}: cannot import module: {not_found}", *where)


def _import_failed(label: str, modname: str, exc: BaseException, where) -> ConfigError:
    te = traceback.TracebackException.from_exception(exc)
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if not f.filename.startswith("<frozen importlib")
         and f.filename not in (__file__, importlib.__file__)]
    )
    detail = "".join(te.format())
    return ConfigError(f"{label}: importing module {modname!r} failed: {type(exc).__name__}: {exc}",
                       *where, detail=detail)


# ---- output ------------------------------------------------------------------------------------


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def dump(cfg: PuffConfig) -> str:
    """The effective configuration as TOML (passwords hidden); values that did not come from
    the file carry a ``# from ...`` comment. The text loads back with tomllib."""
    out: List[str] = [f"# puff config: {cfg.path or 'no puff.toml'}"
                      + (f"; .env: {cfg.dotenv_file}" if cfg.dotenv_file else "")]

    def put(key: str, value: Any, source_key: Optional[str] = None) -> None:
        if value is None:
            return
        if isinstance(value, str) and source_key and source_key.endswith(".url"):
            value = redact_url(value)
        source = cfg.sources.get(source_key or "", "")
        comment = f"  # from {source}" if source and source != "puff.toml" else ""
        out.append(f"{key} = {_toml(value)}{comment}")

    for key in ("django", "greenlets", "asyncio", "dotenv", "dotenv_path", "add_cwd_to_path",
                "compression_middleware", "pytest_path", "wsgi", "asgi", "global_state"):
        put(key, getattr(cfg, key))
    out.append("\n[runtime]")
    for key in RUNTIME_SETTINGS:
        put(key, getattr(cfg.runtime, key), f"runtime.{key}")
    out.append("\n[server]")
    for field in ServerConfig.__dataclass_fields__:
        put(field, getattr(cfg.server, field), f"server.{field}")
    if cfg.cors:
        out.append("\n[cors]")
        for field in CorsConfig.__dataclass_fields__:
            put(field, getattr(cfg.cors, field))
    for static in cfg.static:
        out.append("\n[[static]]")
        for field in StaticConfig.__dataclass_fields__:
            put(field, getattr(static, field))
    for cmd in cfg.commands:
        out.append("\n[[commands]]")
        put("command_name", cmd.command_name)
        put("function", cmd.function)
    for kind in POOL_KINDS + ("http_client", "graphql"):
        for entry in getattr(cfg, kind):
            out.append(f"\n[[{kind}]]")
            for field in type(entry).__dataclass_fields__:
                if field != "kind":
                    put(field, getattr(entry, field), f"{kind}.{entry.name}.{field}")
    return "\n".join(out) + "\n"


EXAMPLE_CONFIG = '''\
# puff.toml: configuration of the `puff` command. Every key is optional; see docs/config.md.
# Precedence: command-line flags > PUFF_* environment variables (and .env) > this file > defaults.

django = false                  # adds `puff django ...` (Django management commands)
greenlets = true                # accepted for compatibility: greenlets always run
asyncio = false                 # run Puff's asyncio loop (uvloop when installed)
dotenv = true                   # load .env (found from the current directory upwards)
# dotenv_path = ".env"          # ...or exactly this file, which must exist
add_cwd_to_path = true          # put the current directory first on sys.path
compression_middleware = true   # compress HTTP responses
pytest_path = "./"              # root directory of `puff pytest` (`pytest = true` means "./")
# wsgi = "my_wsgi:app"          # WSGI application for the HTTP server
# asgi = "my_asgi:app"          # ASGI application for the HTTP server (needs asyncio = true)
# global_state = "my_python_mod:make_state"  # called once at startup -> puff.global_state

[runtime]
io_threads = 0                  # native I/O threads; 0 = one per CPU      (PUFF_IO_THREADS)
blocking_threads = 32           # pool for @puff.blocking functions   (PUFF_BLOCKING_THREADS)
spin_us = 50                    # how long idle threads spin before sleeping    (PUFF_SPIN_US)
shutdown_timeout_ms = 10000     # grace period after SIGINT/SIGTERM (PUFF_SHUTDOWN_TIMEOUT_MS)
uvloop = true                   # use uvloop for the asyncio loop when installed (PUFF_UVLOOP)

# `puff serve`: the HTTP server (docs/http.md). Flags of `puff serve` override these.
[server]
bind = ["127.0.0.1:7777"]       # host:port, [ipv6]:port, unix:/path               (PUFF_BIND)
workers = 1                     # pre-forked processes, each with its own GIL   (PUFF_WORKERS)
# threads = 2                   # I/O threads per worker (default: [runtime] io_threads)
cpu_affinity = "off"            # "auto": pin worker i to CPU i when workers >= CPUs (PUFF_CPU_AFFINITY)
http_thread = "auto"            # "python": connections on the Python thread; "io"; "auto": by measure (PUFF_HTTP_THREAD)
graceful_timeout_ms = 30000     # after SIGTERM, wait this long for requests (PUFF_GRACEFUL_TIMEOUT_MS)
access_log = false              # one line per request, common log format  (PUFF_ACCESS_LOG)
root_path = ""                  # the app is mounted below this path (SCRIPT_NAME)
url_scheme = "http"             # wsgi.url_scheme ("https" behind a TLS proxy)
max_body = 10485760             # request body bytes; more: 413                 (PUFF_MAX_BODY)
max_header_bytes = 65536        # request head bytes; more: 431
max_headers = 100               # request header lines; more: 431
max_request_line = 8192         # request line bytes; more: 414
header_timeout_ms = 10000       # to receive a request head; slower: 408
keepalive_timeout_ms = 5000     # idle keep-alive connections are closed after this
body_timeout_ms = 30000         # longest pause while receiving a request body
max_connections = 10000         # per worker; more are accepted and closed
backlog = 1024                  # listen backlog
max_concurrency = 1000          # requests running at once per worker; more wait in order

[cors]
base_config = "Default"         # "Default" (nothing allowed), "Permissive" or "VeryPermissive"
max_age_secs = 86400
allow_credentials = true
allowed_origins = ["http://localhost:7777"]
allowed_headers = "*"
allowed_methods = ["GET"]

# Static files, served by `puff serve` before the app (docs/static-and-cors.md).
# [[static]]
# url = "/static/"              # URL prefix
# directory = "static"          # relative to the directory puff runs in
# max_age = 3600                # Cache-Control: max-age (unset: no Cache-Control)

# One command per entry: `puff execute_func [ARGS...]`.
[[commands]]
function = "my_python_mod.some_func"
command_name = "execute_func"

# Pools: each name gets --<name>-<kind>-url and PUFF_<NAME>_<KIND>_URL.
[[postgres]]
name = "default"
url = "postgres://postgres:password@localhost:5432/postgres"
pool_size = 10
connect_timeout_ms = 5000
statement_timeout_ms = 0        # 0: none
max_prepared = 256              # prepared statements cached per connection
hub_connection = true           # greenlet runtimes: first connection on the Python thread's loop

[[redis]]
name = "default"
url = "redis://localhost:6379"
pool_size = 10

[[pubsub]]
name = "default"
url = "redis://localhost:6379"
pool_size = 10

[[task_queue]]
name = "default"
url = "redis://localhost:6379"
pool_size = 10
max_concurrent_tasks = 100

[[http_client]]
name = "default"
http2_prior_knowledge = true
max_idle_connections = 100
user_agent = "puff/0.2"

[[graphql]]
name = "default"
schema = "my_python_mod.Schema"
url = "/graphql/"
subscription_url = "/subscriptions/"
playground_url = "/playground/"
database = "default"
'''
