"""Where a job runs: the data's residency region first, then whether a GPU worker is online."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from apps.core import queues, residency, workers


def resolve_route(
    *, resource_class: str, region: str | None, data_region: str | None, allow_cpu_fallback: bool,
    actor=None, obj=None,
) -> tuple[str, str, str, str]:  # fmt: skip
    """(queue, region, device, warning): residency first, then GPU availability. Never silent.

    A job asked to run in another region than its data's is refused with a 400 on `region`, audited
    as `residency.refused` (by `actor`, on `obj`: the training set or version the data is)."""
    region = region or None
    if data_region and data_region != "default":
        if region not in (None, data_region):
            why = (f"The training data is pinned to region {data_region!r}; a job on it cannot run in "
                   f"{region!r}. Launch it in region {data_region!r} (or leave region empty).")  # fmt: skip
            residency.audit_refusal(
                actor=actor, obj=obj, region=data_region, action="run a job in region " + repr(region), why=why,
                extra={"job_region": region},
            )  # fmt: skip
            raise ValidationError({"region": [why]})
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


def check_launch_regions(
    *, actor, region: str | None, experiment_id: int | None, experiment_name: str | None, model_name: str
) -> None:
    """Refuse (409, audited, before any row is written) a job on data pinned to `region` whose run
    would go to an experiment, or whose model version to a model, pinned to another region."""
    from apps.catalog.models import RegisteredModel
    from apps.experiments.models import Experiment

    if not residency.is_pinned(region):
        return
    experiments = Experiment.objects.filter(pk=experiment_id) if experiment_id else Experiment.objects.none()
    if experiment_name:
        experiments = Experiment.objects.filter(name=experiment_name)
    models = RegisteredModel.objects.filter(name=model_name)
    for kind, found in (("experiment", experiments.first()), ("model", models.first())):
        if found is not None and residency.is_pinned(found.region) and found.region != region:
            residency.refuse(
                actor=actor,
                obj=found,
                region=region,
                action="launch a training job",
                mismatch=True,
                why=f"The training data is pinned to region {region!r}, but {kind} {found.name!r} is pinned to "
                f"region {found.region!r}. Choose a {kind} of region {region!r} (or an unpinned one).",
            )
