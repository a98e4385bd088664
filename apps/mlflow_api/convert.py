"""The portal's experiments and runs in MLflow's JSON spelling (proto3 JSON: ids and int64 as
strings or numbers, lists of {key, value}), and MLflow's run statuses to the portal's and back."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from apps.experiments.models import Experiment, Run
from apps.experiments.validation import FLOAT_MAX

STATUS_TO_MLFLOW = {
    Run.Status.QUEUED: "SCHEDULED",
    Run.Status.RUNNING: "RUNNING",
    Run.Status.FINISHED: "FINISHED",
    Run.Status.FAILED: "FAILED",
    Run.Status.KILLED: "KILLED",
}
STATUS_FROM_MLFLOW = {v: k for k, v in STATUS_TO_MLFLOW.items()}


def ms(when: datetime | None) -> int | None:
    return None if when is None else int(when.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def experiment_uri(experiment_id: int) -> str:
    return f"mlflow-artifacts:/{experiment_id}"


def run_artifact_uri(experiment_id: int, run_id: int) -> str:
    return f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"


def pairs(mapping: dict) -> list[dict]:
    """MLflow's [{key, value}], sorted by key: the same order on every database (PostgreSQL's jsonb
    keeps no insertion order)."""
    return [{"key": k, "value": mapping[k]} for k in sorted(mapping)]


def float_out(value: float | None) -> float | str:
    """A stored metric value: NULL is NaN; the largest double stands for an infinity."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "NaN"
    if value >= FLOAT_MAX:
        return "Infinity"
    if value <= -FLOAT_MAX:
        return "-Infinity"
    return value


def experiment_json(experiment: Experiment) -> dict:
    return {
        "experiment_id": str(experiment.pk),
        "name": experiment.name,
        "artifact_location": experiment_uri(experiment.pk),
        "lifecycle_stage": "active",
        "creation_time": ms(experiment.created_at),
        "last_update_time": ms(experiment.updated_at),
        "tags": pairs(experiment.tags or {}),
    }


def run_info_json(run: Run, username: str | None = None) -> dict:
    info = {
        "run_id": str(run.pk),
        "run_uuid": str(run.pk),
        "experiment_id": str(run.experiment_id),
        "run_name": run.name,
        "user_id": username if username is not None else run.owner.get_username(),
        "status": STATUS_TO_MLFLOW.get(run.status, "RUNNING"),
        "start_time": ms(run.started_at or run.created_at),
        "artifact_uri": run_artifact_uri(run.experiment_id, run.pk),
        "lifecycle_stage": "active",
    }
    if run.ended_at is not None:
        info["end_time"] = ms(run.ended_at)
    return info


def run_json(run: Run, summaries: dict) -> dict:
    """`summaries`: {key: RunMetricSummary} of this run (selectors.summaries_of)."""
    metrics = [
        {"key": key, "value": float_out(s.last), "timestamp": s.last_timestamp, "step": s.last_step}
        for key, s in sorted(summaries.items())
    ]
    return {
        "info": run_info_json(run),
        "data": {"metrics": metrics, "params": pairs(run.params or {}), "tags": pairs(run.tags or {})},
        "inputs": {},
    }
