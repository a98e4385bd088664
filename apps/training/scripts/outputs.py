"""What a finished script job leaves: an ONNX file in `outputs/` is checked by the catalog (the
ONNX checker, a load in ONNX Runtime, its signature) and registered with lineage to the script's
digest, the data's digest and the job's run."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import transaction

from apps.catalog import services as catalog
from apps.catalog.models import ModelVersion, RegisteredModel
from apps.core.permissions import team_member
from apps.experiments.services import run_artifact_add, run_log_batch
from apps.training.models import TrainingJob
from apps.training.services import share_existing_with_team


class OutputError(Exception):
    """The script's output could not be registered (a reason for its owner)."""


def onnx_output(outputs: Path) -> Path | None:
    """The ONNX file the script left in `outputs/` (the first by name; None when there is none)."""
    found = sorted(p for p in outputs.rglob("*.onnx") if p.is_file() and not p.is_symlink())
    return found[0] if found else None


def output_register(job: TrainingJob, path: Path, *, data_digest: str) -> ModelVersion:
    """Register `path` as the next version of the job's model (created on first use, shared with
    the job's team while the owner is in it), and list it on the run."""
    size = path.stat().st_size
    if size > settings.CATALOG_MAX_ARTIFACT_BYTES:
        raise OutputError(f"outputs/{path.name} is {size:,} bytes, over the catalog's limit.")
    version = job.script_version
    team = job.team if job.team_id and team_member(job.owner, job.team) else None
    model = RegisteredModel.objects.filter(name=job.model_name).first()
    if model is None:
        model = catalog.model_create(
            actor=job.owner, name=job.model_name, description=f"Trained by the script {version.script.name}.",
            team=team.slug if team is not None else None,
        )  # fmt: skip
    else:
        share_existing_with_team(model, team=team, actor=job.owner)
    spec = job.data or {}
    lineage = {
        "run_id": str(job.run_id),
        "training_set": job.training_set.name if job.training_set else spec.get("artifact", ""),
        "training_data_digest": data_digest,
        "code_version": f"script {version.script.name}:{version.version} {version.digest}",
    }
    with path.open("rb") as artifact:
        registered = catalog.version_register(
            model=model, actor=job.owner, artifact=artifact, artifact_size=size,
            description=f"Training job {job.pk} (script {version.script.name}:{version.version}).",
            tags=["training-job", "script"], lineage=lineage,
            region=job.run.region if job.run_id else job.region,
        )  # fmt: skip
    with transaction.atomic():
        run_log_batch(run=job.run, actor=job.owner, tags={"model_version": f"{model.name}:{registered.version}"})
        run_artifact_add(
            run=job.run, actor=job.owner, path=f"outputs/{path.name}", size=size,
            digest=f"sha256:{registered.artifact.sha256}", uri=f"models:/{model.name}/{registered.version}",
        )  # fmt: skip
    return registered
