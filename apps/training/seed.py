"""Demo data: two real training jobs (queued; the demo's CPU worker trains them) and a small grid sweep."""

from __future__ import annotations

from apps.training import services
from apps.training.models import Sweep, TrainingJob

DEMO_TAG = "demo-digits"


def seed(*, users, team, out) -> None:
    owner = users.get("engineer")
    if owner is None:
        out.write("  training: no 'engineer' demo user; skipped")
        return
    team_slug = team.slug if team is not None else None
    if not TrainingJob.objects.filter(owner=owner, model_name=DEMO_TAG).exists():
        services.job_launch(
            actor=owner, template="digits-cnn", params={"epochs": 5, "channels": 8}, model_name=DEMO_TAG, team=team_slug
        )
        services.job_launch(
            actor=owner,
            template="mlp-regressor",
            params={"epochs": 10, "hidden_units": 32},
            model_name="demo-diabetes",
            team=team_slug,
        )
    if not Sweep.objects.filter(owner=owner, name="demo-wine-grid").exists():
        services.sweep_create(
            actor=owner,
            name="demo-wine-grid",
            template="tabular-mlp-classifier",
            method="grid",
            space={"lr": {"values": [0.001, 0.01]}, "hidden_units": {"values": [16, 64]}},
            params={"epochs": 8},
            parallelism=2,
        )
    out.write("  training: demo jobs and a grid sweep queued (the CPU worker trains them)")
