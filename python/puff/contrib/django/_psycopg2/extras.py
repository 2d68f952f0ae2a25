"""``psycopg2.extras`` for Django's imports: ``Json``, ``Inet`` and the range classes, plus no-op
registration functions. Puff's engine sends ``Json`` as JSON text and ``Inet`` as text; range
values are not supported by ``puff.postgres`` yet (using one raises ``DataError``)."""

import json as _json


class Json:
    """A value to send as JSON (``dumps`` makes its text)."""

    def __init__(self, adapted, dumps=None):
        self.adapted = adapted
        self._dumps = dumps or _json.dumps

    def dumps(self, obj):
        return self._dumps(obj)

    def getquoted(self):
        from .._values import quote

        return quote(self.dumps(self.adapted)).encode()


class Inet:
    """An inet/cidr value given as text."""

    def __init__(self, addr):
        self.addr = addr

    def getquoted(self):
        from .._values import quote

        return (quote(str(self.addr)) + "::inet").encode()


class Range:
    """A Postgres range (lower, upper, bounds such as '[)', or empty)."""

    def __init__(self, lower=None, upper=None, bounds="[)", empty=False):
        if empty:
            self._lower = self._upper = self._bounds = None
        else:
            if bounds not in ("[)", "(]", "()", "[]"):
                raise ValueError(f"bound flags not valid: {bounds!r}")
            self._lower, self._upper, self._bounds = lower, upper, bounds

    lower = property(lambda self: self._lower)
    upper = property(lambda self: self._upper)
    isempty = property(lambda self: self._bounds is None)
    lower_inf = property(lambda self: self._bounds is not None and self._lower is None)
    upper_inf = property(lambda self: self._bounds is not None and self._upper is None)
    lower_inc = property(lambda self: self._bounds is not None and self._lower is not None and self._bounds[0] == "[")
    upper_inc = property(lambda self: self._bounds is not None and self._upper is not None and self._bounds[1] == "]")

    def __eq__(self, other):
        if not isinstance(other, Range):
            return NotImplemented
        return (self._lower, self._upper, self._bounds) == (other._lower, other._upper, other._bounds)

    def __hash__(self):
        return hash((self._lower, self._upper, self._bounds))

    def __repr__(self):
        if self._bounds is None:
            return f"{type(self).__name__}(empty=True)"
        return f"{type(self).__name__}({self._lower!r}, {self._upper!r}, {self._bounds!r})"


class NumericRange(Range):
    pass


class DateRange(Range):
    pass


class DateTimeRange(Range):
    pass


class DateTimeTZRange(Range):
    pass


def register_uuid(*args, **kwargs):
    pass


def register_default_jsonb(*args, **kwargs):
    pass


def register_hstore(*args, **kwargs):
    pass
