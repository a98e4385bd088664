"""Celery tasks of the feature store: each loads by id, sets the actor and calls one service.

Services send these by name after commit (`apps.core.dispatch.enqueue("features.materialize", ...)`).
"""

from __future__ import annotations

from celery import shared_task

from apps.core.audit import acting_as, system_user
from apps.core.queues import queue_name
from apps.features import services
from apps.features.models import FeatureView


@shared_task(name="features.materialize")
def materialize(job_id: int) -> dict:
    if not isinstance(job_id, int):
        raise ValueError("materialize takes a MaterializationJob id")
    job = services.materialization_run(job_id=job_id)
    return {"job": job.pk, "state": job.state, "keys_written": job.keys_written}


@shared_task(name="features.retention_sweep")
def retention_sweep() -> dict:
    """Daily (beat): queue apply_retention for every view with a retention, on its region's queue."""
    queued = []
    for view_id, region in FeatureView.objects.filter(retention_days__isnull=False).values_list("pk", "region"):
        queue = "default" if region == "default" else queue_name("cpu", region)
        apply_retention.apply_async(args=[view_id], queue=queue)
        queued.append(view_id)
    return {"queued": queued}


@shared_task(name="features.apply_retention")
def apply_retention(view_id: int) -> dict:
    if not isinstance(view_id, int):
        raise ValueError("apply_retention takes a FeatureView id")
    view = FeatureView.objects.select_related("entity").filter(pk=view_id).first()
    if view is None or view.retention_days is None:
        return {"view": view_id, "skipped": True}
    actor = system_user()
    with acting_as(actor):
        result = services.feature_view_apply_retention(view=view, actor=actor, scheduled=True)
    return {"view": view_id, **{k: result[k] for k in ("partitions", "rows", "online_keys")}}
