"""Which Puff pool a Django database uses (docs/django.md, "Settings").

- ``OPTIONS["pool"] = "<name>"``: the ``[[postgres]]`` pool of that name (its URL from puff.toml,
  ``--<name>-postgres-url`` or ``PUFF_<NAME>_POSTGRES_URL``), shared with the rest of the process.
  ``NAME`` may be left out; it then defaults to the pool's database.
- no ``pool`` and no ``NAME``/``HOST``: the pool named ``default``. (Upstream Puff's
  ``OPTIONS["dbname"] = "<pool name>"`` is read as ``pool`` when ``NAME`` is empty.)
- no ``pool`` but ``NAME`` (and optionally ``USER``, ``PASSWORD``, ``HOST``, ``PORT``, libpq
  keys such as ``sslmode`` in ``OPTIONS``): a private pool for that URL.

When the database Django asks for is not the pool's (the test runner's ``test_<NAME>``, or the
``postgres`` database it uses to create it), the engine opens a private pool with the pool's URL
and that database. Private pools are named ``django:<database>:<hash>``; ``OPTIONS["pool_size"]``
sets their size (default: the base pool's, or 10).
"""

from __future__ import annotations

import hashlib
from typing import Any, Dict, Optional, Tuple
from urllib.parse import quote, unquote, urlencode, urlsplit

from django.core.exceptions import ImproperlyConfigured

from puff import postgres as _pg

#: OPTIONS keys that are not libpq connection parameters.
ENGINE_OPTIONS = frozenset({"pool", "pool_size", "dbname", "isolation_level", "assume_role", "server_side_binding",
                            "prepare_threshold", "cursor_factory", "context"})

#: private pool name -> (url, database, pool size)
_private: Dict[str, Tuple[str, str, int]] = {}


def _base(settings: Dict[str, Any]) -> Tuple[Optional[str], Optional[str], int]:
    """(name of the configured pool or None, its URL or None, pool size)."""
    opts = settings.get("OPTIONS") or {}
    name = opts.get("pool")
    if name is None and not settings.get("NAME") and isinstance(opts.get("dbname"), str):
        name = opts["dbname"]  # upstream Puff's spelling: OPTIONS = {"dbname": "<pool name>"}
    if name is True:
        name = "default"
    if not name and not settings.get("NAME") and not settings.get("HOST"):
        name = "default"
    if not name:
        return None, None, int(opts.get("pool_size", 10))
    if not isinstance(name, str):
        raise ImproperlyConfigured(f"DATABASES OPTIONS['pool'] must be the name of a Puff Postgres pool, not {name!r}")
    try:
        url, size, _options = _pg._settings(name)
    except _pg.InterfaceError as e:
        raise ImproperlyConfigured(str(e)) from None
    return name, url, int(opts.get("pool_size", size))


def url_database(url: str) -> str:
    """The database a libpq URL (or key=value string) names ('' when it names none)."""
    if "://" in url:
        parts = urlsplit(url)
        return unquote(parts.path.lstrip("/"))
    for item in url.split():
        key, _, value = item.partition("=")
        if key == "dbname":
            return value.strip("'")
    return ""


def _with(url: str, database: str, settings: Dict[str, Any]) -> str:
    """``url`` with another database (and USER/PASSWORD/HOST/PORT from settings, when set)."""
    if "://" not in url:  # key=value form: later keys win in libpq
        extra = {"dbname": database, "user": settings.get("USER"), "password": settings.get("PASSWORD"),
                 "host": settings.get("HOST"), "port": settings.get("PORT")}
        return url + "".join(f" {k}={_kv(v)}" for k, v in extra.items() if v)
    parts = urlsplit(url)
    user, password = parts.username, parts.password
    host, port = parts.hostname, parts.port
    user = settings.get("USER") or (unquote(user) if user else None)
    password = settings.get("PASSWORD") or (unquote(password) if password else None)
    host = settings.get("HOST") or host
    port = settings.get("PORT") or port
    return _build(parts.scheme, user, password, host, port, database, parts.query)


def _kv(value: Any) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _build(scheme, user, password, host, port, database, query: str = "") -> str:
    netloc = ""
    if user:
        netloc = quote(str(user), safe="") + (":" + quote(str(password), safe="") if password else "") + "@"
    if host and str(host).startswith("/"):  # a unix-socket directory goes in the query
        query = "&".join(q for q in (query, urlencode({"host": host})) if q)
        host = None
    if host:
        netloc += f"[{host}]" if ":" in str(host) else str(host)
    if port:
        netloc += f":{port}"
    return f"{scheme}://{netloc}/{quote(database, safe='')}" + (f"?{query}" if query else "")


def _from_settings(settings: Dict[str, Any], database: str) -> str:
    opts = settings.get("OPTIONS") or {}
    query = urlencode({k: v for k, v in opts.items() if k not in ENGINE_OPTIONS})
    return _build("postgresql", settings.get("USER"), settings.get("PASSWORD"), settings.get("HOST"),
                  settings.get("PORT"), database, query)


def resolve(settings: Dict[str, Any]) -> str:
    """The name of the Puff pool for a Django settings dict (declaring a private one if needed).
    ``NAME`` None means the ``postgres`` maintenance database, as in Django's own engine."""
    name, url, size = _base(settings)
    wanted = settings.get("NAME")
    if wanted is None:
        wanted = "postgres"
    if name is not None:
        same_server = not any(settings.get(k) for k in ("USER", "PASSWORD", "HOST", "PORT"))
        if same_server and (not wanted or wanted == url_database(url)):
            return name
        url = _with(url, wanted, settings)
    else:
        url = _from_settings(settings, wanted)
    digest = hashlib.sha1(f"{url}#{size}".encode()).hexdigest()[:10]
    private = f"django:{wanted}:{digest}"
    if private not in _private:
        _pg.configure(private, url, pool_size=size)
        _private[private] = (url, wanted, size)
    return private


def normalize(settings: Dict[str, Any]) -> None:
    """Makes the choice of pool explicit in a Django settings dict, once, before Django uses it:
    ``OPTIONS["pool"]`` names the pool when one is used, and an empty ``NAME`` becomes the
    pool's database (the test runner derives ``test_<NAME>`` from it)."""
    name, url, _size = _base(settings)
    if name is not None:
        settings["OPTIONS"] = {**(settings.get("OPTIONS") or {}), "pool": name}
        if settings.get("NAME") == "":
            settings["NAME"] = url_database(url)


def close_database(database: str) -> None:
    """Closes the private pools on ``database`` (before Django drops or clones it: Postgres
    refuses while connections are open). They reopen on next use."""
    for name, (url, db, size) in list(_private.items()):
        if db == database:
            _pg.configure(name, url, pool_size=size)
