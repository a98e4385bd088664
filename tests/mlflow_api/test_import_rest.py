"""`manage.py import_mlflow --tracking-uri http://...`: the REST reader against a live tracking
server. The server is a live portal (its MLflow-compatible API is the tracking server here: the
test environment has only mlflow-skinny, no `mlflow server`); the real MLflow client logs to it as
alice, then the command imports it over REST with her token (MLFLOW_TRACKING_TOKEN) for bob:
runs with their metric histories, artifacts downloaded through the artifact proxy, the registered
ONNX model and its alias. The experiment and model names are taken (alice's), so the import picks
free ones. A second import adds nothing; a wrong token is a clear error.

One test on purpose, on a server of its own: a transactional test's flush recreates the content
types a server process caches (tests/experiments/test_client.py)."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.accounts import roles
from apps.accounts.services import token_create
from apps.catalog.models import Alias, ModelVersion
from apps.experiments.models import Experiment, MetricPoint, Run, RunArtifact
from tests.conftest import make_user, serve_portal

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CLIENT_PYTHON = ROOT / ".venv-mlflow" / "bin" / "python"
WRITER = Path(__file__).parent / "import_scripts" / "write_mlruns.py"


@pytest.fixture(scope="module")
def tracking_server(django_db_setup, django_db_blocker, tmp_path_factory):
    yield from serve_portal(django_db_blocker, tmp_path_factory)


def import_json(*args: str) -> dict:
    out = io.StringIO()
    call_command("import_mlflow", *args, "--json", stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())["counts"]


def test_import_over_rest_from_a_live_tracking_server(tracking_server, tmp_path, monkeypatch):
    alice = make_user("alice", roles.ML_ENGINEERS)
    bob = make_user("bob", roles.ML_ENGINEERS)
    _, key = token_create(user=alice, name="mlflow", scopes=["read", "write"], expires_days=1)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DJANGO_"))},
        "MLFLOW_TRACKING_URI": tracking_server,
        "MLFLOW_TRACKING_TOKEN": key,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    done = subprocess.run(
        [str(CLIENT_PYTHON), str(WRITER), str(tmp_path), "churn-model"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    client = json.loads(done.stdout.strip().splitlines()[-1])

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", key)
    counts = import_json("--tracking-uri", tracking_server, "--owner", bob.username)
    assert all(c["failed"] == 0 for c in counts.values()), counts

    experiment = Experiment.objects.get(owner=bob)
    assert experiment.name == "churn-model-mlflow"  # alice's experiment holds the name
    runs = {r.name: r for r in Run.objects.filter(experiment=experiment)}
    assert set(runs) == {"first", "second"}
    first = runs["first"]
    assert first.tags["mlflow.source_run_id"] == client["first"]  # the source's run id (the portal's, here)
    assert (first.status, runs["second"].status) == (Run.Status.FINISHED, Run.Status.FAILED)
    assert first.params == {"lr": "0.01", "layers": "3"}
    loss = MetricPoint.objects.filter(run_id=first.pk, key="loss").order_by("step")
    assert [list(p) for p in loss.values_list("step", "value", "timestamp")] == client["history"]["loss"]
    assert set(RunArtifact.objects.filter(run=first).values_list("path", flat=True)) == {
        "model.onnx",
        "notes/readme.txt",
    }

    version = ModelVersion.objects.get(model__owner=bob)
    assert version.model.name == "churn-mlflow" and version.run_id == str(first.pk)
    assert version.artifact.plaintext_size == client["onnx_bytes"]
    assert Alias.objects.get(model=version.model, name="staging").version == version

    again = import_json("--tracking-uri", tracking_server, "--owner", bob.username)
    assert all(c["created"] == 0 and c["failed"] == 0 for c in again.values()), again
    assert (
        Run.objects.filter(experiment__owner=bob).count() == 2
        and ModelVersion.objects.filter(model__owner=bob).count() == 1
    )

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "not-a-token")  # pragma: allowlist secret
    with pytest.raises(CommandError, match="refused the request"):
        import_json("--tracking-uri", tracking_server, "--owner", bob.username)
