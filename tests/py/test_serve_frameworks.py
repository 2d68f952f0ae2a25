"""`puff serve` with real frameworks: a Flask app and a Django project, unchanged."""

import json

import pytest

from http_helpers import Server

pytest.importorskip("flask")
pytest.importorskip("django")

FLASK_APP = """
    from flask import Flask, Response, jsonify, request

    app = Flask(__name__)

    @app.get("/")
    def index():
        return "hello from flask"

    @app.post("/echo")
    def echo():
        return jsonify(body=request.get_data(as_text=True), q=request.args.get("q"),
                       ctype=request.content_type)

    @app.get("/stream")
    def stream():
        return Response((f"line {i}\\n" for i in range(3)), mimetype="text/plain")

    @app.get("/boom")
    def boom():
        raise RuntimeError("flask view failed")
"""

DJANGO_SETTINGS = """
    SECRET_KEY = "test-only"
    DEBUG = False
    ALLOWED_HOSTS = ["*"]
    ROOT_URLCONF = "mysite.urls"
    INSTALLED_APPS = []
    MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
    DATABASES = {}
    USE_TZ = True
"""

DJANGO_URLS = """
    import puff
    from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
    from django.urls import path

    def hello(request):
        puff.sleep_ms(1)  # a Puff call inside a Django view
        return HttpResponse("hello from django")

    def echo(request):
        return JsonResponse({"body": request.body.decode(), "method": request.method,
                             "q": request.GET.get("q"), "script_name": request.META["SCRIPT_NAME"],
                             "path": request.path})

    def stream(request):
        return StreamingHttpResponse(f"part {i}\\n" for i in range(3))

    urlpatterns = [path("", hello), path("echo/", echo), path("stream/", stream)]
"""

DJANGO_WSGI = """
    import os
    from django.core.wsgi import get_wsgi_application

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")
    application = get_wsgi_application()
"""


def test_flask(project):
    project.write("flaskapp.py", FLASK_APP)
    project.write("puff.toml", 'wsgi = "flaskapp:app"\n')
    srv = Server(project, "--bind", "127.0.0.1:0")
    try:
        assert srv.get("/")[::2] == (200, b"hello from flask")
        status, headers, body = srv.request("POST", "/echo?q=1", body=b"payload",
                                            headers={"Content-Type": "text/plain"})
        assert status == 200 and json.loads(body) == {"body": "payload", "q": "1", "ctype": "text/plain"}
        status, headers, body = srv.get("/stream")
        assert (status, body) == (200, b"line 0\nline 1\nline 2\n")
        assert srv.get("/boom")[0] == 500 and srv.get("/nope")[0] == 404
        assert srv.get("/")[0] == 200
    finally:
        assert srv.stop() == 0


def test_django(project):
    project.write("mysite/__init__.py")
    project.write("mysite/settings.py", DJANGO_SETTINGS)
    project.write("mysite/urls.py", DJANGO_URLS)
    project.write("mysite/wsgi.py", DJANGO_WSGI)
    project.write(".env", "DJANGO_SETTINGS_MODULE=mysite.settings\n")
    project.write("puff.toml", 'wsgi = "mysite.wsgi:application"\n\n[server]\nroot_path = "/site"\n')
    srv = Server(project, "--bind", "127.0.0.1:0")
    try:
        assert srv.get("/site/")[::2] == (200, b"hello from django")
        status, _h, body = srv.request("POST", "/site/echo/?q=x", body=b"data")
        assert status == 200
        assert json.loads(body) == {"body": "data", "method": "POST", "q": "x", "script_name": "/site",
                                    "path": "/site/echo/"}
        status, headers, body = srv.get("/site/echo")  # CommonMiddleware: APPEND_SLASH redirect
        assert status == 301 and headers["Location"] == "/site/echo/"
        assert srv.get("/site/stream/")[::2] == (200, b"part 0\npart 1\npart 2\n")
        assert srv.get("/site/missing/")[0] == 404
    finally:
        assert srv.stop() == 0
