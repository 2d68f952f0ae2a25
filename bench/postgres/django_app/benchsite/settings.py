"""Settings of the bench-only Django site. BENCH_DJANGO_DB picks the database engine:
"puff" (puff.contrib.django.postgres on the pool "default") or "psycopg" (Django's own
postgresql backend with psycopg 3); BENCH_PG_URL is the database."""

import os
import urllib.parse

SECRET_KEY = "bench-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["benchsite"]
MIDDLEWARE = []
ROOT_URLCONF = "benchsite.urls"
WSGI_APPLICATION = "benchsite.wsgi.application"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
LOGGING_CONFIG = None

if os.environ.get("BENCH_DJANGO_DB", "puff") == "puff":
    DATABASES = {"default": {"ENGINE": "puff.contrib.django.postgres", "OPTIONS": {"pool": "default"}}}
else:
    _u = urllib.parse.urlsplit(os.environ["BENCH_PG_URL"])
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.postgresql", "NAME": _u.path.lstrip("/"),
        "USER": _u.username or "", "PASSWORD": _u.password or "", "HOST": _u.hostname or "",
        "PORT": str(_u.port or ""), "CONN_HEALTH_CHECKS": False,
        # Persistent connections, except under ASGI, where Django's docs say to disable them
        # (each request's connection would stay open: "too many clients").
        "CONN_MAX_AGE": int(os.environ.get("BENCH_DJANGO_CONN_MAX_AGE", "600")),
    }}
