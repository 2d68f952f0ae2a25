"""Flask hello: one route returning text/plain."""

from flask import Flask, Response

app = Flask(__name__)


@app.route("/")
def hello():
    return Response("Hello, World!", mimetype="text/plain")
