"""``[server]`` in puff.toml: the settings of ``puff serve``, its listen addresses, and the
``PUFF_*`` variables and ``puff serve`` flags that override them.

The limits and timeouts map one to one onto the options of ``puff._native.HttpServer``
(see :meth:`ServerConfig.native_options`); docs/http.md lists them with the HTTP error each
one produces.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from typing import Any, Dict, List, Optional, Tuple

DEFAULT_BIND = "127.0.0.1:7777"
#: The longest Unix socket path the kernel takes (sun_path is 108 bytes with the NUL).
_MAX_UNIX_PATH = 107
_HOSTNAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?\Z")
BIND_FORMS = "host:port, [ipv6]:port, unix:/path or /path"


@dataclasses.dataclass(frozen=True)
class Bind:
    """One parsed listen address: TCP (``host``, ``port``) or a Unix socket (``path``)."""

    text: str
    host: str = ""  # an IP literal (IPv6 without brackets) or a hostname to resolve
    port: int = 0
    path: str = ""  # set for a Unix socket

    @property
    def unix(self) -> bool:
        return bool(self.path)

    def url(self, host: Optional[str] = None, port: Optional[int] = None, scheme: str = "http") -> str:
        """``http://127.0.0.1:7777``, ``http://[::1]:7777`` or ``unix:/run/app.sock``."""
        if self.unix:
            return f"unix:{self.path}"
        host = self.host if host is None else host
        port = self.port if port is None else port
        return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def parse_bind(text: str) -> Bind:
    """Parses ``host:port``, ``[ipv6]:port``, ``unix:PATH`` or ``/path``; raises ValueError
    with what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"empty listen address (expected {BIND_FORMS})")
    text = text.strip()
    if text.startswith("unix:") or text.startswith("/"):
        path = text[5:] if text.startswith("unix:") else text
        if not path:
            raise ValueError(f"{text!r}: unix: needs a socket path, e.g. unix:/run/app.sock")
        if len(path.encode()) > _MAX_UNIX_PATH:
            raise ValueError(f"{text!r}: a Unix socket path may have at most {_MAX_UNIX_PATH} bytes")
        if "\0" in path:
            raise ValueError(f"{text!r}: NUL in the socket path")
        return Bind(text=text, path=path)
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{text!r}: expected {BIND_FORMS}")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"{text!r}: unbalanced '[' (write [::1]:7777)")
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IPv6 address") from None
    elif ":" in host:
        raise ValueError(f"{text!r}: an IPv6 address needs brackets, e.g. [::1]:7777")
    elif not _HOSTNAME.match(host):
        raise ValueError(f"{text!r}: {host!r} is not an IP address or host name")
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"{text!r}: the port must be a number from 0 to 65535 (0 picks a free one)")
    return Bind(text=text, host=host, port=int(port_text))


@dataclasses.dataclass
class ServerConfig:
    """``[server]``: the HTTP server (``puff serve``). Limits are per worker process."""

    bind: List[str] = dataclasses.field(default_factory=lambda: [DEFAULT_BIND])
    workers: int = 1
    threads: Optional[int] = None  # I/O threads of each worker; None: [runtime] io_threads
    graceful_timeout_ms: int = 30000
    access_log: bool = False
    root_path: str = ""
    url_scheme: str = "http"
    max_body: int = 10 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    max_request_line: int = 8 * 1024
    header_timeout_ms: int = 10000
    keepalive_timeout_ms: int = 5000
    body_timeout_ms: int = 30000
    max_connections: int = 10000
    backlog: int = 1024
    max_concurrency: int = 1000
    certfile: Optional[str] = None  # TLS (HTTP/1.1 and HTTP/2 via ALPN) on every TCP bind
    keyfile: Optional[str] = None
    ws_max_message: int = 16 * 1024 * 1024
    ws_permessage_deflate: bool = True
    compression_min_size: int = 1024
    cpu_affinity: str = "off"  # "auto": pin worker i to CPU i when workers >= CPUs; "off"
    http_thread: str = "auto"  # which thread serves the sockets: "python", "io" or "auto"

    def binds(self) -> List[Bind]:
        return [parse_bind(b) for b in self.bind]

    def native_options(self) -> Dict[str, Any]:
        """The options dict of ``puff._native.HttpServer``."""
        opts = {key: getattr(self, key) for key in _NATIVE_KEYS}
        opts["script_name"] = self.root_path
        opts["multiprocess"] = self.workers > 1
        opts["python_thread"] = self.serves_on_python_thread()
        opts["adaptive_thread"] = self.places_each_connection()
        return opts

    def serves_on_python_thread(self) -> bool:
        """Whether each worker's Python thread runs every HTTP connection itself ("python"),
        instead of having requests handed over from I/O threads. "auto" picks it when the
        workers alone can keep every CPU busy: an I/O thread then has no core of its own, and
        each hand-off costs two context switches (docs/http.md, "Which thread serves")."""
        if self.http_thread != "auto":
            return self.http_thread == "python"
        return self.workers >= usable_cpus()

    def places_each_connection(self) -> bool:
        """With "auto" and CPUs to spare: each new connection goes to the Python thread while
        the app costs that thread little per request, and to an I/O thread otherwise."""
        return self.http_thread == "auto" and not self.serves_on_python_thread()

    def thread_model(self) -> str:
        """How the serving log line describes the choice."""
        if self.serves_on_python_thread():
            return "connections on the Python thread"
        if self.places_each_connection():
            return "connections on the Python thread or I/O threads, by the app's cost per request"
        return "connections on I/O threads"


#: Integer keys and their minimum. Timeouts of 0 would fire at once, so they start at 1.
INT_KEYS = {
    "workers": 1,
    "threads": 0,
    "graceful_timeout_ms": 0,
    "max_body": 0,
    "max_header_bytes": 1024,
    "max_headers": 1,
    "max_request_line": 64,
    "header_timeout_ms": 1,
    "keepalive_timeout_ms": 1,
    "body_timeout_ms": 1,
    "max_connections": 1,
    "backlog": 1,
    "max_concurrency": 1,
    "ws_max_message": 1,
    "compression_min_size": 1,
}
_NATIVE_KEYS = ("max_body", "max_header_bytes", "max_headers", "max_request_line", "header_timeout_ms",
                "keepalive_timeout_ms", "body_timeout_ms", "max_connections", "backlog", "max_concurrency",
                "url_scheme", "ws_max_message", "ws_permessage_deflate")
URL_SCHEMES = ("http", "https")
CPU_AFFINITY = ("auto", "off")
HTTP_THREADS = ("auto", "python", "io")


def usable_cpus() -> int:
    """The CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1

#: Settings that ``puff serve`` flags (and some ``PUFF_*`` variables) override:
#: key -> (environment variable or None, flag).
SERVER_SETTINGS: Dict[str, Tuple[Optional[str], str]] = {
    "bind": ("PUFF_BIND", "--bind"),
    "workers": ("PUFF_WORKERS", "--workers"),
    "threads": (None, "--threads"),
    "max_body": ("PUFF_MAX_BODY", "--max-body"),
    "graceful_timeout_ms": ("PUFF_GRACEFUL_TIMEOUT_MS", "--graceful-timeout-ms"),
    "access_log": ("PUFF_ACCESS_LOG", "--access-log"),
    "certfile": ("PUFF_CERTFILE", "--certfile"),
    "keyfile": ("PUFF_KEYFILE", "--keyfile"),
    "cpu_affinity": ("PUFF_CPU_AFFINITY", "--cpu-affinity"),
    "http_thread": ("PUFF_HTTP_THREAD", "--http-thread"),
}

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_bool(value: Any) -> bool:
    """A boolean from a flag or variable (1/0, true/false, yes/no, on/off); ValueError else."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected a boolean (true/false, 1/0, yes/no, on/off), got {value!r}")


def setting_value(key: str, value: Any) -> Any:
    """Converts and checks a value for ``key`` given by a variable (a string) or a flag;
    raises ValueError with what is wrong."""
    if key == "bind":
        items = value if isinstance(value, list) else [v for v in re.split(r"[\s,]+", str(value)) if v]
        if not items:
            raise ValueError(f"no listen address given (expected {BIND_FORMS})")
        for item in items:
            parse_bind(item)
        return list(items)
    if key == "access_log":
        return parse_bool(value)
    if key in ("certfile", "keyfile"):
        return str(value)
    if key == "cpu_affinity":
        text = str(value).strip().lower()
        if text not in CPU_AFFINITY:
            raise ValueError(f"expected \"auto\" or \"off\", got {value!r}")
        return text
    if key == "http_thread":
        text = str(value).strip().lower()
        if text not in HTTP_THREADS:
            raise ValueError(f"expected \"auto\", \"python\" or \"io\", got {value!r}")
        return text
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected an integer, got {value!r}") from None
    if number < INT_KEYS[key]:
        raise ValueError(f"must be >= {INT_KEYS[key]}, got {number}")
    return number


def read_server(r) -> ServerConfig:
    """Reads ``[server]`` through the schema's table reader ``r`` (see _config_schema)."""
    cfg = ServerConfig()
    bind = r.get("bind", "string or array of strings")
    if bind is not None:
        items = [bind] if isinstance(bind, str) else bind
        if not items:
            raise r.error("bind", "[server]: 'bind' needs at least one address")
        for item in items:
            try:
                parse_bind(item)
            except ValueError as e:
                raise r.error("bind", f"[server]: bad 'bind' address {e}") from None
        cfg.bind = list(items)
    for key, minimum in INT_KEYS.items():
        setattr(cfg, key, r.count(key, getattr(cfg, key), minimum=minimum))
    cfg.access_log = r.get("access_log", "boolean", False)
    cfg.ws_permessage_deflate = r.get("ws_permessage_deflate", "boolean", True)
    cfg.certfile = r.get("certfile", "string")
    cfg.keyfile = r.get("keyfile", "string")
    cfg.url_scheme = r.get("url_scheme", "string", "http")
    if cfg.url_scheme not in URL_SCHEMES:
        raise r.error("url_scheme", f"[server]: 'url_scheme' must be \"http\" or \"https\", "
                                    f"got {cfg.url_scheme!r}")
    cfg.cpu_affinity = r.get("cpu_affinity", "string", "off")
    if cfg.cpu_affinity not in CPU_AFFINITY:
        raise r.error("cpu_affinity", f"[server]: 'cpu_affinity' must be \"auto\" or \"off\", "
                                      f"got {cfg.cpu_affinity!r}")
    cfg.http_thread = r.get("http_thread", "string", "auto")
    if cfg.http_thread not in HTTP_THREADS:
        raise r.error("http_thread", f"[server]: 'http_thread' must be \"auto\", \"python\" or \"io\", "
                                     f"got {cfg.http_thread!r}")
    root = r.get("root_path", "string", "")
    if root and (not root.startswith("/") or any(c in root for c in "?#") or any(ord(c) < 0x21 for c in root)):
        raise r.error("root_path", f"[server]: 'root_path' must be a URL path starting with '/' "
                                   f"(no query, fragment or spaces), got {root!r}")
    cfg.root_path = root.rstrip("/")
    r.finish()
    return cfg
