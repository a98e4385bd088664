"""Demo data: one experiment with a handful of runs whose curves look like real training.

No run pretends to be live: the one left "running" half-way (`adamw-cosine`) is a script that
went silent, so it is flagged stale at once and never counted as training.
"""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.utils import timezone

from apps.experiments import services
from apps.experiments.models import Experiment, Run

EXPERIMENT = "demo-churn-classifier"
RUNS = [  # name, lr, batch size, optimizer, epochs, final status
    ("baseline-sgd", 0.1, 64, "sgd", 40, Run.Status.FINISHED),
    ("adam-lr1e-3", 0.001, 64, "adam", 40, Run.Status.FINISHED),
    ("adam-lr3e-4", 0.0003, 128, "adam", 40, Run.Status.FINISHED),
    ("adam-lr1e-2", 0.01, 128, "adam", 40, Run.Status.FAILED),
    ("adamw-cosine", 0.001, 256, "adamw", 40, Run.Status.RUNNING),  # its client went silent: stale
]
STEPS_PER_EPOCH = 50


def _curves(seed: int, lr: float, optimizer: str, epochs: int, diverge: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    steps = np.arange(epochs * STEPS_PER_EPOCH)
    speed = {"sgd": 0.6, "adam": 1.0, "adamw": 1.1}[optimizer] * min(1.0, (lr / 0.001) ** 0.3)
    floor = 0.18 + 0.05 * abs(np.log10(lr / 0.001))
    loss = floor + (0.69 - floor) * np.exp(-speed * steps / 400) + rng.normal(0, 0.02, len(steps))
    if diverge:
        blow = int(len(steps) * 0.6)
        loss[blow:] += np.linspace(0, 3, len(steps) - blow) ** 2
    epochs_x = np.arange(epochs)
    val_loss = np.interp((epochs_x + 1) * STEPS_PER_EPOCH - 1, steps, loss) * 1.05 + 0.01 * epochs_x / epochs
    val_acc = np.clip(1.0 - val_loss * 0.55 + rng.normal(0, 0.004, epochs), 0, 1)
    return {"loss": loss, "val_loss": val_loss, "val_acc": val_acc}


def seed(*, users, team, out) -> None:
    owner = users.get("engineer")
    if owner is None:
        out.write("  experiments: no 'engineer' demo user; skipped")
        return
    experiment = Experiment.objects.filter(name=EXPERIMENT).first()
    if experiment is None:
        experiment = services.experiment_create(
            name=EXPERIMENT,
            actor=owner,
            team=team.slug if team is not None else None,
            description="Customer churn classifier: optimiser and learning-rate sweep (synthetic demo curves).",
            tags={"dataset": "churn-2026-q3", "task": "binary-classification"},
        )
    existing = set(experiment.runs.values_list("name", flat=True))
    now_ms = int(time.time() * 1000)
    for i, (name, lr, batch, optimizer, epochs, status) in enumerate(RUNS):
        if name in existing:
            continue
        run = services.run_create(
            experiment=experiment,
            name=name,
            actor=owner,
            source=Run.Source.SCRIPT,
            params={"lr": lr, "batch_size": batch, "optimizer": optimizer, "epochs": epochs, "hidden": 128},
            tags={"model": "mlp", "seed": str(i)},
            code_version="3f2c1d9",
        )
        curves = _curves(i, lr, optimizer, epochs, diverge=status == Run.Status.FAILED)
        done_epochs = epochs // 2 if status == Run.Status.RUNNING else epochs
        limit = done_epochs * STEPS_PER_EPOCH
        start = now_ms - limit * 1000
        points = [
            {"key": "loss", "step": int(s), "value": float(v), "timestamp": start + int(s) * 1000}
            for s, v in enumerate(curves["loss"][:limit])
        ]
        for key in ("val_loss", "val_acc"):
            points += [
                {
                    "key": key,
                    "step": (e + 1) * STEPS_PER_EPOCH - 1,
                    "value": float(v),
                    "timestamp": start + (e + 1) * 50_000,
                }
                for e, v in enumerate(curves[key][:done_epochs])
            ]
        rng = np.random.default_rng(100 + i)
        for t in range(0, limit, 25):
            points += [
                {
                    "key": "system/cpu_percent",
                    "step": t,
                    "value": float(np.clip(70 + rng.normal(0, 8), 0, 100)),
                    "timestamp": start + t * 1000,
                },
                {
                    "key": "system/memory_percent",
                    "step": t,
                    "value": float(35 + t / limit * 10),
                    "timestamp": start + t * 1000,
                },
            ]
        for chunk in range(0, len(points), 1000):
            services.run_log_batch(run=run, actor=owner, metrics=points[chunk : chunk + 1000])
        services.run_append_log(
            run=run,
            actor=owner,
            text="".join(f"epoch {e + 1}/{epochs} val_acc={curves['val_acc'][e]:.4f}\n" for e in range(done_epochs)),
        )
        if status == Run.Status.RUNNING:
            services.run_set_status(run=run, actor=owner, progress=done_epochs / epochs)
            # Its client stopped reporting: flag it now rather than after the first scheduled check.
            silent_since = timezone.now() + timedelta(seconds=settings.EXPERIMENTS_STALE_AFTER_S + 1)
            services.runs_mark_stale(now=silent_since, runs=Run.objects.filter(pk=run.pk))
        else:
            if status == Run.Status.FAILED:
                services.run_append_log(
                    run=run, actor=owner, text="RuntimeError: loss became NaN/diverged; stopping.\n"
                )
            else:
                services.run_artifact_add(run=run, actor=owner, path="model.onnx", size=412_331, digest="sha256:demo")
            services.run_set_status(run=run, actor=owner, status=status)
    out.write(f"  experiments: {EXPERIMENT} with {experiment.runs.count()} runs")
