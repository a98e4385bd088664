"""Permission-aware reads for training: templates, jobs, sweeps, the queue page and the cost page.

Every `_for` and `_visible` starts from `restrict(...)`; joins and ordering are chosen here.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet, Sum

from apps.core import queues, workers
from apps.core.errors import NotFound
from apps.core.permissions import Action, require, restrict
from apps.experiments.models import Experiment
from apps.training.engine import templates as engine_templates
from apps.training.models import Sweep, TrainingJob


def templates_visible(user) -> list[dict[str, Any]]:
    """Every template with its hyperparameter schema: recipes are visible to every signed-in user."""
    return engine_templates.list_templates()


def template_for(user, name: str):
    """One template's spec by name, else `NotFound`."""
    if name not in engine_templates.TEMPLATES:
        raise NotFound("No training template matches the given query.")
    return engine_templates.get_template(name)


EXPERIMENT_CHOICES = 200


def experiments_for_launch(user) -> QuerySet[Experiment]:
    """The experiments `user` may add runs to (a launch form's choices), by name."""
    return restrict(user, "change", Experiment.objects.all()).order_by("name", "pk")[:EXPERIMENT_CHOICES]


def jobs_visible(user, filters: dict | None = None) -> QuerySet[TrainingJob]:
    """The jobs `user` may view, newest first. `filters` (validated): `state`, `template`, `sweep` (id)."""
    filters = filters or {}
    jobs = restrict(user, "view", TrainingJob.objects.all()).select_related(
        "owner", "team", "experiment", "model_version__model", "script_version__script"
    )
    if filters.get("state"):
        jobs = jobs.filter(state=filters["state"])
    if filters.get("template"):
        jobs = jobs.filter(template=filters["template"])
    if filters.get("sweep") is not None:
        jobs = jobs.filter(sweep_id=filters["sweep"])
    return jobs.order_by("-created_at", "-pk")


def job_for(user, pk: int, action: Action = "view") -> TrainingJob:
    """One job: `NotFound` when `user` may not view it, `Forbidden` when visible but `action` is not allowed."""
    job = (
        restrict(user, "view", TrainingJob.objects.all())
        .select_related(
            "owner",
            "team",
            "run",
            "experiment",
            "model_version__model",
            "sweep",
            "training_set",
            "script_version__script",
        )  # fmt: skip
        .filter(pk=pk)
        .first()
    )
    if job is None:
        raise NotFound("No training job matches the given query.")
    require(user, action, job)
    return job


def jobs_of(sweep: Sweep) -> QuerySet[TrainingJob]:
    """A sweep's trials (the sweep came through `sweep_for`), in trial order."""
    return sweep.jobs.select_related("owner", "team").order_by("trial_number", "pk")


def sweeps_visible(user, filters: dict | None = None) -> QuerySet[Sweep]:
    """The sweeps `user` may view, newest first, with their number of trials."""
    return (
        restrict(user, "view", Sweep.objects.all())
        .select_related("owner", "team", "best_job")
        .annotate(n_jobs=Count("jobs"))
        .order_by("-created_at", "-pk")
    )


def sweep_for(user, pk: int, action: Action = "view") -> Sweep:
    """One sweep: `NotFound` when `user` may not view it, `Forbidden` when visible but `action` is not allowed."""
    sweep = (
        restrict(user, "view", Sweep.objects.all()).select_related("owner", "team", "best_job").filter(pk=pk).first()
    )
    if sweep is None:
        raise NotFound("No sweep matches the given query.")
    require(user, action, sweep)
    return sweep


def queue_overview(user) -> dict:
    """Depth and workers online per known queue, plus the running jobs the user may see."""
    names = set(queues.BASE_QUEUES)
    names.update(TrainingJob.objects.filter(state__in=TrainingJob.ACTIVE).values_list("queue", flat=True).distinct())
    error = ""
    try:
        online = workers.workers_by_queue()
        names.update(online)
        depths = workers.queue_depths(sorted(names))
    except Exception as exc:  # Redis down: show the page with the reason rather than a 500
        online, depths, error = {}, {}, f"The broker is not reachable: {exc}"
    active = dict(TrainingJob.objects.filter(state__in=TrainingJob.ACTIVE).values_list("queue").annotate(n=Count("id")))
    rows = [
        {"queue": q, "depth": depths.get(q), "workers": online.get(q, 0), "active_jobs": active.get(q, 0)}
        for q in sorted(names)
    ]
    running = jobs_visible(user).filter(state__in=(TrainingJob.State.RUNNING, TrainingJob.State.RETRYING))
    queued = jobs_visible(user, {"state": TrainingJob.State.QUEUED})
    return {"rows": rows, "running": running[:100], "queued": queued[:100], "error": error}


def cost_totals(user) -> dict:
    """Cost and resource totals of the jobs `user` may view, by experiment and by team."""
    jobs = restrict(user, "view", TrainingJob.objects.all())
    sums = {"jobs": Count("id"), "cost": Sum("cost"), "wall_s": Sum("wall_s"), "cpu_s": Sum("cpu_s"),
            "gpu_s": Sum("gpu_s")}  # fmt: skip
    by_experiment = jobs.values("experiment__name").annotate(**sums).order_by("-cost", "experiment__name")
    by_team = jobs.values("team__name").annotate(**sums).order_by("-cost", "team__name")
    total = jobs.aggregate(cost=Sum("cost"), wall_s=Sum("wall_s"), gpu_s=Sum("gpu_s"), jobs=Count("id"))
    gpu_jobs = jobs_visible(user).filter(resource_class="gpu", state=TrainingJob.State.SUCCEEDED, device="cuda")
    return {"by_experiment": list(by_experiment), "by_team": list(by_team), "total": total, "gpu_jobs": gpu_jobs[:50]}
