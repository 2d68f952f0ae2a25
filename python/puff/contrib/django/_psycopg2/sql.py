"""``psycopg2.sql`` for Django's imports. Django's psycopg2 branch sets ``quote`` here; Puff's
engine quotes values itself (``puff.contrib.django._values``)."""


def quote(value, connection=None):
    from .._values import quote as _quote

    return _quote(value)
