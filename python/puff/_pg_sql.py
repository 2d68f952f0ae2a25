"""Placeholder rewriting for puff.postgres: ``%s`` / ``%(name)s`` / ``%%`` -> ``$n`` / ``%``.

A small tokenizer skips what is not SQL code: string constants ('...' with '' escapes, E'...'
with backslash escapes), quoted identifiers ("..."), dollar-quoted strings ($tag$...$tag$),
``--`` comments and nested ``/* */`` comments. Inside those, ``%s`` stays as written; ``%%`` becomes
``%`` everywhere (as with psycopg, where queries with parameters are %-formatted as a whole).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

_IDENT = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")

#: sql -> (rewritten sql, None for positional or the parameter names in $n order)
_cache: Dict[str, Tuple[str, Optional[List[str]], int]] = {}
_CACHE_MAX = 1024


class PlaceholderError(Exception):
    """Malformed placeholders (raised as ProgrammingError by puff.postgres)."""


def rewrite(sql: str) -> Tuple[str, Optional[List[str]], int]:
    """Returns (sql with $n, names or None, number of %s placeholders). Cached."""
    hit = _cache.get(sql)
    if hit is not None:
        return hit
    out = _rewrite(sql)
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    _cache[sql] = out
    return out


def _skip_quoted(sql: str, i: int, quote: str, backslash: bool, out: List[str]) -> int:
    """Copies a quoted token starting at sql[i] (the quote); returns the index after it."""
    n = len(sql)
    j = i + 1
    while j < n:
        c = sql[j]
        if backslash and c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
                continue
            j += 1
            break
        j += 1
    out.append(sql[i:j].replace("%%", "%"))
    return j


def _rewrite(sql: str) -> Tuple[str, Optional[List[str]], int]:
    out: List[str] = []
    names: List[str] = []
    index: Dict[str, int] = {}
    positional = 0
    i, n, start = 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c == "'" or c == '"':
            out.append(sql[start:i])
            backslash = c == "'" and i > 0 and sql[i - 1] in "eE" and (i < 2 or sql[i - 2] not in _IDENT)
            i = start = _skip_quoted(sql, i, c, backslash, out)
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j
            out.append(sql[start:i])
            out.append(sql[i:j])
            i = start = j
        elif c == "/" and sql.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(sql[start:i])
            out.append(sql[i:j])
            i = start = j
        elif c == "$" and (i == 0 or sql[i - 1] not in _IDENT):
            j = i + 1
            while j < n and sql[j] in _IDENT and sql[j] != "$":
                j += 1
            tag = sql[i:j + 1]
            if j < n and sql[j] == "$" and not (len(tag) > 2 and tag[1].isdigit()) and not tag[1:2].isdigit():
                end = sql.find(tag, j + 1)
                end = n if end < 0 else end + len(tag)
                out.append(sql[start:i])
                out.append(sql[i:end])
                i = start = end
            else:
                i += 1
        elif c == "%":
            out.append(sql[start:i])
            nxt = sql[i + 1:i + 2]
            if nxt == "%":
                out.append("%")
                i += 2
            elif nxt == "s":
                positional += 1
                out.append(f"${positional}")
                i += 2
            elif nxt == "(":
                close = sql.find(")", i + 2)
                if close < 0 or sql[close + 1:close + 2] != "s":
                    raise PlaceholderError(f"malformed named placeholder at position {i}: {sql[i:i + 20]!r}")
                name = sql[i + 2:close]
                if name not in index:
                    names.append(name)
                    index[name] = len(names)
                out.append(f"${index[name]}")
                i = close + 2
            else:
                raise PlaceholderError(
                    f"unsupported placeholder {sql[i:i + 2]!r} at position {i} (use %s, %(name)s, or %% for %)")
            start = i
        else:
            i += 1
    out.append(sql[start:])
    if positional and names:
        raise PlaceholderError("a query cannot mix %s and %(name)s placeholders")
    return "".join(out), (names if names else None), positional


def bind(sql: str, params: Union[Sequence, dict, None]) -> Tuple[str, Optional[Sequence]]:
    """(sql for the server, the parameter list). With params None the SQL is sent unchanged."""
    if params is None:
        return sql, None
    text, names, count = rewrite(sql)
    if (params.__class__ is tuple or params.__class__ is list) and names is None and count in (0, len(params)):
        return text, params  # the common case, without the checks below
    if isinstance(params, dict) or hasattr(params, "keys") and not isinstance(params, (list, tuple)):
        if names is None:
            if count:
                raise PlaceholderError("the query uses %s placeholders but the parameters are a mapping")
            return text, []
        try:
            return text, [params[k] for k in names]
        except KeyError as e:
            raise PlaceholderError(f"no value for the placeholder %({e.args[0]})s") from None
    if isinstance(params, (str, bytes)):
        raise PlaceholderError("parameters must be a sequence or a mapping, not a string")
    params = list(params)
    if names is not None:
        raise PlaceholderError("the query uses %(name)s placeholders but the parameters are a sequence")
    if count == 0:
        return text, params  # $1 placeholders, or none
    if count != len(params):
        raise PlaceholderError(f"the query has {count} placeholders but {len(params)} parameters were given")
    return text, params
