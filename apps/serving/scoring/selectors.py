"""Reads of batch-scoring jobs, always through the decision point (apps/core/permissions.py)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.errors import NotFound
from apps.core.permissions import Action, require, restrict
from apps.serving.models import ScoringJob


def scoring_jobs_visible(user, filters: dict) -> QuerySet[ScoringJob]:
    """The jobs `user` may view, newest first; `filters`: a validated query string (`state`)."""
    jobs = restrict(user, "view", ScoringJob.objects.select_related("owner", "version__model", "training_set"))
    if filters.get("state"):
        jobs = jobs.filter(state=filters["state"])
    return jobs.order_by("-created_at", "-pk")


def scoring_job_for(user, pk: int, action: Action = "view") -> ScoringJob:
    """One job if `user` may view it (NotFound otherwise), then `require(action)` (Forbidden)."""
    job = (
        restrict(
            user, "view", ScoringJob.objects.select_related("owner", "version__model", "training_set", "output_blob")
        )
        .filter(pk=pk)
        .first()
    )
    if job is None:
        raise NotFound("No scoring job matches the given query.")
    require(user, action, job)
    return job
