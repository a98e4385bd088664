"""The real MLflow client (mlflow-skinny in .venv-mlflow, a subprocess) against a live portal:
a script logs a tiny ONNX model as a run artifact, registers it twice (register_model from a
runs:/ folder, create_model_version from the file), sets and resolves an alias, searches and
downloads it through models:/; moving the protected `champion` alias is PERMISSION_DENIED with the
promotion hint. The portal's own API shows the versions with lineage to the run, and the audit
trail has them; a stranger's client gets RESOURCE_DOES_NOT_EXIST for all of it.

One test on purpose: the session-wide server caches content type ids, which a transactional
test's flush recreates (tests/experiments/test_client.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from apps.accounts.services import token_create
from apps.core.models import AuditEntry
from tests.conftest import api_client_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CLIENT_PYTHON = ROOT / ".venv-mlflow" / "bin" / "python"
SCRIPTS = Path(__file__).parent / "registry_scripts"


def run_client(script: str, args: list[str], base: str, key: str) -> dict:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DJANGO_"))},
        "MLFLOW_TRACKING_URI": base,
        "MLFLOW_TRACKING_TOKEN": key,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    done = subprocess.run(
        [str(CLIENT_PYTHON), str(SCRIPTS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_real_client_registers_an_onnx_run_artifact_and_sets_aliases(portal_server, owner, stranger, tmp_path):
    _, key = token_create(user=owner, name="train.py", scopes=["read", "write"], expires_days=1)
    result = run_client("register_onnx.py", ["churn-scorer", str(tmp_path)], portal_server, key)
    run_id = result["run_id"]
    folder = f"mlflow-artifacts:/{{}}/{run_id}/artifacts/model"
    assert result["versions"] == ["1", "2"] and result["status"] == "READY"
    assert result["run_ids"] == [run_id, run_id]
    experiment_id = result["sources"][0].split("/")[1]
    assert result["sources"] == [folder.format(experiment_id), folder.format(experiment_id) + "/model.onnx"]
    assert result["by_alias"] == "1" and result["aliases"] == {"staging": "1"}
    assert result["searched"] == ["1", "2"]
    assert result["by_run"] == [["churn-scorer", "1"], ["churn-scorer", "2"]]
    assert result["registered"] == [["churn-scorer", ["2"]]]
    assert "model.onnx" in result["downloaded"] and result["download_matches"]
    assert result["champion"]["error_code"] == "PERMISSION_DENIED"
    assert "POST /api/v1/promotions/" in result["champion"]["message"]

    # the same data through the portal's own API: versions with lineage to the run, the alias
    portal = api_client_for(owner)
    versions = portal.get("/api/v1/models/churn-scorer/versions/").json()["results"]
    assert [(v["version"], v["lineage"]["run_id"], v["opset"]) for v in versions] == [(2, run_id, 17), (1, run_id, 17)]
    assert portal.get("/api/v1/models/churn-scorer/aliases/staging").json()["version"] == 1
    assert "champion" not in portal.get("/api/v1/models/churn-scorer/").json()["aliases"]
    audited = AuditEntry.objects.filter(actor=owner, additional_data__model="churn-scorer")
    uploads = audited.filter(additional_data__event="artifact.upload").values_list(
        "additional_data__version", flat=True
    )
    assert sorted(uploads) == [1, 2]
    moves = audited.filter(additional_data__event="alias.move").values_list("additional_data__alias", flat=True)
    assert list(moves) == ["staging"]

    _, other = token_create(user=stranger, name="stranger", scopes=["read", "write"], expires_days=1)
    seen = run_client("stranger.py", ["churn-scorer", run_id], portal_server, other)
    missing = "RESOURCE_DOES_NOT_EXIST"
    assert seen == {
        "get_model": missing,
        "get_version": missing,
        "by_alias": missing,
        "set_alias": missing,
        "new_version": missing,
        "searched": [],
        "models": [],
    }
