from __future__ import annotations

from celery import shared_task


@shared_task(name="features.materialize")
def materialize(job_id: int) -> dict:
    from apps.features.services import materialize_run

    if not isinstance(job_id, int):
        raise ValueError("materialize takes a MaterializationJob id")
    job = materialize_run(job_id=job_id)
    return {"job": job.pk, "state": job.state, "keys_written": job.keys_written}


@shared_task(name="features.retention_sweep")
def retention_sweep() -> dict:
    """Daily (beat): queue apply_retention for every view with a retention, on its region's queue."""
    from apps.core.queues import queue_name
    from apps.features.models import FeatureView

    queued = []
    for view_id, region in FeatureView.objects.filter(retention_days__isnull=False).values_list("pk", "region"):
        queue = "default" if region == "default" else queue_name("cpu", region)
        apply_retention.apply_async(args=[view_id], queue=queue)
        queued.append(view_id)
    return {"queued": queued}


@shared_task(name="features.apply_retention")
def apply_retention(view_id: int) -> dict:
    from apps.core.audit import acting_as, system_user
    from apps.features.models import FeatureView
    from apps.features.services import feature_view_apply_retention

    if not isinstance(view_id, int):
        raise ValueError("apply_retention takes a FeatureView id")
    view = FeatureView.objects.select_related("entity").filter(pk=view_id).first()
    if view is None or view.retention_days is None:
        return {"view": view_id, "skipped": True}
    actor = system_user()
    with acting_as(actor):
        result = feature_view_apply_retention(view=view, actor=actor, scheduled=True)
    return {"view": view_id, **{k: result[k] for k in ("partitions", "rows", "online_keys")}}
