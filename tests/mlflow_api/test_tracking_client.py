"""The real MLflow client (mlflow-skinny in .venv-mlflow, run as a subprocess) logs a training
script to a live portal unchanged: params, metrics one by one and in a batch, tags, artifacts up
and back, history and search; the portal's own API shows the same run; a stranger's client gets
RESOURCE_DOES_NOT_EXIST. One test: one server start, one flush of the shared test database."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import requests

from apps.accounts.services import token_create
from apps.experiments.models import MetricPoint, Run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).parent / "scripts"
MLFLOW_PYTHON = ROOT / ".venv-mlflow" / "bin" / "python"


def run_script(name: str, base: str, key: str, *args: str, cwd: Path) -> dict:
    env = {
        "MLFLOW_TRACKING_URI": base,
        "MLFLOW_TRACKING_TOKEN": key,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
    }
    done = subprocess.run(  # noqa: S603  our own script, with the test's own interpreter
        [str(MLFLOW_PYTHON), str(SCRIPTS / name), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_real_mlflow_client_logs_to_the_portal(portal_server, owner, stranger, tmp_path):
    assert MLFLOW_PYTHON.exists(), "the MLflow client is missing: source scripts/setup.sh; setup_mlflow_client"
    _, key = token_create(user=owner, name="mlflow", scopes=["read", "write"], expires_days=1)
    out = run_script("train_tracking.py", portal_server, key, "MLflow Client Demo", str(tmp_path), cwd=tmp_path)

    run_id = out["run_id"]
    assert out["status"] == "FINISHED" and out["run_name"] == "baseline"
    assert out["artifact_uri"] == f"mlflow-artifacts:/{out['experiment_id']}/{run_id}/artifacts"
    assert out["params"] == {"lr": "0.01", "optimizer": "adam", "epochs": "3", "depth": "4"}
    assert out["metrics"] == {"loss": pytest.approx(1 / 3), "acc": pytest.approx(0.999), "f1": 0.8, "auc": 0.9}
    assert out["tags"]["team"] == "risk" and out["tags"]["phase"] == "batch"
    assert out["tags"]["mlflow.runName"] == "baseline" and out["tags"]["mlflow.source.type"] == "LOCAL"
    assert out["listed"] == [["model", True], ["notes", True]]
    assert out["listed_model"] == [["model/weights.bin", 256 * 4096]]
    assert out["copy_ok"] and out["text"] == "hello from mlflow\n"
    assert out["history"] == [[0, 1.0], [1, 0.5], [2, pytest.approx(1 / 3)]]
    assert out["found"] == [run_id]

    # the same run through the portal's own API and tables
    portal = requests.get(
        f"{portal_server}/api/v1/runs/{run_id}/", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )
    assert portal.status_code == 200, portal.text
    body = portal.json()
    assert body["name"] == "baseline" and body["status"] == "finished"
    assert body["params"]["optimizer"] == "adam" and body["tags"]["team"] == "risk"
    stored = Run.objects.get(pk=int(run_id))
    assert stored.owner == owner and stored.source == Run.Source.SCRIPT
    assert stored.experiment.name == "mlflow-client-demo"  # MLflow's free-form name, as a portal name
    assert MetricPoint.objects.filter(run_id=stored.pk, key="acc").count() == 500
    artifacts = requests.get(
        f"{portal_server}/api/v1/runs/{run_id}/artifacts", headers={"Authorization": f"Token {key}"}, timeout=10
    ).json()
    paths = sorted(a["path"] for a in (artifacts["results"] if isinstance(artifacts, dict) else artifacts))
    assert paths == ["model/weights.bin", "notes/readme.txt"]

    # a stranger's client: the run does not exist for them
    _, other = token_create(user=stranger, name="mlflow", scopes=["read", "write"], expires_days=1)
    codes = run_script("stranger.py", portal_server, other, run_id, cwd=tmp_path)
    assert codes == dict.fromkeys(codes, "RESOURCE_DOES_NOT_EXIST") and len(codes) == 6, codes
    assert MetricPoint.objects.filter(run_id=stored.pk, key="loss").count() == 3

    # error shapes over the wire
    headers = {"Authorization": f"Bearer {key}"}
    unknown = requests.post(f"{portal_server}/api/2.0/mlflow/runs/restore", json={}, headers=headers, timeout=10)
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, "ENDPOINT_NOT_FOUND")
    malformed = requests.post(f"{portal_server}/api/2.0/mlflow/runs/log-batch", data=b"{", headers=headers, timeout=10)
    assert (malformed.status_code, malformed.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
