"""Where a job runs: the data's residency region first, then whether a GPU worker is online."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from apps.core import queues, workers


def resolve_route(
    *, resource_class: str, region: str | None, data_region: str | None, allow_cpu_fallback: bool
) -> tuple[str, str, str, str]:
    """(queue, region, device, warning): residency first, then GPU availability. Never silent."""
    region = region or None
    if data_region and data_region != "default":
        if region not in (None, data_region):
            raise ValidationError(
                {"region": [f"The training data is pinned to region {data_region!r}; a job on it cannot run in "
                            f"{region!r}. Launch it in region {data_region!r} (or leave region empty)."]}
            )  # fmt: skip
        region = data_region
    try:
        queue = queues.queue_name(resource_class, region)
    except ValueError as exc:
        field = "resource_class" if resource_class not in queues.RESOURCE_CLASSES else "region"
        raise ValidationError({field: [str(exc)]}) from None
    warning, device = "", "cpu" if resource_class == "cpu" else "cuda"
    if resource_class == "gpu":
        try:
            online = workers.workers_by_queue().get(queue, 0)
        except Exception:  # Redis unreachable: we cannot know, so do not claim either way
            online = None
        if not online:
            if allow_cpu_fallback:
                queue, device = queues.queue_name("cpu", region), "cpu"
                warning = (
                    f"No GPU worker is online for queue gpu{'.' + region if region else ''}; this job runs on a CPU "
                    "worker because you allowed CPU fallback."
                )
            else:
                warning = (
                    f"No GPU worker is online for queue {queue}; the job waits in the queue until one comes online. "
                    "Its owner can move it to a CPU worker (Run on CPU instead)."
                )
    return queue, region or "default", device, warning
