"""The ``puff.toml`` schema: typed dataclasses and the validator that builds them.

``build(data, ctx)`` turns the dict read by ``tomllib`` into a :class:`PuffConfig`, rejecting
unknown keys (with a "did you mean"), wrong types and bad values. Every error is a
:class:`ConfigError` naming the file and line. ``tomllib`` reports no positions, so
:class:`LineIndex` finds them by scanning the file's text. Environment variables and flags are
applied afterwards by :mod:`puff.config`.
"""

from __future__ import annotations

import dataclasses
import datetime
import difflib
import os
import re
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union
from urllib.parse import urlsplit

from ._server_config import ServerConfig, read_server

POOL_KINDS = ("postgres", "redis", "pubsub", "task_queue")
DEFAULT_URLS = {
    "postgres": "postgres://postgres:password@localhost:5432/postgres",
    "redis": "redis://localhost:6379",
    "pubsub": "redis://localhost:6379",
    "task_queue": "redis://localhost:6379",
}
URL_SCHEMES = {
    "postgres": ("postgres", "postgresql"),
    "redis": ("redis", "rediss", "unix"),
    "pubsub": ("redis", "rediss", "unix"),
    "task_queue": ("redis", "rediss", "unix"),
}
#: Names a ``[[commands]]`` entry may not take (built-in commands and their aliases).
BUILTIN_COMMANDS = frozenset(
    {"check", "config", "django", "example-config", "example_config", "pytest", "python",
     "runserver", "serve", "wait_forever"}
)
CORS_BASES = ("Default", "Permissive", "VeryPermissive")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")
_COMMAND = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*\Z")
_IDENT = r"[^\W\d]\w*"
_DOTTED = re.compile(rf"{_IDENT}(?:\.{_IDENT})*(?::{_IDENT}(?:\.{_IDENT})*)?\Z")
_ORIGIN = re.compile(r"https?://[^/\s?#]+\Z")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_URL_PREFIX = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@/-]*\Z")


class ConfigError(Exception):
    """A configuration problem: ``message``, and where (``path``, ``line``) when known.

    ``detail`` holds extra text to show after the message (e.g. an import traceback)."""

    def __init__(self, message: str, path: Optional[os.PathLike] = None, line: Optional[int] = None,
                 detail: str = "") -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.detail = detail
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = f"{self.path}:{self.line}: " if self.line else f"{self.path}: "
        return where + self.message


# ---- dataclasses -------------------------------------------------------------------------------


@dataclasses.dataclass
class RuntimeConfig:
    """``[runtime]``: settings of the native runtime (see :class:`puff.RuntimeOptions`)."""

    io_threads: int = 0
    blocking_threads: int = 32
    spin_us: int = 50
    shutdown_timeout_ms: int = 10000
    uvloop: bool = True


@dataclasses.dataclass
class PoolConfig:
    """One ``[[postgres]]``, ``[[redis]]``, ``[[pubsub]]`` or ``[[task_queue]]`` entry."""

    kind: str
    name: str = "default"
    url: str = ""
    pool_size: int = 10

    @property
    def flag(self) -> str:
        """The command-line flag that sets the URL, e.g. ``--default-postgres-url``."""
        return f"--{self.name.lower().replace('_', '-')}-{self.kind.replace('_', '-')}-url"

    @property
    def env_var(self) -> str:
        """The environment variable that sets the URL, e.g. ``PUFF_DEFAULT_POSTGRES_URL``."""
        return f"PUFF_{self.name.upper().replace('-', '_')}_{self.kind.upper()}_URL"

    @property
    def safe_url(self) -> str:
        """The URL with its password replaced by ``***``."""
        return redact_url(self.url)


@dataclasses.dataclass
class PostgresConfig(PoolConfig):
    connect_timeout_ms: int = 5000    # a connect (TCP, TLS, authentication) that takes longer fails
    statement_timeout_ms: int = 0     # 0 = none; else Postgres' statement_timeout for every connection
    max_prepared: int = 256           # prepared statements cached per connection (0 = none)
    hub_connection: bool = True       # greenlet runtimes: the first connection on the Python thread's loop


@dataclasses.dataclass
class TaskQueueConfig(PoolConfig):
    max_concurrent_tasks: int = dataclasses.field(default_factory=lambda: (os.cpu_count() or 1) * 4)


@dataclasses.dataclass
class HttpClientConfig:
    name: str = "default"
    http2_prior_knowledge: bool = False
    max_idle_connections: Optional[int] = None  # per host; None = the client library's default
    user_agent: Optional[str] = None


@dataclasses.dataclass
class GraphqlConfig:
    schema: str
    name: str = "default"
    url: Optional[str] = None
    subscription_url: Optional[str] = None
    playground_url: Optional[str] = None
    database: Optional[str] = None  # name of a [[postgres]] pool


@dataclasses.dataclass
class CorsConfig:
    base_config: str = "Default"
    max_age_secs: Optional[int] = None
    allow_credentials: Optional[bool] = None
    allowed_origins: Union[str, List[str], None] = None  # "*" or a list
    allowed_headers: Union[str, List[str], None] = None
    allowed_methods: Union[str, List[str], None] = None
    expose_headers: Union[str, List[str], None] = None  # Puff's addition to upstream's keys

    def native_options(self) -> Dict[str, Any]:
        """The ``cors`` option of ``puff._native.HttpServer`` (unset keys left out)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclasses.dataclass
class StaticConfig:
    """One ``[[static]]`` entry: files under ``url`` served from ``directory`` by the native server."""

    url: str  # URL path prefix, starts and ends with '/'
    directory: str  # relative paths are relative to the directory puff runs in
    index: str = "index.html"  # served for directory requests; "" = none
    max_age: Optional[int] = None  # Cache-Control: max-age; None = no Cache-Control

    def native_options(self) -> Dict[str, Any]:
        """One entry of the ``static`` option of ``puff._native.HttpServer``."""
        return {"prefix": self.url, "directory": self.directory, "index": self.index, "max_age": self.max_age}


@dataclasses.dataclass
class MountConfig:
    """One ``[[mount]]`` entry: another WSGI or ASGI app served under ``prefix`` by ``puff serve``."""

    prefix: str  # "/api": serves /api and /api/...; SCRIPT_NAME / root_path
    app: str  # dotted path
    interface: str  # "wsgi" or "asgi"


@dataclasses.dataclass
class CommandConfig:
    command_name: str
    function: str  # dotted path: "pkg.module.func" or "pkg.module:func"


@dataclasses.dataclass
class PuffConfig:
    """The whole configuration, after puff.toml, ``.env``, ``PUFF_*`` variables and flags."""

    path: Optional[Path] = None  # the puff.toml that was read (None: no file)
    django: bool = False
    greenlets: bool = True
    asyncio: bool = False
    dotenv: bool = True
    dotenv_path: Optional[str] = None
    add_cwd_to_path: bool = True
    compression_middleware: bool = False
    pytest_path: Optional[str] = None
    wsgi: Optional[str] = None
    asgi: Optional[str] = None
    global_state: Optional[str] = None
    cors: Optional[CorsConfig] = None
    static: List[StaticConfig] = dataclasses.field(default_factory=list)
    mount: List[MountConfig] = dataclasses.field(default_factory=list)
    runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)
    server: ServerConfig = dataclasses.field(default_factory=ServerConfig)
    commands: List[CommandConfig] = dataclasses.field(default_factory=list)
    postgres: List[PostgresConfig] = dataclasses.field(default_factory=list)
    redis: List[PoolConfig] = dataclasses.field(default_factory=list)
    pubsub: List[PoolConfig] = dataclasses.field(default_factory=list)
    task_queue: List[TaskQueueConfig] = dataclasses.field(default_factory=list)
    http_client: List[HttpClientConfig] = dataclasses.field(default_factory=list)
    graphql: List[GraphqlConfig] = dataclasses.field(default_factory=list)
    dotenv_file: Optional[Path] = None  # the .env file that was loaded
    #: Where overridable values came from: "runtime.io_threads" -> "env PUFF_IO_THREADS", ...
    sources: Dict[str, str] = dataclasses.field(default_factory=dict)
    lines: "LineIndex" = dataclasses.field(default=None, repr=False, compare=False)

    def pools(self) -> Iterator[PoolConfig]:
        """Every pool, by kind (postgres, redis, pubsub, task_queue), in file order."""
        for kind in POOL_KINDS:
            yield from getattr(self, kind)

    def pool(self, kind: str, name: str = "default") -> Optional[PoolConfig]:
        return next((p for p in getattr(self, kind) if p.name == name), None)

    def command(self, name: str) -> Optional[CommandConfig]:
        return next((c for c in self.commands if c.command_name == name), None)

    def runtime_options(self):
        """The :class:`puff.RuntimeOptions` for :func:`puff.run`."""
        from ._runtime import RuntimeOptions

        r = self.runtime
        return RuntimeOptions(io_threads=r.io_threads, blocking_threads=r.blocking_threads,
                              spin_us=r.spin_us, shutdown_timeout_ms=r.shutdown_timeout_ms,
                              asyncio=self.asyncio, uvloop=r.uvloop)

    def where(self, *key: Any) -> Tuple[Optional[str], Optional[int]]:
        """(file, line) of a key path such as ("commands", 0, "function"), as far as known."""
        if self.path is None:
            return None, None
        return str(self.path), self.lines.find(key) if self.lines else None


def redact_url(url: str) -> str:
    """``url`` with the password (if any) replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    netloc = parts.netloc
    userinfo, _, hostport = netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{hostport}").geturl()


def check_url(kind: str, url: str) -> Optional[str]:
    """None if ``url`` is usable for a pool of ``kind``, else what is wrong with it."""
    schemes = URL_SCHEMES[kind]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as e:
        return f"invalid URL {redact_url(url)!r}: {e}"
    if parts.scheme not in schemes:
        wanted = " or ".join(f"{s}://" for s in schemes)
        return f"invalid {kind} URL {redact_url(url)!r}: the scheme must be {wanted}"
    if parts.scheme == "unix":
        if not parts.path:
            return f"invalid {kind} URL {url!r}: unix:// needs a socket path"
    elif not parts.hostname and not (kind == "postgres" and "host=" in parts.query):
        return f"invalid {kind} URL {redact_url(url)!r}: no host"
    return None


# ---- locating keys in the file -----------------------------------------------------------------


class LineIndex:
    """Maps key paths to line numbers by scanning TOML text (``tomllib`` gives no positions).

    ``[[postgres]]`` sections count up, so ("postgres", 1, "url") is the ``url`` key of the
    second ``[[postgres]]``. Lookups fall back to the closest known parent."""

    _HEADER = re.compile(r"\[\[?\s*(.+?)\s*\]\]?\s*(?:#.*)?$")
    _PART = r"""(?:"(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)"""
    _KEY = re.compile(rf"({_PART}(?:\s*\.\s*{_PART})*)\s*=")

    def __init__(self, text: str) -> None:
        self.positions: Dict[tuple, int] = {}
        counts: Dict[tuple, int] = {}
        section: tuple = ()
        multiline: Optional[str] = None
        for lineno, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if multiline:
                if line.count(multiline) % 2 == 1:
                    multiline = None
                continue
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                m = self._HEADER.match(line)
                if m:
                    name = tuple(self._split(m.group(1)))
                    if line.startswith("[["):
                        idx = counts.get(name, 0)
                        counts[name] = idx + 1
                        name = name + (idx,)
                    section = name
                    self.positions.setdefault(section, lineno)
                    continue
            m = self._KEY.match(line)
            if m:
                self.positions.setdefault(section + tuple(self._split(m.group(1))), lineno)
                for q in ('"""', "'''"):
                    if line[m.end():].count(q) % 2 == 1:
                        multiline = q

    @staticmethod
    def _split(dotted: str) -> List[str]:
        parts = re.findall(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[^.\s]+)\s*(?:\.|$)""", dotted)
        return [p[1:-1] if p[:1] in "\"'" else p for p in parts]

    def find(self, key: tuple) -> Optional[int]:
        key = tuple(key)
        while key:
            if key in self.positions:
                return self.positions[key]
            key = key[:-1]
        return None


# ---- validation --------------------------------------------------------------------------------


def toml_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, (datetime.date, datetime.time)):
        return "date/time"
    return type(value).__name__


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else '"' + value.replace('"', '\\"') + '"'
    return text if len(text) <= 60 else text[:57] + "..."


class _Reader:
    """Typed access to one TOML table; every key read is checked, the rest are unknown."""

    def __init__(self, ctx: "_Context", data: dict, where: tuple, label: str) -> None:
        self.ctx, self.data, self.where, self.label = ctx, data, where, label
        self.known: List[str] = []

    def error(self, key: Optional[str], message: str) -> ConfigError:
        return self.ctx.error(self.where + ((key,) if key else ()), message)

    def get(self, key: str, kind: str, default: Any = None, aliases: Tuple[str, ...] = ()) -> Any:
        self.known.append(key)
        self.known.extend(aliases)
        present = [k for k in (key, *aliases) if k in self.data]
        if len(present) > 1:
            raise self.error(present[1], f"{self.label}: set either '{present[0]}' or '{present[1]}', "
                                         "not both")
        if not present:
            return default
        name = present[0]
        value = self.data[name]
        ok = {
            "string": lambda v: isinstance(v, str),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "boolean": lambda v: isinstance(v, bool),
            "table": lambda v: isinstance(v, dict),
            "string or array of strings": lambda v: isinstance(v, str)
            or (isinstance(v, list) and all(isinstance(x, str) for x in v)),
        }[kind](value)
        if not ok:
            what = self.label + ": " if self.label else ""
            article = "an" if kind[0] in "aeiou" else "a"
            raise self.error(name, f"{what}'{name}' must be {article} {kind}, "
                                   f"got {toml_type(value)} {_show(value)}")
        return value

    def dotted(self, key: str, default: Any = None) -> Optional[str]:
        value = self.get(key, "string", default)
        if value is not None and (not _DOTTED.match(value) or not ("." in value or ":" in value)):
            raise self.error(key, f"{self._at()}'{key}' must be a dotted path like 'package.module.attr' "
                                  f"or 'package.module:attr', got {_show(value)}")
        return value

    def count(self, key: str, default: Any, minimum: int = 0) -> Any:
        value = self.get(key, "integer", default)
        if value is not None and value < minimum:
            raise self.error(key, f"{self._at()}'{key}' must be >= {minimum}, got {value}")
        return value

    def _at(self) -> str:
        return self.label + ": " if self.label else ""

    def finish(self) -> None:
        for key in self.data:
            if key not in self.known:
                close = difflib.get_close_matches(key, self.known, n=1, cutoff=0.6)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                where = f" in {self.label}" if self.label else ""
                raise self.error(key, f"unknown key '{key}'{where}{hint}")


class _Context:
    def __init__(self, path: Optional[Path], lines: Optional[LineIndex]) -> None:
        self.path, self.lines = path, lines

    def error(self, key: tuple, message: str) -> ConfigError:
        line = self.lines.find(key) if self.lines else None
        return ConfigError(message, self.path, line)


_TOP_ARRAYS = ("commands", "static", "mount") + POOL_KINDS + ("http_client", "graphql")


def build(data: dict, path: Optional[Path] = None, text: str = "") -> PuffConfig:
    """Validates the dict read from puff.toml and returns the :class:`PuffConfig`."""
    lines = LineIndex(text)
    ctx = _Context(path, lines)
    top = _Reader(ctx, data, (), "")
    cfg = PuffConfig(path=path, lines=lines)
    for key in ("django", "greenlets", "asyncio", "dotenv", "add_cwd_to_path", "compression_middleware"):
        setattr(cfg, key, top.get(key, "boolean", getattr(cfg, key)))
    cfg.dotenv_path = top.get("dotenv_path", "string")
    cfg.pytest_path = top.get("pytest_path", "string")
    if top.get("pytest", "boolean", False) and cfg.pytest_path is None:
        cfg.pytest_path = "./"  # the seed's `pytest = true`
    cfg.wsgi = top.dotted("wsgi")
    cfg.asgi = top.dotted("asgi")
    cfg.global_state = top.dotted("global_state")
    cors = top.get("cors", "table")
    if cors is not None:
        cfg.cors = _cors(_Reader(ctx, cors, ("cors",), "[cors]"))
    runtime = top.get("runtime", "table")
    if runtime is not None:
        cfg.runtime = _runtime(_Reader(ctx, runtime, ("runtime",), "[runtime]"))
    server = top.get("server", "table")
    if server is not None:
        cfg.server = read_server(_Reader(ctx, server, ("server",), "[server]"))
    for key in _TOP_ARRAYS:
        top.known.append(key)
        if key in data:
            entries = _array_of_tables(ctx, key, data[key])
            setattr(cfg, key, _entries(ctx, key, entries))
    top.finish()
    _cross_checks(ctx, cfg, data)
    cfg.http_client = cfg.http_client or []
    if not any(c.name == "default" for c in cfg.http_client):
        cfg.http_client.insert(0, HttpClientConfig())  # a default HTTP client always exists
    for pool in cfg.pools():
        cfg.sources.setdefault(f"{pool.kind}.{pool.name}.url", "puff.toml" if pool.url else "default")
        pool.url = pool.url or DEFAULT_URLS[pool.kind]
    return cfg


def _array_of_tables(ctx: _Context, key: str, value: Any) -> list:
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return value
    if isinstance(value, dict):
        raise ctx.error((key,), f"'{key}' must be an array of tables: write [[{key}]], not [{key}]")
    raise ctx.error((key,), f"'{key}' must be an array of tables ([[{key}]] sections), "
                            f"got {toml_type(value)} {_show(value)}")


def _entries(ctx: _Context, key: str, tables: list) -> list:
    result, seen = [], {}
    for i, table in enumerate(tables):
        r = _Reader(ctx, table, (key, i), f"[[{key}]]")
        if key == "commands":
            entry = _command(r)
            ident = entry.command_name
        elif key == "static":
            entry = _static(r)
            ident = entry.url
        elif key == "mount":
            entry = _mount(r)
            ident = entry.prefix
        else:
            enabled = r.get("enable", "boolean", True)
            name = r.get("name", "string", "default")
            if not _NAME.match(name):
                raise r.error("name", f"[[{key}]]: 'name' must be letters, digits, '_' or '-' "
                                      f"(starting with a letter or digit), got {_show(name)}")
            entry = _ENTRY_READERS[key](r, name)
            r.finish()
            if not enabled:
                continue
            ident = name.lower().replace("_", "-")
        if ident in seen:
            first = ctx.lines.find((key, seen[ident]))
            what = {"commands": "command_name", "static": "url", "mount": "prefix"}.get(key, "name")
            shown = _show(table.get(what, "default"))
            raise r.error(what, f"[[{key}]]: duplicate {what} {shown} (first defined at line {first})")
        seen[ident] = i
        result.append(entry)
    return result


def _command(r: _Reader) -> CommandConfig:
    name = r.get("command_name", "string")
    function = r.dotted("function")
    r.finish()
    if name is None or function is None:
        missing = "command_name" if name is None else "function"
        raise r.error(None, f"[[commands]]: '{missing}' is required")
    if not _COMMAND.match(name):
        raise r.error("command_name", f"[[commands]]: invalid command_name {_show(name)} (use letters, "
                                      "digits, '_', '-', '.' or ':', starting with a letter or digit)")
    if name in BUILTIN_COMMANDS:
        raise r.error("command_name", f"[[commands]]: command_name {_show(name)} is a built-in puff command; "
                                      "choose another name")
    return CommandConfig(command_name=name, function=function)


def _static(r: _Reader) -> StaticConfig:
    url = r.get("url", "string")
    directory = r.get("directory", "string")
    index = r.get("index", "string", "index.html")
    max_age = r.count("max_age", None)
    r.finish()
    if url is None or directory is None:
        missing = "url" if url is None else "directory"
        raise r.error(None, f"[[static]]: '{missing}' is required")
    if not _URL_PREFIX.match(url):
        raise r.error("url", f"[[static]]: 'url' must be a URL path starting with '/' (letters, digits and "
                             f"-._~!$&'()*+,;=:@/ only), got {_show(url)}")
    if not directory:
        raise r.error("directory", "[[static]]: 'directory' must not be empty")
    if "/" in index or index in (".", ".."):
        raise r.error("index", f"[[static]]: 'index' must be a file name (or \"\" for none), got {_show(index)}")
    return StaticConfig(url=url if url.endswith("/") else url + "/", directory=directory, index=index,
                        max_age=max_age)


def _mount(r: _Reader) -> MountConfig:
    prefix = r.get("prefix", "string")
    wsgi = r.dotted("wsgi")
    asgi = r.dotted("asgi")
    r.finish()
    if prefix is None:
        raise r.error(None, "[[mount]]: 'prefix' is required")
    if (wsgi is None) == (asgi is None):
        raise r.error(None, "[[mount]]: set exactly one of 'wsgi' or 'asgi'")
    clean = prefix.rstrip("/")
    if not clean or not _URL_PREFIX.match(prefix) or not prefix.startswith("/"):
        raise r.error("prefix", f"[[mount]]: 'prefix' must be a URL path like \"/api\" (not \"/\": that is "
                                f"the main app), got {_show(prefix)}")
    return MountConfig(prefix=clean, app=wsgi or asgi, interface="wsgi" if wsgi else "asgi")


def _pool(kind: str):
    def read(r: _Reader, name: str) -> PoolConfig:
        cls = {"task_queue": TaskQueueConfig, "postgres": PostgresConfig}.get(kind, PoolConfig)
        pool = cls(kind=kind, name=name)
        pool.url = r.get("url", "string", "")
        if pool.url:
            problem = check_url(kind, pool.url)
            if problem:
                raise r.error("url", f"[[{kind}]] {_show(name)}: {problem}")
        pool.pool_size = r.count("pool_size", 10, minimum=1)
        if kind == "postgres":
            pool.connect_timeout_ms = r.count("connect_timeout_ms", pool.connect_timeout_ms, minimum=1)
            pool.statement_timeout_ms = r.count("statement_timeout_ms", pool.statement_timeout_ms)
            pool.max_prepared = r.count("max_prepared", pool.max_prepared)
            pool.hub_connection = r.get("hub_connection", "boolean", True)
        if kind == "task_queue":
            pool.max_concurrent_tasks = r.count("max_concurrent_tasks", pool.max_concurrent_tasks, minimum=1)
        return pool

    return read


def _http_client(r: _Reader, name: str) -> HttpClientConfig:
    ua = r.get("user_agent", "string")
    if ua is not None and (not ua or any(ord(c) < 0x20 or ord(c) == 0x7F for c in ua)):
        raise r.error("user_agent", f"[[http_client]]: 'user_agent' is not a valid header value: {_show(ua)}")
    return HttpClientConfig(
        name=name,
        http2_prior_knowledge=r.get("http2_prior_knowledge", "boolean", False),
        max_idle_connections=r.count("max_idle_connections", None),
        user_agent=ua,
    )


def _graphql(r: _Reader, name: str) -> GraphqlConfig:
    schema = r.dotted("schema")
    urls = {}
    for key, aliases in (("url", ()), ("subscription_url", ("subscriptions_url",)), ("playground_url", ())):
        value = r.get(key, "string", None, aliases)
        if value is not None and not value.startswith("/"):
            used = next(k for k in (key, *aliases) if k in r.data)
            raise r.error(used, f"[[graphql]]: '{used}' must be a path starting with '/', got {_show(value)}")
        urls[key] = value
    database = r.get("database", "string")
    if schema is None:
        raise r.error(None, "[[graphql]]: 'schema' is required (a dotted path to the schema class)")
    if urls["playground_url"] and not urls["url"]:
        raise r.error("playground_url", "[[graphql]]: 'playground_url' needs 'url' (the endpoint it queries)")
    return GraphqlConfig(schema=schema, name=name, database=database, **urls)


_ENTRY_READERS = {kind: _pool(kind) for kind in POOL_KINDS}
_ENTRY_READERS.update(http_client=_http_client, graphql=_graphql)


def _runtime(r: _Reader) -> RuntimeConfig:
    rt = RuntimeConfig(
        io_threads=r.count("io_threads", 0),
        blocking_threads=r.count("blocking_threads", 32, minimum=1),
        spin_us=r.count("spin_us", 50),
        shutdown_timeout_ms=r.count("shutdown_timeout_ms", 10000),
        uvloop=r.get("uvloop", "boolean", True),
    )
    r.finish()
    return rt


def _cors(r: _Reader) -> CorsConfig:
    cors = CorsConfig(
        base_config=r.get("base_config", "string", "Default"),
        max_age_secs=r.count("max_age_secs", None),
        allow_credentials=r.get("allow_credentials", "boolean"),
    )
    if cors.base_config not in CORS_BASES:
        close = difflib.get_close_matches(cors.base_config, CORS_BASES, n=1, cutoff=0.5)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise r.error("base_config", f"[cors]: 'base_config' must be one of {', '.join(CORS_BASES)}, "
                                     f"got {_show(cors.base_config)}{hint}")
    for key in ("allowed_origins", "allowed_headers", "allowed_methods", "expose_headers"):
        value = r.get(key, "string or array of strings")
        if isinstance(value, str) and value != "*":
            raise r.error(key, f"[cors]: '{key}' must be \"*\" or an array of strings, got {_show(value)}")
        if key == "allowed_origins" and isinstance(value, list):
            value = [v.rstrip("/") if v.count("/") == 3 else v for v in value]
            bad = [v for v in value if not _ORIGIN.match(v)]
            if bad:
                raise r.error(key, f"[cors]: origin {_show(bad[0])} must be http(s)://host[:port] (no path)")
        if key != "allowed_origins" and isinstance(value, list):
            bad = [v for v in value if not _TOKEN.match(v)]
            if bad:
                raise r.error(key, f"[cors]: {_show(bad[0])} in '{key}' is not a valid token")
        setattr(cors, key, value)
    r.finish()
    return cors


def _cross_checks(ctx: _Context, cfg: PuffConfig, data: dict) -> None:
    pg_names = [p.name for p in cfg.postgres]
    for i, table in enumerate(data.get("graphql", [])):
        gql = next((g for g in cfg.graphql if g.name == table.get("name", "default")), None)
        if table.get("enable", True) and gql and gql.database is not None and gql.database not in pg_names:
            close = difflib.get_close_matches(gql.database, pg_names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else (
                " (no [[postgres]] pool is configured)" if not pg_names else "")
            raise ctx.error(("graphql", i, "database"),
                            f"[[graphql]] {_show(gql.name)}: 'database' names no [[postgres]] pool: "
                            f"{_show(gql.database)}{hint}")
