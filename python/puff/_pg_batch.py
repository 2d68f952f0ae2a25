"""executemany inside a transaction: ``INSERT ... VALUES (one row of placeholders)`` runs as
multi-row INSERTs of up to ``ROWS_PER_STATEMENT`` rows each (docs/postgres.md, "executemany").

The server then runs one statement per chunk instead of one per row: the same rows, the same
rowcount, the same transaction. Only the plain form is rewritten (nothing after the row: no
``ON CONFLICT``, whose ``DO UPDATE`` would refuse two rows with the same key in one statement;
no ``RETURNING``), and only inside a transaction, where an error fails the whole transaction
anyway (in autocommit mode each row commits on its own). Statement-level triggers fire once per
chunk rather than once per row.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import _pg_sql

ROWS_PER_STATEMENT = 1000
MAX_PARAMS = 65535  # the protocol's limit per statement

_NAME = r'(?:[A-Za-z_][\w$]*|"(?:[^"]|"")+")'
_INSERT = re.compile(
    rf"""\s*INSERT\s+INTO\s+{_NAME}(?:\s*\.\s*{_NAME})?
         \s*(?:\(\s*{_NAME}(?:\s*,\s*{_NAME})*\s*\))?
         \s*VALUES\s*(?P<row>\(\s*\$1(?:\s*,\s*\$\d+)*\s*\))\s*;?\s*\Z""",
    re.IGNORECASE | re.VERBOSE)
_PLACEHOLDER = re.compile(r"\$(\d+)")

#: (head, columns, rows) -> the statement's text
_texts: Dict[Tuple[str, int, int], str] = {}


def _text(head: str, n: int, rows: int) -> str:
    key = (head, n, rows)
    text = _texts.get(key)
    if text is None:
        groups = ("(" + ", ".join(f"${r * n + c + 1}" for c in range(n)) + ")" for r in range(rows))
        text = head + ", ".join(groups)
        if len(_texts) > 256:
            _texts.clear()
        _texts[key] = text
    return text


def _chunks(total: int, per: int) -> List[int]:
    """Full chunks of `per` rows, then the rest in powers of two: a handful of statement texts,
    each prepared once per connection and reused by every call."""
    sizes = [per] * (total // per)
    rest = total % per
    bit = 1 << max(rest.bit_length() - 1, 0)
    while rest:
        if rest >= bit:
            sizes.append(bit)
            rest -= bit
        bit >>= 1
    return sizes


def insert_batches(sql: str, seq: Sequence[Any]) -> Optional[List[Tuple[str, List[Any]]]]:
    """[(statement, params), ...] covering every row of `seq` for a plain single-row INSERT, or
    None (not that form, or a row that does not fit it: the caller's per-row path then reports
    what is wrong with it)."""
    if len(seq) < 2:
        return None
    try:
        text, names, count = _pg_sql.rewrite(sql)
    except _pg_sql.PlaceholderError:
        return None
    m = _INSERT.match(text)
    if m is None:
        return None
    numbers = [int(x) for x in _PLACEHOLDER.findall(m.group("row"))]
    n = len(numbers)
    if numbers != list(range(1, n + 1)) or (count and count != n) or (names and len(names) != n):
        return None
    flat: List[Any] = []
    if names:
        for row in seq:
            if not isinstance(row, dict):
                return None
            try:
                flat.extend([row[k] for k in names])
            except KeyError:
                return None
    else:
        for row in seq:
            if not isinstance(row, (tuple, list)) or len(row) != n:
                return None
            flat.extend(row)
    head = text[:m.start("row")]
    per = max(1, min(ROWS_PER_STATEMENT, MAX_PARAMS // n))
    out = []
    pos = 0
    for rows in _chunks(len(seq), per):
        out.append((_text(head, n, rows), flat[pos:pos + rows * n]))
        pos += rows * n
    return out
