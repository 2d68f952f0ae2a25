"""Scanning Django's SQL text (``%s`` placeholders) without touching string constants, quoted
identifiers, dollar quotes or comments:

- ``split_statements``: Django's DDL sometimes sends several statements in one string
  (``UPDATE ...; SET CONSTRAINTS ALL IMMEDIATE``); ``puff.postgres`` runs one statement per call
  (the extended protocol), where psycopg sends such strings in one simple query.
- ``cast_placeholders``: adds a type cast after chosen ``%s`` placeholders (JSON parameters are
  sent as text and must reach the server as ``jsonb``, as psycopg's ``Jsonb`` does).
"""

from __future__ import annotations

import re
from typing import Dict, Iterator, List

# Text that hides ';' and '%s' (constants, quoted identifiers, comments, dollar quotes), or one of
# the tokens looked for: ';', '%%', '%s'.
_TOKEN = re.compile(r"""
      (?:[eE]'(?:[^'\\]|\\.|'')*'?)       # E'...' with backslash escapes
    | '(?:[^']|'')*'?                     # '...'
    | "(?:[^"]|"")*"?                     # "identifier"
    | --[^\n]*                            # -- comment
    | /\*                                 # /* comment (nesting handled below)
    | \$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$  # $tag$ ... $tag$
    | ;
    | %[%s]                               # %% or a %s placeholder
""", re.X | re.S)


def _code_tokens(sql: str) -> Iterator[re.Match]:
    """The ';', '%%' and '%s' tokens of ``sql`` that are SQL code (not inside a constant,
    quoted identifier, dollar quote or comment)."""
    i = 0
    n = len(sql)
    while i < n:
        m = _TOKEN.search(sql, i)
        if m is None:
            return
        tok = m.group(0)
        if tok == ";" or tok[0] == "%":
            yield m
            i = m.end()
        elif tok == "/*":
            depth, j = 1, m.end()
            while j < n and depth:
                if sql.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif sql.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            i = j
        elif tok.startswith("$"):
            if m.start() > 0 and (sql[m.start() - 1].isalnum() or sql[m.start() - 1] in "_$"):
                i = m.start() + 1  # part of an identifier (a$b$), not a quote
                continue
            end = sql.find(tok, m.end())
            i = n if end < 0 else end + len(tok)
        else:
            if tok[:1] in "eE" and m.start() > 0 and (sql[m.start() - 1].isalnum() or sql[m.start() - 1] == "_"):
                i = m.start() + 1  # the E ends an identifier: plain '...' follows
                continue
            i = m.end()


def split_statements(sql: str) -> List[str]:
    """The statements of ``sql`` (stripped, empty ones dropped). ';' inside string constants,
    quoted identifiers, dollar quotes and comments does not split."""
    out: List[str] = []
    start = 0
    for m in _code_tokens(sql):
        if m.group(0) == ";":
            out.append(sql[start:m.start()])
            start = m.end()
    out.append(sql[start:])
    return [s.strip() for s in out if s.strip()]


def cast_placeholders(sql: str, casts: Dict[int, str]) -> str:
    """``sql`` with ``::<type>`` after the n-th ``%s`` placeholder (0-based) for each
    ``casts[n]``; other text unchanged."""
    out: List[str] = []
    start, index = 0, 0
    for m in _code_tokens(sql):
        if m.group(0) != "%s":
            continue
        cast = casts.get(index)
        if cast is not None:
            out.append(sql[start:m.end()])
            out.append("::" + cast)
            start = m.end()
        index += 1
    out.append(sql[start:])
    return "".join(out)
