"""Demo monitoring: the demo endpoint `fraud-demo` with a reference profile from its version's
training data, two hours of logged traffic (the second hour with two measurements drifting, as a
miscalibrated scanner would cause), a drift report on each hour, and the alert the second raises.

The traffic is written as prediction-log rows with the model's real outputs (the demo has no
callers); everything after that (profile, checks, alert) is the product's own path. Idempotent:
an endpoint that already has reports is left alone. The endpoint's checks count one drifted
feature as drift (`drift_share` 0.05), as a cautious team would set it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from django.utils import timezone

from apps.monitoring.models import DriftReport
from apps.monitoring.services.profiles import profile_ready_for
from apps.monitoring.services.reports import monitor_update, report_request, report_run
from apps.serving.models import Endpoint, PredictionLog, Route
from apps.serving.services.canaries import serving_version_id

ROWS_PER_HOUR = 1200
DRIFTING = {0: 1.35, 3: 1.6}  # mean radius and mean area read high


def seed(*, users, team, out) -> None:
    engineer = users.get("engineer")
    if engineer is None:
        out.write("  monitoring: no 'engineer' demo user; skipped")
        return
    # Apps seed in name order and "monitoring" comes before "serving": seed its demo endpoint (and
    # the catalog's model behind it) first; both are idempotent.
    from apps.catalog import seed as catalog_seed
    from apps.serving import seed as serving_seed

    catalog_seed.seed(users=users, team=team, out=out)
    serving_seed.seed(users=users, team=team, out=out)
    endpoint = Endpoint.objects.filter(name=serving_seed.NAME).first()
    if endpoint is None:
        out.write("  monitoring: no demo endpoint; skipped")
        return
    if DriftReport.objects.filter(endpoint=endpoint).exists():
        out.write(f"  monitoring: {endpoint.name} already has drift reports; left alone")
        return
    route = Route.objects.get(endpoint=endpoint, name="main")
    from apps.catalog.models import ModelVersion

    version = ModelVersion.objects.select_related("model", "artifact").get(pk=serving_version_id(route))
    profile = profile_ready_for(version)
    # This team treats any drifted measurement as drift (the default needs half of the features).
    monitor_update(actor=engineer, endpoint=endpoint, schedule_minutes=60, window_minutes=60,
                   thresholds={"drift_share": 0.05})  # fmt: skip
    now = timezone.now().replace(second=0, microsecond=0)
    _log(endpoint, version, now - dt.timedelta(minutes=110), seed=1, shift={})
    _log(endpoint, version, now - dt.timedelta(minutes=50), seed=2, shift=DRIFTING)
    verdicts = []
    for start in (now - dt.timedelta(hours=2), now - dt.timedelta(hours=1)):
        report = report_request(
            actor=engineer, endpoint=endpoint, route="main", start=start, end=start + dt.timedelta(hours=1)
        )
        report = report_run(report.pk)
        verdicts.append(report.status or report.state)
    out.write(
        f"  monitoring: {endpoint.name} profiled from {profile.source} ({profile.rows} rows); "
        f"{2 * ROWS_PER_HOUR} logged predictions; hourly checks: {', '.join(verdicts)}"
    )


def _log(endpoint, version, at, *, seed: int, shift: dict) -> None:
    from apps.serving.inference.runtime import session_for
    from apps.training.engine.datasets import load_dataset

    X = load_dataset("breast_cancer").X.astype(np.float64)
    rows = X[np.random.default_rng(seed).integers(0, len(X), ROWS_PER_HOUR)]
    for column, factor in shift.items():
        rows[:, column] *= factor
    model = session_for(version)
    logs = []
    for i, start in enumerate(range(0, len(rows), 20)):
        batch = rows[start : start + 20]
        outputs = model.run({model.input_names[0]: batch.astype(model.input_dtypes[model.input_names[0]])})
        logs.append(PredictionLog(
            endpoint=endpoint, route="main", mode="live", version=version, prediction_id=f"demo-{seed}-{i}",
            rows=len(batch), inputs=batch.round(4).tolist(), outputs={k: v.tolist() for k, v in outputs.items()},
            latency_ms=1.2, status=200, created_at=at + dt.timedelta(seconds=i * 20),
        ))  # fmt: skip
    PredictionLog.objects.bulk_create(logs)
