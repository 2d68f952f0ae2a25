"""Django on Puff: the database ENGINE ``puff.contrib.django.postgres`` and ``query_and_params``.

See docs/django.md. Importing this package installs the import hook that lets Django's
postgresql modules import without psycopg (``_import_hook``) and makes Django's connections per
greenlet whatever the ENGINE (``_connections``); ``puff`` imports it at start-up when
``django = true`` is in puff.toml.
"""

from __future__ import annotations

from typing import Any, List, Tuple

from . import _connections, _import_hook

_import_hook.install()
try:
    import django.db  # noqa: F401 (settings are not needed yet: connections are created lazily)
except ImportError:  # query_and_params users have Django; the hook alone costs nothing without it
    pass
else:
    _connections.install()

__all__ = ["query_and_params"]


def query_and_params(queryset: Any) -> Tuple[str, List[Any]]:
    """``(sql, params)`` for a queryset, with ``$1``, ``$2``, ... placeholders, as
    ``puff.postgres`` (and Puff's native pools) take them. Compiles the query for the queryset's
    database without running it (no I/O).

    Placeholders are found by ``puff.postgres``'s SQL tokenizer, not by text replacement: a
    ``%s`` inside a string constant, a quoted identifier, a dollar-quoted string or a comment
    stays as written, and ``%%`` becomes ``%``. A queryset that can match nothing (``id__in=[]``)
    raises Django's ``EmptyResultSet``, as ``str(queryset.query)`` does.
    """
    from puff import _pg_sql

    from ._sqltext import cast_placeholders
    from ._values import adapt_params, json_casts

    query = getattr(queryset, "query", queryset)
    sql, params = query.get_compiler(using=getattr(queryset, "db", None) or "default").as_sql()
    params = list(adapt_params(params))
    casts = json_casts(params)
    if casts:
        sql = cast_placeholders(sql, casts)
    text, names, count = _pg_sql.rewrite(sql)
    if names is not None or count != len(params):
        raise ValueError(f"the compiled query has {count} placeholders for {len(params)} parameters: {sql!r}")
    return text, params
