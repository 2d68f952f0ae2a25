"""Django's postgresql schema editor, quoting values without psycopg."""

from django.db.backends.postgresql import schema as _pg_schema

from .._values import quote


class DatabaseSchemaEditor(_pg_schema.DatabaseSchemaEditor):
    def quote_value(self, value):
        return quote(value)
