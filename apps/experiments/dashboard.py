"""The experiments card on the home dashboard."""

from django.urls import reverse

from apps.experiments.models import Run
from apps.experiments.selectors import experiments_visible, runs_visible


def cards(user) -> list[dict]:
    experiments = experiments_visible(user).count()
    # Training now: running runs whose client is still heard from (stale ones are not training).
    running = runs_visible(user, {"status": Run.Status.RUNNING, "stale": False}).count()
    return [
        {
            "title": "Experiments",
            "value": experiments,
            "detail": f"{running} run{'s' if running != 1 else ''} training now",
            "url": reverse("experiments:experiment-list"),
        }
    ]
