"""Values between Django and ``puff.postgres``: parameter adaptation and SQL literals.

``adapt_params`` turns the few psycopg adapter objects Django may hand a cursor (``Json``/``Jsonb``,
``Inet``, ``ipaddress`` objects) into values ``puff.postgres`` sends; everything else passes
unchanged. ``quote``/``mogrify`` render values as SQL literals, for the schema editor's DDL
(``compose_sql``), ``sqlmigrate`` and the SQL shown in ``connection.queries``.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import ipaddress
import json
import math
import uuid
from typing import Any, Dict, Optional, Sequence


class JsonText(str):
    """JSON text for a jsonb parameter (``adapt_json_value``). The SQL gets a ``::jsonb`` cast
    after its placeholder (``_sqltext.cast_placeholders``), as psycopg's ``Jsonb`` is typed;
    in a list (Django's bulk insert arrays) it is text the server casts to ``jsonb[]``."""

    __slots__ = ()


# Types puff.postgres encodes itself: the fast path leaves them alone.
_PLAIN = frozenset({int, str, float, bool, type(None), decimal.Decimal, _dt.datetime, _dt.date, _dt.time,
                    _dt.timedelta, uuid.UUID, bytes, bytearray, memoryview, dict, JsonText})
_IP = (ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface, ipaddress.IPv6Interface,
       ipaddress.IPv4Network, ipaddress.IPv6Network)


def adapt_value(v: Any) -> Any:
    """One parameter as ``puff.postgres`` takes it."""
    t = type(v)
    if t in _PLAIN:
        return v
    if t is list or t is tuple:
        return [adapt_value(x) for x in v] if any(type(x) not in _PLAIN for x in v) else v
    if isinstance(v, (str, int, float)):  # subclasses (SafeString, psycopg's Int4, ...)
        return v
    if isinstance(v, _IP):
        return str(v)
    adapted = getattr(v, "adapted", _missing)  # psycopg2's Json, QuotedString
    if adapted is not _missing:
        dumps = getattr(v, "dumps", None)
        return JsonText(dumps(adapted)) if callable(dumps) else adapted
    obj = getattr(v, "obj", _missing)  # psycopg 3's Json/Jsonb
    if obj is not _missing and callable(getattr(v, "dumps", None)):
        text = v.dumps(obj)
        return JsonText(text.decode() if isinstance(text, (bytes, bytearray)) else text)
    addr = getattr(v, "addr", _missing)  # psycopg2's Inet
    if addr is not _missing:
        return str(addr)
    return v  # puff.postgres raises DataError naming the parameter


_missing = object()


def json_casts(params: Any) -> Optional[Dict[int, str]]:
    """{index: "jsonb"} for the JSON parameters of a parameter sequence, or None."""
    if isinstance(params, dict):
        return None
    casts = {i: "jsonb" for i, p in enumerate(params) if type(p) is JsonText}
    return casts or None


def adapt_params(params: Any) -> Any:
    """The parameter sequence (or mapping) with every value adapted; the same object when nothing
    needs adapting."""
    if params is None:
        return None
    if isinstance(params, dict):
        if all(type(v) in _PLAIN for v in params.values()):
            return params
        return {k: adapt_value(v) for k, v in params.items()}
    for p in params:
        if type(p) not in _PLAIN:
            return [adapt_value(v) for v in params]
    return params


# ---- SQL literals ------------------------------------------------------------------------------


def _quote_str(s: str) -> str:
    if "\x00" in s:
        raise ValueError("A string literal cannot contain NUL (0x00) characters.")
    if "\\" in s:
        return "E'" + s.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + s.replace("'", "''") + "'"


def quote(v: Any) -> str:
    """``v`` as an SQL literal (psycopg2's ``adapt(v).getquoted()``, as text)."""
    if v is None:
        return "NULL"
    if type(v) is JsonText:
        return _quote_str(v) + "::jsonb"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, str):
        return _quote_str(v)
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        if math.isnan(v):
            return "'NaN'::float8"
        if math.isinf(v):
            return "'Infinity'::float8" if v > 0 else "'-Infinity'::float8"
        return repr(v)
    if isinstance(v, decimal.Decimal):
        if v.is_nan():
            return "'NaN'::numeric"
        if v.is_infinite():
            return "'Infinity'::numeric" if v > 0 else "'-Infinity'::numeric"
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "'\\x" + bytes(v).hex() + "'::bytea"
    if isinstance(v, _dt.datetime):
        return f"'{v.isoformat()}'::" + ("timestamptz" if v.utcoffset() is not None else "timestamp")
    if isinstance(v, _dt.date):
        return f"'{v.isoformat()}'::date"
    if isinstance(v, _dt.time):
        return f"'{v.isoformat()}'::" + ("timetz" if v.utcoffset() is not None else "time")
    if isinstance(v, _dt.timedelta):
        return f"'{v.days} days {v.seconds}.{v.microseconds:06d} seconds'::interval"
    if isinstance(v, uuid.UUID):
        return f"'{v}'::uuid"
    if isinstance(v, list):
        return "ARRAY[" + ", ".join(quote(x) for x in v) + "]" if v else "'{}'"
    if isinstance(v, tuple):
        return "(" + ", ".join(quote(x) for x in v) + ")"
    if isinstance(v, dict):
        return _quote_str(json.dumps(v)) + "::jsonb"
    if isinstance(v, _IP):
        return _quote_str(str(v)) + "::inet"
    getquoted = getattr(v, "getquoted", None)
    if callable(getquoted):
        q = getquoted()
        return q.decode() if isinstance(q, (bytes, bytearray)) else q
    adapted = adapt_value(v)
    if adapted is not v:
        return quote(adapted)
    raise TypeError(f"cannot render a {type(v).__name__} as an SQL literal")


def mogrify(sql: str, params: Optional[Sequence]) -> str:
    """``sql`` with its ``%s`` / ``%(name)s`` placeholders replaced by literals. Like psycopg2's
    ``cursor.mogrify``: plain %-formatting of the whole string (``%%`` gives ``%``); with
    ``params`` None the SQL is returned as written."""
    if params is None:
        return sql
    if isinstance(params, dict):
        return sql % {k: quote(v) for k, v in params.items()}
    return sql % tuple(quote(v) for v in params)
