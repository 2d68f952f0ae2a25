"""A small ``.env`` reader (no third-party dependency).

The accepted syntax is the common subset of python-dotenv, docker compose and dotenvy:

- one ``KEY=VALUE`` per line; blank lines and ``# comments`` are skipped; ``export KEY=VALUE``
  is accepted; spaces around ``=`` are ignored;
- unquoted values end at the end of the line or at `` #`` (a comment); surrounding spaces are
  stripped;
- ``'single quoted'`` values are literal and may span lines;
- ``"double quoted"`` values may span lines and understand ``\\n \\r \\t \\" \\\\ \\$``;
- ``${NAME}`` and ``${NAME:-default}`` in unquoted and double-quoted values expand to the
  environment variable (or a variable defined earlier in the same file).

Anything else is an error naming the file and line: a typo in a secrets file should not pass
silently.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Dict, MutableMapping, Optional

_KEY = re.compile(r"(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=\s*")
_EXPAND = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}


class DotenvError(ValueError):
    """A syntax error in a dotenv file; ``path`` and ``line`` say where."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message


def find_dotenv(start: Optional[os.PathLike] = None, name: str = ".env") -> Optional[Path]:
    """The first ``name`` file found in ``start`` (default: the cwd) or one of its parents."""
    here = Path(start or os.getcwd()).resolve()
    for directory in (here, *here.parents):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def parse(text: str, path: str = ".env",
          environ: Optional[MutableMapping[str, str]] = None) -> Dict[str, str]:
    """Parses dotenv ``text`` into an ordered dict. ``environ`` is used for ``${NAME}``."""
    env = os.environ if environ is None else environ
    values: Dict[str, str] = {}
    pos, line, n = 0, 1, len(text)

    def lookup(match: "re.Match[str]") -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name, values.get(name))
        if value is None or (value == "" and default is not None):
            return default or ""
        return value

    while pos < n:
        end = text.find("\n", pos)
        end = n if end < 0 else end
        raw = text[pos:end]
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            pos, line = end + 1, line + 1
            continue
        m = _KEY.match(raw, len(raw) - len(raw.lstrip()))
        if not m:
            raise DotenvError(path, line, f"expected KEY=VALUE, got {stripped!r}")
        key, start_line = m.group(1), line
        vpos = pos + m.end()
        quote = text[vpos] if vpos < n else ""
        if quote in ("'", '"'):
            value, vend = _quoted(text, vpos, quote, path, start_line)
            line += text.count("\n", pos, vend)
            rest_end = text.find("\n", vend)
            rest_end = n if rest_end < 0 else rest_end
            rest = text[vend:rest_end].strip()
            if rest and not rest.startswith("#"):
                raise DotenvError(path, line, f"unexpected text after the closing quote: {rest!r}")
            if quote == '"':
                value = _EXPAND.sub(lookup, value)
            values[key] = value
            pos, line = rest_end + 1, line + 1
            continue
        value = text[vpos:end]
        comment = re.search(r"\s#", value)
        if comment:
            value = value[: comment.start()]
        values[key] = _EXPAND.sub(lookup, value.strip())
        pos, line = end + 1, line + 1
    return values


def _quoted(text: str, start: int, quote: str, path: str, line: int):
    """Reads the quoted string starting at ``text[start]``; returns (value, index after it)."""
    out = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\" and quote == '"' and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    raise DotenvError(path, line, f"unterminated {quote}-quoted value")


def load(path: os.PathLike, environ: Optional[MutableMapping[str, str]] = None) -> Dict[str, str]:
    """Reads ``path`` and sets every variable that is not already set in ``environ``
    (default ``os.environ``): existing environment variables win. Returns the variables set."""
    env = os.environ if environ is None else environ
    text = Path(path).read_text(encoding="utf-8-sig")
    applied = {}
    for key, value in parse(text, str(path), env).items():
        if key not in env:
            env[key] = value
            applied[key] = value
    return applied
