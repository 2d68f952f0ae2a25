"""Django's postgresql operations, with values adapted for ``puff.postgres`` and SQL composed
without a psycopg connection."""

from __future__ import annotations

import datetime
import ipaddress
import json

from django.conf import settings
from django.db.backends.postgresql import operations as _pg_ops
from django.db.models.fields.json import KeyTransform

from .._values import JsonText, mogrify


def _json_text(value, expression, connection):
    # puff.postgres decodes jsonb to Python values; JSONField.from_db_value wants the JSON text
    # (as psycopg gives it to Django), except for key transforms, which it takes decoded.
    if value is None or (isinstance(expression, KeyTransform) and not isinstance(value, str)):
        return value
    return json.dumps(value)


def _inet_text(value, expression, connection):
    # Postgres's text form: inet shows /bits only when it is not the full width.
    if isinstance(value, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return str(value.ip) if value.network.prefixlen == value.max_prefixlen else str(value)
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return str(value)
    return value


class DatabaseOperations(_pg_ops.DatabaseOperations):
    def adapt_json_value(self, value, encoder):
        return JsonText(_pg_ops.get_json_dumps(encoder)(value))

    def adapt_integerfield_value(self, value, internal_type):
        return value  # puff.postgres sizes ints itself (psycopg 3 needs Int2/Int4/Int8 wrappers)

    def adapt_ipaddressfield_value(self, value):
        return str(value) if value else None

    def adapt_datetimefield_value(self, value):
        # USE_TZ = False: naive datetimes are in TIME_ZONE. Send them aware, so the server does not
        # read them in the session time zone of whichever shared connection runs the statement.
        if (value is not None and not settings.USE_TZ and isinstance(value, datetime.datetime)
                and value.tzinfo is None and self.connection.timezone_name):
            import zoneinfo

            return value.replace(tzinfo=zoneinfo.ZoneInfo(self.connection.timezone_name))
        return value

    def get_db_converters(self, expression):
        converters = super().get_db_converters(expression)
        internal_type = expression.output_field.get_internal_type()
        if internal_type == "JSONField":
            converters.append(_json_text)
        elif internal_type in ("GenericIPAddressField", "IPAddressField"):
            converters.append(_inet_text)
        elif internal_type == "DateTimeField":
            convert = self._datetime_converter()
            if convert is not None:
                converters.append(convert)
        return converters

    def _datetime_converter(self):
        """puff.postgres returns timestamptz in UTC; Django wants the connection's time zone
        (USE_TZ = True) or naive local time (USE_TZ = False)."""
        tz = self.connection.timezone
        if settings.USE_TZ:
            if tz is None or tz is datetime.timezone.utc or getattr(tz, "key", None) in ("UTC", "Etc/UTC"):
                return None

            def to_zone(value, expression, connection):
                return value.astimezone(tz) if isinstance(value, datetime.datetime) else value

            return to_zone
        import zoneinfo

        local = zoneinfo.ZoneInfo(self.connection.timezone_name)

        def to_naive(value, expression, connection):
            if isinstance(value, datetime.datetime) and value.tzinfo is not None:
                return value.astimezone(local).replace(tzinfo=None)
            return value

        return to_naive

    def compose_sql(self, sql, params):
        return mogrify(sql, params)

    def last_executed_query(self, cursor, sql, params):
        try:
            return mogrify(sql, params)
        except (TypeError, ValueError, KeyError):
            return sql
