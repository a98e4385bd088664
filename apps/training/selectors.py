"""Permission-aware reads for jobs, sweeps, the queue page and the cost page."""

from __future__ import annotations

from django.db.models import Count, QuerySet, Sum
from django.http import Http404

from apps.core import queues, workers
from apps.core.permissions import restrict
from apps.training.models import Sweep, TrainingJob


def job_list(user, *, state: str = "", template: str = "", sweep: int | None = None) -> QuerySet[TrainingJob]:
    jobs = restrict(user, "view", TrainingJob.objects.all()).select_related("owner", "model_version__model")
    if state:
        jobs = jobs.filter(state=state)
    if template:
        jobs = jobs.filter(template=template)
    if sweep is not None:
        jobs = jobs.filter(sweep_id=sweep)
    return jobs


def get_job(user, pk, action: str = "view") -> TrainingJob:
    try:
        pk = int(pk)
    except (TypeError, ValueError, OverflowError):
        raise Http404("No training job matches the given query.") from None
    job = (
        restrict(user, "view", TrainingJob.objects.all())
        .select_related("owner", "run", "experiment", "model_version__model", "sweep", "training_set")
        .filter(pk=pk)
        .first()
    )
    if job is None:
        raise Http404("No training job matches the given query.")
    if action != "view":
        from apps.core.permissions import require

        require(user, action, job)
    return job


def sweep_list(user) -> QuerySet[Sweep]:
    return (
        restrict(user, "view", Sweep.objects.all())
        .select_related("owner", "best_job")
        .annotate(n_jobs=Count("jobs"))
        .order_by("-created_at", "-id")
    )


def get_sweep(user, pk, action: str = "view") -> Sweep:
    try:
        pk = int(pk)
    except (TypeError, ValueError, OverflowError):
        raise Http404("No sweep matches the given query.") from None
    sweep = restrict(user, "view", Sweep.objects.all()).select_related("owner", "best_job").filter(pk=pk).first()
    if sweep is None:
        raise Http404("No sweep matches the given query.")
    if action != "view":
        from apps.core.permissions import require

        require(user, action, sweep)
    return sweep


PRIORITY_SEP = "\x06\x16"  # kombu's Redis transport keeps priorities 3, 6 and 9 in lists `<queue>SEP<n>`
PRIORITY_STEPS = (3, 6, 9)


def queue_depths(names: list[str]) -> dict[str, int]:
    """Messages waiting per queue, counting the Redis transport's per-priority lists too.

    (apps.core.workers.queue_depths reads only the priority-0 list.)
    """
    pipe = workers.redis_client().pipeline()
    for name in names:
        pipe.llen(name)
        for step in PRIORITY_STEPS:
            pipe.llen(f"{name}{PRIORITY_SEP}{step}")
    counts = pipe.execute()
    width = 1 + len(PRIORITY_STEPS)
    return {name: sum(counts[i * width : (i + 1) * width]) for i, name in enumerate(names)}


def queue_overview(user) -> dict:
    """Depth and workers online per known queue, plus the running jobs the user may see."""
    names = set(queues.BASE_QUEUES)
    names.update(TrainingJob.objects.filter(state__in=TrainingJob.ACTIVE).values_list("queue", flat=True).distinct())
    error = ""
    try:
        online = workers.workers_by_queue()
        names.update(online)
        depths = queue_depths(sorted(names))
    except Exception as exc:  # Redis down: show the page with the reason rather than a 500
        online, depths, error = {}, {}, f"The broker is not reachable: {exc}"
    active = dict(TrainingJob.objects.filter(state__in=TrainingJob.ACTIVE).values_list("queue").annotate(n=Count("id")))
    rows = [
        {"queue": q, "depth": depths.get(q), "workers": online.get(q, 0), "active_jobs": active.get(q, 0)}
        for q in sorted(names)
    ]
    running = job_list(user).filter(state__in=(TrainingJob.State.RUNNING, TrainingJob.State.RETRYING))
    queued = job_list(user).filter(state=TrainingJob.State.QUEUED)
    return {"rows": rows, "running": running[:100], "queued": queued[:100], "error": error}


def cost_totals(user) -> dict:
    jobs = job_list(user)
    by_experiment = (
        jobs.values("experiment__name")
        .annotate(jobs=Count("id"), cost=Sum("cost"), wall_s=Sum("wall_s"), cpu_s=Sum("cpu_s"), gpu_s=Sum("gpu_s"))
        .order_by("-cost")
    )
    by_team = (
        jobs.values("team__name")
        .annotate(jobs=Count("id"), cost=Sum("cost"), wall_s=Sum("wall_s"), cpu_s=Sum("cpu_s"), gpu_s=Sum("gpu_s"))
        .order_by("-cost")
    )
    total = jobs.aggregate(cost=Sum("cost"), wall_s=Sum("wall_s"), gpu_s=Sum("gpu_s"), jobs=Count("id"))
    gpu_jobs = jobs.filter(resource_class="gpu", state=TrainingJob.State.SUCCEEDED, device="cuda")
    return {"by_experiment": list(by_experiment), "by_team": list(by_team), "total": total, "gpu_jobs": gpu_jobs[:50]}
