"""Run artifacts for `manage.py retention_purge` (apps/core/retention.py): one target per experiment
with artifacts past their window. The daily task is `experiments.retention_sweep`."""

from __future__ import annotations

from datetime import datetime

from apps.core.audit import system_user
from apps.core.retention import Target
from apps.experiments.models import Experiment
from apps.experiments.services.retention import due_by_experiment, run_artifacts_purge


def retention_targets(*, now: datetime) -> list[Target]:
    def purge_of(pk: int):
        return lambda: run_artifacts_purge(
            actor=system_user(), now=now, experiment=Experiment.objects.get(pk=pk), audit=False
        )

    return [
        Target(
            store="run artifacts",
            label=f"experiment {row['name']}",
            items=row["artifacts"],
            unit="files",
            size=row["bytes"],
            purge=purge_of(row["experiment"]),
            detail={"experiment": row["experiment"]},
        )
        for row in due_by_experiment(now=now)
    ]
