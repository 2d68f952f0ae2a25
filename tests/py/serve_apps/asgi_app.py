"""A FastAPI app for the `puff serve --asgi` suite: JSON, bodies, lifespan state, WebSocket."""

import contextlib
import os

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, StreamingResponse


@contextlib.asynccontextmanager
async def lifespan(app):
    yield {"greeting": "hello from lifespan"}
    marker = os.environ.get("PUFF_TEST_SHUTDOWN_MARKER")
    if marker:
        with open(marker, "w") as f:
            f.write("shutdown ran")


app = FastAPI(lifespan=lifespan)


@app.get("/hello")
async def hello():
    return PlainTextResponse("hello")


@app.get("/json")
async def json_endpoint(request: Request):
    return {"message": "Hello, World!", "greeting": request.state.greeting,
            "http_version": request.scope["http_version"], "scheme": request.url.scheme}


@app.post("/echo")
async def echo(request: Request):
    body = await request.body()
    return PlainTextResponse(body[::-1])


@app.get("/text")
async def text():
    return PlainTextResponse("compressible text " * 500)


@app.get("/stream")
async def stream():
    async def gen():
        for i in range(5):
            yield f"part {i}\n".encode()

    return StreamingResponse(gen(), media_type="text/plain")


LARGE_SIZES = (70000, 5, 16384, 16383, 200000, 1, 40000)  # around the 16 KiB zero-copy threshold


def large_parts():
    return [bytes([65 + i]) * n for i, n in enumerate(LARGE_SIZES)]


@app.get("/large")
async def large():
    async def gen():
        for part in large_parts():
            yield part

    return StreamingResponse(gen(), media_type="application/octet-stream")


@app.websocket("/ws")
async def ws(websocket: WebSocket):
    await websocket.accept()
    try:
        while True:
            await websocket.send_text("echo:" + await websocket.receive_text())
    except WebSocketDisconnect:
        pass
