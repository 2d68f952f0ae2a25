"""FastAPI JSON: {"message": "Hello, World!"} from a plain async route."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
async def hello():
    return {"message": "Hello, World!"}
