"""WSGI entry point: `puff serve` (wsgi = "mysite.wsgi:application" in puff.toml)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
application = get_wsgi_application()
