"""``puff django dbshell``: psql on the pool's URL."""

from django.db.backends.postgresql import client as _pg_client

from . import pools


class DatabaseClient(_pg_client.DatabaseClient):
    @classmethod
    def settings_to_cmd_args_env(cls, settings_dict, parameters):
        from puff import postgres

        url = postgres._settings(pools.resolve(settings_dict))[0]
        return [cls.executable_name, *parameters, url], None
