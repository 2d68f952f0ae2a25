"""Django's postgresql introspection, with the column sizes psycopg reads from the result's
type modifiers (``puff.postgres``'s ``cursor.description`` has only names and type OIDs):
``inspectdb`` needs them for ``CharField(max_length=...)`` and ``DecimalField(max_digits=...,
decimal_places=...)``."""

from django.db.backends.postgresql import introspection as _pg_introspection

_CHAR_TYPES = frozenset({1042, 1043})  # bpchar, varchar
_NUMERIC = 1700


def _sizes(type_oid, typmod, typlen):
    """(display_size, internal_size, precision, scale) as psycopg computes them."""
    internal = typlen if typlen > 0 else None
    if type_oid in _CHAR_TYPES and typmod >= 4:
        return typmod - 4, internal, None, None
    if type_oid == _NUMERIC and typmod >= 4:
        return None, internal, ((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF
    return None, internal, None, None


class DatabaseIntrospection(_pg_introspection.DatabaseIntrospection):
    def get_table_description(self, cursor, table_name):
        fields = super().get_table_description(cursor, table_name)
        cursor.execute(
            """
            SELECT a.attname, a.atttypid, a.atttypmod, t.typlen
            FROM pg_attribute a
            JOIN pg_type t ON a.atttypid = t.oid
            JOIN pg_class c ON a.attrelid = c.oid
            WHERE c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
                AND c.relkind IN ('f', 'm', 'p', 'r', 'v') AND pg_catalog.pg_table_is_visible(c.oid)
            """,
            [table_name],
        )
        sizes = {name: _sizes(oid, typmod, typlen) for name, oid, typmod, typlen in cursor.fetchall()}
        out = []
        for f in fields:
            display, internal, precision, scale = sizes.get(f.name, (None, None, None, None))
            out.append(f._replace(display_size=display, internal_size=internal, precision=precision, scale=scale))
        return out
