"""The MLflow-shaped bare-ASGI floor for bench/mlflow_tracking.py: answers the calls the client's
`log_metric` and `log_batch` loops make (get-by-name, create, log-metric, log-batch, update) with
fixed JSON after reading the whole request body, and does nothing else. What the real client reaches
against it is the most any tracking server could give that client on this machine: the client's own
cost (building and serialising points, HTTP) is all that is left.

    taskset -c 0 python -m uvicorn bench.mlflow_floor_app:app --port 5098 --loop uvloop --http httptools
"""

import json
import time

from bench.floor_app import lifespan

_NOW = int(time.time() * 1000)
_EXPERIMENT = {"experiment_id": "1", "name": "bench-tracking", "lifecycle_stage": "active", "artifact_location": ""}
_RUN_INFO = {
    "run_id": "0" * 32, "run_uuid": "0" * 32, "experiment_id": "1", "status": "RUNNING", "start_time": _NOW,
    "lifecycle_stage": "active", "artifact_uri": "", "run_name": "floor", "user_id": "bench",
}  # fmt: skip
_ANSWERS = {
    "/api/2.0/mlflow/experiments/get-by-name": {"experiment": _EXPERIMENT},
    "/api/2.0/mlflow/experiments/create": {"experiment_id": "1"},
    "/api/2.0/mlflow/runs/create": {"run": {"info": _RUN_INFO, "data": {}}},
    "/api/2.0/mlflow/runs/update": {"run_info": {**_RUN_INFO, "status": "FINISHED"}},
}
_EMPTY = b"{}"


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]


_BODIES = {path: json.dumps(answer).encode() for path, answer in _ANSWERS.items()}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    more = True
    while more:  # read the whole body, as any server must
        message = await receive()
        more = message.get("more_body", False)
    body = _BODIES.get(scope["path"], _EMPTY)
    await send({"type": "http.response.start", "status": 200, "headers": _headers(body)})
    await send({"type": "http.response.body", "body": body})
