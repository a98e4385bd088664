"""End to end against a real server (uvicorn over the test database): portal_client, a real
WebSocket client, and headless Chromium watching the run page's chart grow live.

One test on purpose: the session-wide server caches content type ids, which a transactional
test's flush recreates, so a second transactional test against it would see stale ids.
"""

import json
import math
from pathlib import Path

import pytest
from websockets.sync.client import connect

from apps.accounts.services import token_create
from apps.experiments.models import Run
from portal_client import PortalClient, PortalError
from tests.browser import screenshot, wait_for_js

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.browser]


def test_client_logs_a_run_and_a_socket_and_a_browser_see_it_live(
    portal_server, owner, stranger, page, login, tmp_path
):
    _, key = token_create(user=owner, name="script", scopes=["read", "write"], expires_days=1)
    client = PortalClient(portal_server, key, retries=0)
    ws_base = portal_server.replace("http://", "ws://")
    with client.start_run("client-demo", name="baseline", params={"lr": 0.01}, code_version="abc123") as run:
        with connect(f"{ws_base}/ws/runs/{run.id}/", additional_headers={"Authorization": f"Token {key}"}) as ws:
            assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
            run.log_metrics({"loss": 0.5}, step=1)
            run.flush()
            message = json.loads(ws.recv(timeout=5))
            while message["type"] == "status":  # the run's own status change may arrive first
                message = json.loads(ws.recv(timeout=5))
            assert (message["type"], message["key"], message["step"], message["value"]) == ("metric", "loss", 1, 0.5)
            run.set_progress(0.5)
            assert json.loads(ws.recv(timeout=5)) == {
                "type": "status",
                "run": run.id,
                "status": "running",
                "progress": 0.5,
            }
        for step in range(2, 2502):
            run.log_metric("loss", 1 / step if step != 100 else math.inf, step)
        run.log_metric("loss", math.nan, 2502)
    stored = Run.objects.get(pk=run.id)
    assert stored.status == "finished" and stored.code_version == "abc123" and stored.params == {"lr": "0.01"}
    history = client.get_metric_history(run.id, "loss")
    assert history["total"] == 2502 and history["values"][-1] is None
    small = client.get_metric_history(run.id, "loss", max_points=100)
    assert small["downsampled"] and small["steps"][0] == 1 and small["steps"][-1] == 2502
    assert client.search_runs(stored.experiment_id, filter="params.lr < 0.1")[0]["id"] == run.id

    # artifacts and log lines: stored encrypted, streamed back over ASGI byte for byte
    weights = tmp_path / "model.onnx"
    weights.write_bytes(bytes(range(256)) * 5000)
    assert client.log_artifact(run.id, weights, path="export/model.onnx")["size"] == 256 * 5000
    copy = client.download_artifact(run.id, "export/model.onnx", tmp_path / "copy.onnx")
    assert Path(copy).read_bytes() == weights.read_bytes()
    client.append_log(run.id, "epoch 1 done\n")
    assert Run.objects.get(pk=run.id).log_tail.endswith("epoch 1 done\n")
    with pytest.raises(PortalError) as info:
        client.log_batch(run.id, metrics=[{"key": "bad key!", "value": 1}])
    assert info.value.status == 400 and "not allowed" in str(info.value.detail)

    _, other = token_create(user=stranger, name="s", scopes=["read", "write"], expires_days=1)
    with pytest.raises(PortalError) as info:
        PortalClient(portal_server, other, retries=0).get_run(run.id)
    assert info.value.status == 404
    with connect(f"{ws_base}/ws/runs/{run.id}/", additional_headers={"Authorization": f"Token {other}"}) as ws:
        with pytest.raises(Exception) as closed:
            ws.recv(timeout=5)
        assert getattr(closed.value, "rcvd", None) is not None and closed.value.rcvd.code == 4403

    # a script that crashes leaves a failed run behind, not a "running" one forever
    crashing = client.start_run("client-demo", name="crash")
    with pytest.raises(RuntimeError, match="out of memory"), crashing:
        crashing.log_metric("loss", 1.0, 0)
        raise RuntimeError("out of memory")
    assert Run.objects.get(pk=crashing.id).status == "failed"

    # the browser: the run page draws the curve, then appends points and status as they arrive
    live_run = client.start_run("client-demo", name="live", params={"lr": 0.003})
    live_run.log_metrics({"loss": 1.0, "val_acc": 0.5}, step=0)
    live_run.flush()
    login("owner")
    page.goto(f"{portal_server}/runs/{live_run.id}/")
    page.wait_for_selector("#live-state.text-bg-success")
    points = "() => { const d = [...document.querySelectorAll('#charts .js-plotly-plot')].find(p => p.data[0].name === 'loss'); return d ? d.data[0].x.length : 0; }"
    wait_for_js(page, f"({points})() === 1")
    for step in range(1, 31):
        live_run.log_metrics({"loss": 1 / (1 + step)}, step=step)
    live_run.flush()
    wait_for_js(page, f"({points})() === 31")
    live_run.set_progress(0.6)
    wait_for_js(page, "document.getElementById('run-progress').textContent.trim() === '60%'")
    live_run.finish()
    page.wait_for_selector("#run-status .text-bg-success")
    screenshot(page, "experiments-run-live")
    page.goto(f"{portal_server}/experiments/{stored.experiment_id}/?sort=-metrics.loss")
    page.check(f"input.run-pick[value='{run.id}']")
    page.check(f"input.run-pick[value='{live_run.id}']")
    page.click("#compare-btn")
    page.wait_for_selector("#curves.js-plotly-plot")
    wait_for_js(page, "document.querySelector('#curves').data && document.querySelector('#curves').data.length === 2")
    screenshot(page, "experiments-compare")
