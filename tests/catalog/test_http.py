"""Through a real ASGI server (uvicorn): multipart upload, then a streamed, decrypted download."""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
import pytest
import requests
from onnx import TensorProto, helper, numpy_helper

from apps.core.models import AuditEntry
from tests.conftest import api_client_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _big_onnx(floats: int) -> bytes:
    """A valid ONNX model of several MiB (one large initializer), so the download spans chunks."""
    weight = numpy_helper.from_array(np.arange(floats, dtype=np.float32), name="w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "big",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", floats])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", floats])],
        initializer=[weight],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def test_upload_and_streamed_download_over_asgi(portal_server, owner, settings):
    settings.VAULT_STORAGE = None  # the server process uses the default vault folder, VAULT_ROOT
    data = _big_onnx(900_000)  # ~3.6 MB: four vault chunks
    onnx.checker.check_model(onnx.load_from_string(data))
    token = api_client_for(owner)._credentials["HTTP_AUTHORIZATION"]
    headers = {"Authorization": token}
    assert requests.post(f"{portal_server}/api/v1/models/", json={"name": "big-add"}, headers=headers, timeout=30).ok
    response = requests.post(
        f"{portal_server}/api/v1/models/big-add/versions/",
        files={"artifact": ("big.onnx", data)},
        data={"metrics": '{"mse": 0.5}', "framework": "onnx"},
        headers=headers,
        timeout=60,
    )
    assert response.status_code == 201, response.text
    assert response.json()["signature"]["inputs"][0]["shape"] == ["batch", 900_000]
    download = requests.get(
        f"{portal_server}/api/v1/models/big-add/versions/1/artifact", headers=headers, stream=True, timeout=60
    )
    assert download.status_code == 200 and int(download.headers["Content-Length"]) == len(data)
    body = b"".join(download.iter_content(1 << 16))
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()
    assert download.headers["X-Content-SHA256"] == hashlib.sha256(data).hexdigest()
    events = AuditEntry.objects.filter(additional_data__event__in=["artifact.upload", "artifact.download"])
    assert sorted(e.additional_data["event"] for e in events) == ["artifact.download", "artifact.upload"]
    assert requests.get(f"{portal_server}/api/v1/models/big-add/versions/1/artifact", timeout=30).status_code == 401
