"""The serving floor for bench/serving.py: a bare ASGI app (no framework, no auth, no logging) that
answers `POST /` with `{"inputs": [[...], ...]}` by calling ONNX Runtime, as the least any server
on the same uvicorn (httptools, uvloop) and the same session can do per request.

The model file comes from SERVING_FLOOR_MODEL; the session has the portal's options
(apps/serving/inference/runtime.py: intra-op threads SERVING_ORT_INTRA_THREADS or 1, inter-op 1,
sequential, every graph optimisation, CPU) so that only the code around the call differs.
`GET /` answers 200 once the session is loaded (the benchmark's readiness check). Benchmarks only.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort

from bench.floor_app import lifespan

_options = ort.SessionOptions()
_options.intra_op_num_threads = int(os.environ.get("SERVING_ORT_INTRA_THREADS", "1"))
_options.inter_op_num_threads = 1
_options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
SESSION = ort.InferenceSession(os.environ["SERVING_FLOOR_MODEL"], _options, providers=["CPUExecutionProvider"])
INPUT = SESSION.get_inputs()[0].name
OUTPUTS = [o.name for o in SESSION.get_outputs()]
_JSON = (b"content-type", b"application/json")


async def _reply(send, status: int, body: bytes) -> None:
    headers = [_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(receive, send)
    if scope["method"] != "POST":
        return await _reply(send, 200, b'{"ready": true}')
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    try:
        rows = np.asarray(json.loads(b"".join(chunks))["inputs"], dtype=np.float32)
        results = SESSION.run(OUTPUTS, {INPUT: rows})
    except Exception as exc:  # a bad body: 400, as any server would answer
        return await _reply(send, 400, json.dumps({"detail": str(exc)}).encode())
    body = json.dumps({"outputs": {name: r.tolist() for name, r in zip(OUTPUTS, results, strict=True)}})
    await _reply(send, 200, body.encode())
