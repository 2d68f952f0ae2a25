"""``psycopg2.extensions`` for Django's imports: the isolation constants, adapters and no-op
type registration (Puff's driver converts values in C++ and needs none of it)."""

ISOLATION_LEVEL_AUTOCOMMIT = 0
ISOLATION_LEVEL_READ_UNCOMMITTED = 4
ISOLATION_LEVEL_READ_COMMITTED = 1
ISOLATION_LEVEL_REPEATABLE_READ = 2
ISOLATION_LEVEL_SERIALIZABLE = 3
ISOLATION_LEVEL_DEFAULT = None

UNICODE = object()


class cursor:  # noqa: N801 (psycopg2's name; Django keeps a reference, never instantiates it)
    pass


class QuotedString:
    """An SQL string literal; ``getquoted()`` gives its bytes."""

    encoding = "utf8"

    def __init__(self, value):
        self.adapted = value

    def getquoted(self):
        from .._values import quote

        return quote(str(self.adapted)).encode()


class _Adapted:
    encoding = "utf8"

    def __init__(self, value):
        self.adapted = value

    def getquoted(self):
        from .._values import quote

        return quote(self.adapted).encode()


def adapt(value):
    """An object whose ``getquoted()`` is ``value`` as an SQL literal (bytes)."""
    getquoted = getattr(value, "getquoted", None)
    return value if callable(getquoted) else _Adapted(value)


def register_adapter(type_, adapter):
    pass


def new_array_type(oids, name, base_caster):
    return (oids, name, base_caster)


def register_type(type_, scope=None):
    pass
