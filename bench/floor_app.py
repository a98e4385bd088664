"""The bare-ASGI floor (no framework): answers JSON, like ../shared/anchors/asgi_app.py minus ORT."""

import json

BODY = json.dumps({"id": 1, "username": "bench", "roles": ["ml-engineers"]}).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def lifespan(receive, send) -> None:
    """ASGI lifespan: nothing to start or stop (shared with bench/mlflow_floor_app.py)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
