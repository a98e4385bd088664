"""The home page's training card: jobs running now and queued, of those the user may view."""

from django.urls import reverse

from apps.training.models import TrainingJob
from apps.training.selectors import jobs_visible


def cards(user) -> list[dict]:
    jobs = jobs_visible(user)
    running = jobs.filter(state__in=(TrainingJob.State.RUNNING, TrainingJob.State.RETRYING)).count()
    queued = jobs.filter(state=TrainingJob.State.QUEUED).count()
    return [
        {
            "title": "Training jobs",
            "value": running,
            "detail": f"running now, {queued} queued",
            "url": reverse("training:job-list"),
        }
    ]
