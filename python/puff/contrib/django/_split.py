"""Splitting an SQL string into its statements, for Django's multi-statement DDL
(``UPDATE ...; SET CONSTRAINTS ALL IMMEDIATE``): ``puff.postgres`` runs one statement per call
(the extended protocol), where psycopg sends such strings in one simple query."""

from __future__ import annotations

import re
from typing import List

# A token that may contain ';' without ending a statement, or a ';'.
_TOKEN = re.compile(r"""
      (?:[eE]'(?:[^'\\]|\\.|'')*'?)       # E'...' with backslash escapes
    | '(?:[^']|'')*'?                     # '...'
    | "(?:[^"]|"")*"?                     # "identifier"
    | --[^\n]*                            # -- comment
    | /\*                                 # /* comment (nesting handled below)
    | \$(?P<tag>[A-Za-z_][A-Za-z_0-9]*)?\$  # $tag$ ... $tag$
    | ;
""", re.X | re.S)


def split_statements(sql: str) -> List[str]:
    """The statements of ``sql`` (stripped, empty ones dropped). ';' inside string constants,
    quoted identifiers, dollar quotes and comments does not split."""
    out: List[str] = []
    start = i = 0
    n = len(sql)
    while i < n:
        m = _TOKEN.search(sql, i)
        if m is None:
            break
        tok = m.group(0)
        if tok == ";":
            out.append(sql[start:m.start()])
            start = i = m.end()
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
    out.append(sql[start:])
    return [s.strip() for s in out if s.strip()]
