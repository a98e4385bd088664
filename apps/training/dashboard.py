from django.urls import reverse

from apps.training.models import TrainingJob
from apps.training.selectors import job_list


def cards(user) -> list[dict]:
    jobs = job_list(user)
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
