"""`manage.py import_mlflow` from an mlruns folder written by the real MLflow client (.venv-mlflow,
a subprocess): experiments, runs, params, full metric histories, tags, artifacts (in the vault),
the registered ONNX model with its version (lineage to the imported run) and alias; a rerun imports
nothing twice; bad input is a clear error, never a traceback."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.catalog.models import Alias, ModelVersion, RegisteredModel
from apps.core.models import AuditEntry
from apps.experiments.models import Experiment, MetricPoint, Run, RunArtifact
from apps.experiments.services import run_artifact_open

ROOT = Path(__file__).resolve().parents[2]
CLIENT_PYTHON = ROOT / ".venv-mlflow" / "bin" / "python"
WRITER = Path(__file__).parent / "import_scripts" / "write_mlruns.py"


@pytest.fixture(scope="module")
def mlruns(tmp_path_factory):
    """An mlruns folder written by the real MLflow client, and what the client read back."""
    folder = tmp_path_factory.mktemp("mlflow")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DJANGO_"))},
        "MLFLOW_TRACKING_URI": f"file://{folder}/mlruns",
        # MLflow 3 refuses its FileStore unless told: teams migrating off it are who imports.
        "MLFLOW_ALLOW_FILE_STORE": "true",
    }
    done = subprocess.run(
        [str(CLIENT_PYTHON), str(WRITER), str(folder)], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return folder / "mlruns", json.loads(done.stdout.strip().splitlines()[-1])


def run_import(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_mlflow", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def summary_counts(*args: str) -> dict:
    out, _ = run_import(*args, "--json")
    return json.loads(out)["counts"]


@pytest.mark.django_db
def test_import_brings_experiments_runs_metrics_artifacts_and_models_once(owner, mlruns):
    folder, client = mlruns
    out, err = run_import("--tracking-uri", str(folder), "--owner", owner.username)

    experiment = Experiment.objects.get(name="churn-model")
    assert experiment.owner == owner
    assert experiment.tags["mlflow.experiment_name"] == "Churn Model"
    runs = {r.name: r for r in Run.objects.filter(experiment=experiment)}
    assert set(runs) == {"first", "second"}
    first, second = runs["first"], runs["second"]
    assert (first.status, second.status) == (Run.Status.FINISHED, Run.Status.FAILED)
    assert first.params == {"lr": "0.01", "layers": "3"} and second.params == {"lr": "0.1"}
    assert first.tags["team"] == "risk" and first.tags["mlflow.source_run_id"] == client["first"]
    assert first.tags["mlflow.runName"] == "first"
    # MLflow's own start and end times, not the time of the import
    assert first.started_at == datetime.fromtimestamp(client["first_start"] / 1000, tz=UTC)
    assert first.ended_at == datetime.fromtimestamp(client["first_end"] / 1000, tz=UTC)

    # the full history, with MLflow's steps and timestamps; NaN stays NaN (NULL)
    loss = list(
        MetricPoint.objects.filter(run_id=first.pk, key="loss")
        .order_by("step")
        .values_list("step", "value", "timestamp")
    )
    assert loss == [tuple(p) for p in client["history"]["loss"]]
    acc = list(MetricPoint.objects.filter(run_id=first.pk, key="acc").values_list("step", "value", "timestamp"))
    assert [(s, ts) for s, _, ts in acc] == [(p[0], p[2]) for p in client["history"]["acc"]]
    assert acc[0][1] is None and math.isnan(client["history"]["acc"][0][1])

    # artifacts are in the vault, byte for byte, and their upload is audited as the owner
    artifacts = {a.path: a for a in RunArtifact.objects.filter(run=first)}
    assert set(artifacts) == {"model.onnx", "notes/readme.txt"}
    assert all(a.blob_id is not None for a in artifacts.values())
    chunks, size, _ = run_artifact_open(artifact=artifacts["notes/readme.txt"], actor=owner)
    assert b"".join(chunks) == b"hello from mlflow" and size == len(b"hello from mlflow")
    uploads = AuditEntry.objects.filter(additional_data__event="artifact.upload", actor=owner)
    assert uploads.count() == 3  # two run artifacts and the model version

    # the registered ONNX model, its version with lineage to the imported run, and the alias
    model = RegisteredModel.objects.get(name="churn")
    assert model.owner == owner and model.description == "churn scorer"
    version = ModelVersion.objects.get(model=model)
    assert version.version == 1 and version.run_id == str(first.pk)
    assert version.description == "first export" and "mlflow-version-1" in version.tags
    assert version.artifact.plaintext_size == client["onnx_bytes"]
    assert version.source.startswith("file://") and version.source.endswith("/artifacts/model.onnx")
    assert Alias.objects.get(model=model, name="staging").version == version

    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert lines["runs"] == ["2", "0", "0"] and lines["versions"] == ["1", "0", "0"], out
    assert "importing" in err  # the progress bar, on standard error

    # a second import finds everything and writes nothing
    counts = summary_counts("--tracking-uri", f"file://{folder}", "--owner", owner.username)
    assert all(c["created"] == 0 and c["failed"] == 0 for c in counts.values()), counts
    assert counts["runs"]["skipped"] == 2 and counts["versions"]["skipped"] == 1 and counts["artifacts"]["skipped"] == 2
    assert Run.objects.count() == 2 and ModelVersion.objects.count() == 1 and RunArtifact.objects.count() == 2
    assert MetricPoint.objects.filter(run_id=first.pk).count() == 6
    assert Experiment.objects.count() == 1


@pytest.mark.django_db
def test_dry_run_counts_and_writes_nothing(owner, mlruns):
    folder, _ = mlruns
    counts = summary_counts("--tracking-uri", str(folder), "--owner", owner.username, "--dry-run")
    assert counts["experiments"]["created"] == 1 and counts["runs"]["created"] == 2
    assert counts["metric points"]["created"] == 7 and counts["artifacts"]["created"] == 2
    assert counts["versions"]["created"] == 1 and counts["aliases"]["created"] == 1
    assert not Experiment.objects.exists() and not Run.objects.exists() and not RegisteredModel.objects.exists()


@pytest.mark.django_db
def test_corrupt_run_is_counted_as_failed_and_the_rest_imported(owner, mlruns, tmp_path):
    folder, client = mlruns
    copy = tmp_path / "mlruns"
    shutil.copytree(folder, copy)
    second_meta = next(copy.glob(f"*/{client['second']}/meta.yaml"))
    second_meta.write_text("run_id: [unclosed\n  status: :::\n")

    with pytest.raises(CommandError, match="1 item"):
        run_import("--tracking-uri", str(copy), "--owner", owner.username)
    assert list(Run.objects.values_list("name", flat=True)) == ["first"]
    # the summary names the broken file; the model and its version still came in
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command(
            "import_mlflow", "--tracking-uri", str(copy), "--owner", owner.username, stdout=out, stderr=io.StringIO()
        )
    assert f"{client['second']}/meta.yaml cannot be read" in out.getvalue()
    assert ModelVersion.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "uri, message",
    [
        ("/nonexistent/mlruns", "is not a folder"),
        ("s3://bucket/mlruns", "give an mlruns folder"),
        ("http://127.0.0.1:9/", "Cannot reach the MLflow tracking server"),
    ],
)
def test_unreadable_source_is_a_clear_error(owner, uri, message):
    with pytest.raises(CommandError, match=message):
        run_import("--tracking-uri", uri, "--owner", owner.username)


@pytest.mark.django_db
def test_folder_that_is_not_mlruns_is_refused(owner, tmp_path):
    (tmp_path / "something.txt").write_text("x")
    with pytest.raises(CommandError, match="does not look like an mlruns folder"):
        run_import("--tracking-uri", str(tmp_path), "--owner", owner.username)


@pytest.mark.django_db
def test_owner_is_required_and_must_exist(owner, mlruns):
    folder, _ = mlruns
    with pytest.raises(CommandError, match="Give --owner"):
        run_import("--tracking-uri", str(folder))
    with pytest.raises(CommandError, match="No active portal user called 'nobody'"):
        run_import("--tracking-uri", str(folder), "--owner", "nobody")


@pytest.mark.django_db
def test_a_rerun_adds_what_failed_before(owner, mlruns, settings):
    folder, _ = mlruns
    settings.EXPERIMENTS_MAX_ARTIFACT_BYTES = 10  # both artifacts are larger: each fails, the runs come in
    out = io.StringIO()
    with pytest.raises(CommandError, match="2 item"):
        call_command(
            "import_mlflow", "--tracking-uri", str(folder), "--owner", owner.username, stdout=out, stderr=io.StringIO()
        )
    assert "failed: artifacts: run 'first'" in out.getvalue() and "EXPERIMENTS_MAX_ARTIFACT_BYTES" in out.getvalue()
    assert Run.objects.count() == 2 and not RunArtifact.objects.exists()

    settings.EXPERIMENTS_MAX_ARTIFACT_BYTES = 10**6
    counts = summary_counts("--tracking-uri", str(folder), "--owner", owner.username)
    assert counts["artifacts"] == {"created": 2, "skipped": 0, "failed": 0}
    assert counts["runs"] == {"created": 0, "skipped": 2, "failed": 0} and counts["metrics"]["created"] == 0
    assert RunArtifact.objects.count() == 2 and Run.objects.count() == 2
