"""The demo site served by `make run`: one `puff serve` process with

- a Flask app (WSGI, in greenlets) at `/`,
- a FastAPI app (ASGI, on Puff's asyncio loop) mounted at `/api`, with a JSON endpoint and a
  WebSocket echo endpoint used by the page at `/echo`.
"""

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from flask import Flask

import puff

flask_app = Flask(__name__)

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Puff demo</title>
<style>body{font:16px system-ui;max-width:40em;margin:2em auto}code{background:#eee;padding:0 .3em}</style>
</head><body>
<h1>☁ Puff demo</h1>
<p>This page is a <b>Flask</b> view running in a Puff greenlet (it just slept {slept} ms on a
native timer without blocking anyone).</p>
<ul>
<li><a href="/api/hello">/api/hello</a>: a <b>FastAPI</b> JSON endpoint on Puff's asyncio loop</li>
<li><a href="/echo">/echo</a>: a <b>WebSocket</b> echo page (FastAPI endpoint <code>/api/ws</code>)</li>
</ul>
</body></html>"""

ECHO_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Puff WebSocket echo</title></head><body>
<h1>WebSocket echo</h1>
<form id="f"><input id="msg" value="hello puff" autofocus> <button>send</button></form>
<pre id="log"></pre>
<script>
const log = (t) => document.getElementById("log").textContent += t + "\\n";
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/api/ws");
ws.onopen = () => { log("connected"); log("> hello puff"); ws.send("hello puff"); };
ws.onmessage = (e) => log("< " + e.data);
ws.onclose = (e) => log("closed " + e.code);
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault();
  const m = document.getElementById("msg").value;
  log("> " + m);
  ws.send(m);
};
</script></body></html>"""


@flask_app.route("/")
def index():
    puff.sleep_ms(5)
    return PAGE.replace("{slept}", "5")


@flask_app.route("/echo")
def echo_page():
    return ECHO_PAGE


api = FastAPI()


@api.get("/hello")
async def hello():
    await puff.sleep_ms(1)
    return {"message": "Hello from FastAPI on Puff", "served_by": "asyncio"}


@api.websocket("/ws")
async def ws_echo(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            await websocket.send_text("echo: " + await websocket.receive_text())
    except WebSocketDisconnect:
        pass
