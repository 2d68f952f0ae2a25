"""``psycopg2.errors`` for Django's imports: the SQLSTATE classes of ``puff.postgres``."""

from puff import postgres as _pg

lookup = _pg.lookup


def __getattr__(name):
    cls = getattr(_pg, name, None)
    if isinstance(cls, type) and issubclass(cls, _pg.Error):
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
