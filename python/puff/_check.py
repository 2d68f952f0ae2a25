"""``puff check``: validate the configuration and reach every configured pool.

The probes speak just enough of each protocol over a plain socket (no client library) to tell
"a Redis / Postgres server answers here" from "nothing, or something else, answers here":

- Redis (redis://, rediss://, unix://): ``AUTH`` when the URL has a password, then ``PING``;
  ``+PONG`` is ok. An authentication error still proves a Redis server answers: it is reported
  as reachable, with the server's message.
- Postgres: a protocol 3.0 ``StartupMessage``; an ``R`` (authentication request) or ``E``
  (error, e.g. unknown database) reply is a Postgres server answering. TLS is not negotiated.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import ssl
import struct
import time
from typing import List, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from .config import ConfigError, PoolConfig, PuffConfig, import_object

TIMEOUT_S = 2.0
_PG_AUTH = {0: "trust", 2: "kerberos", 3: "password", 5: "md5", 7: "gss", 9: "sspi", 10: "scram-sha-256"}


class ProbeError(Exception):
    """The service did not answer as expected; the message says why."""


def run_check(cfg: PuffConfig, out) -> int:
    """Prints one line per item checked; returns 0 (all good), 1 (a pool is unreachable) or 2
    (a dotted path in the config does not import)."""
    out.write(f"config {cfg.path or '(no puff.toml: defaults)'}: ok\n")
    status = 0
    for label, dotted, where in _dotted_paths(cfg):
        try:
            obj = import_object(dotted, label, cfg.where(*where))
            if label != "[[graphql]] schema" and not callable(obj):
                raise ConfigError(f"{label} {dotted!r} is not callable (it is {type(obj).__name__})")
            out.write(f"{label} {dotted}: ok\n")
        except ConfigError as e:
            out.write(f"{label} {dotted}: FAILED ({e.message})\n")
            if e.detail:
                out.write("".join("    " + line + "\n" for line in e.detail.rstrip().splitlines()))
            status = 2
    status = max(status, _serve_files(cfg, out))
    pools = list(cfg.pools())
    if not pools:
        out.write("no pools configured\n")
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(16, len(pools)))) as ex:
        results = list(ex.map(probe, pools))
    for pool, (ok, ms, detail) in zip(pools, results):
        head = f"{pool.name} {pool.kind} {pool.safe_url}"
        if ok:
            out.write(f"{head}: ok ({ms:.1f} ms{'; ' + detail if detail else ''})\n")
        else:
            out.write(f"{head}: FAILED ({detail})\n")
            status = status or 1
    out.flush()
    return status


def _dotted_paths(cfg: PuffConfig) -> List[Tuple[str, str, tuple]]:
    paths = [(f"[[commands]] {c.command_name}", c.function, ("commands", i, "function"))
             for i, c in enumerate(cfg.commands)]
    for key in ("global_state", "wsgi", "asgi"):
        if getattr(cfg, key):
            paths.append((key, getattr(cfg, key), (key,)))
    paths += [(f"[[mount]] {m.prefix} {m.interface}", m.app, ("mount", i, m.interface))
              for i, m in enumerate(cfg.mount)]
    paths += [("[[graphql]] schema", g.schema, ("graphql",)) for g in cfg.graphql]
    return paths


def _serve_files(cfg: PuffConfig, out) -> int:
    """The files `puff serve` needs: [[static]] directories and the TLS certificate and key."""
    from ._serve import check_static, check_tls

    checks = []
    if cfg.static:
        checks.append(("[[static]] directories", check_static))
    if cfg.server.certfile or cfg.server.keyfile:
        checks.append(("TLS files", check_tls))
    status = 0
    for what, check in checks:
        try:
            check(cfg)
            out.write(f"{what}: ok\n")
        except ConfigError as e:
            out.write(f"{what}: FAILED ({e.message})\n")
            status = 2
    return status


def probe(pool: PoolConfig, timeout: float = TIMEOUT_S) -> Tuple[bool, float, str]:
    """(reachable, milliseconds, detail) for one pool."""
    t0 = time.monotonic()
    try:
        if pool.kind == "postgres":
            detail = probe_postgres(pool.url, timeout)
        else:
            detail = probe_redis(pool.url, timeout)
    except ProbeError as e:
        return False, 0.0, str(e)
    except socket.timeout:
        return False, 0.0, f"no answer within {timeout:g} s"
    except socket.gaierror as e:
        return False, 0.0, f"cannot resolve host: {e.strerror or e}"
    except ssl.SSLError as e:
        return False, 0.0, f"TLS error: {e.reason or e}"
    except OSError as e:
        return False, 0.0, (e.strerror or str(e)).lower()
    return True, (time.monotonic() - t0) * 1000.0, detail


def _connect(parts, default_port: int, timeout: float, unix_path: Optional[str] = None) -> socket.socket:
    if unix_path:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(unix_path)
        except BaseException:
            sock.close()
            raise
        return sock
    sock = socket.create_connection((parts.hostname, parts.port or default_port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def _read_line(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise ProbeError("the server closed the connection" + (f" after {buf[:40]!r}" if buf else ""))
        buf += chunk
        if len(buf) > 65536:
            raise ProbeError("not a Redis server (reply line too long)")
    return buf[:-2]


def probe_redis(url: str, timeout: float = TIMEOUT_S) -> str:
    parts = urlsplit(url)
    sock = _connect(parts, 6379, timeout, parts.path if parts.scheme == "unix" else None)
    try:
        if parts.scheme == "rediss":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        if parts.password is not None:
            args = ([unquote(parts.username)] if parts.username else []) + [unquote(parts.password)]
            sock.sendall(_resp("AUTH", *args))
            reply = _read_line(sock)
            if reply.startswith(b"-"):
                return "answers, but authentication failed: " + reply[1:].decode(errors="replace")
            if reply != b"+OK":
                raise ProbeError(f"not a Redis server? AUTH got {reply[:60]!r}")
        sock.sendall(_resp("PING"))
        reply = _read_line(sock)
        if reply == b"+PONG":
            return ""
        if reply.startswith(b"-") and (b"NOAUTH" in reply or b"auth" in reply.lower()):
            return "answers, but authentication is required (put the password in the URL): " + (
                reply[1:].decode(errors="replace"))
        raise ProbeError(f"not a Redis server? PING got {reply[:60]!r}")
    finally:
        sock.close()


def _resp(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        data = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def probe_postgres(url: str, timeout: float = TIMEOUT_S) -> str:
    parts = urlsplit(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    user = unquote(parts.username or "") or query.get("user") or os.environ.get("USER", "postgres")
    database = unquote(parts.path.lstrip("/")) or query.get("dbname") or user
    host = parts.hostname or query.get("host", "")
    unix_path = None
    if host.startswith("/"):
        unix_path = os.path.join(host, f".s.PGSQL.{parts.port or query.get('port') or 5432}")
    sock = _connect(parts, 5432, timeout, unix_path)
    try:
        params = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in (
            ("user", user), ("database", database), ("application_name", "puff-check")))
        body = struct.pack("!i", 196608) + params + b"\0"
        sock.sendall(struct.pack("!i", len(body) + 4) + body)
        header = _recv_exact(sock, 5)
        kind, length = header[:1], struct.unpack("!i", header[1:])[0]
        if kind not in (b"R", b"E") or not 4 <= length <= 65536:
            raise ProbeError(f"not a Postgres server? got {header!r}")
        payload = _recv_exact(sock, length - 4)
        if kind == b"R":
            code = struct.unpack("!i", payload[:4])[0] if len(payload) >= 4 else -1
            try:
                sock.sendall(b"X\0\0\0\x04")  # Terminate
            except OSError:
                pass
            return f"auth: {_PG_AUTH.get(code, code)}"
        fields = {f[:1]: f[1:].decode(errors="replace") for f in payload.split(b"\0") if f}
        return "server replied: {}: {}".format(fields.get(b"S", "ERROR"), fields.get(b"M", "?"))
    finally:
        sock.close()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ProbeError("the server closed the connection" + (f" after {buf[:40]!r}" if buf else ""))
        buf += chunk
    return buf
