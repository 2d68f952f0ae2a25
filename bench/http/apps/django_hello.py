"""Django hello: a one-file project (settings in code, no database, minimal middleware).

CommonMiddleware is the one middleware kept: it sets Content-Length, as in any real project
(without it, servers that do not chunk end the body by closing the connection)."""

from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        SECRET_KEY="bench-only-not-secret",
        ROOT_URLCONF=__name__,
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        INSTALLED_APPS=[],
        DATABASES={},
        USE_TZ=True,
        LOGGING_CONFIG=None,
    )

from django.core.wsgi import get_wsgi_application  # noqa: E402  (needs the settings above)
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def hello(request):
    return HttpResponse(b"Hello, World!", content_type="text/plain")


urlpatterns = [path("", hello)]

app = get_wsgi_application()
