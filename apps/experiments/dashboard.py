from django.urls import reverse

from apps.experiments.models import Run
from apps.experiments.selectors import visible_experiments, visible_runs


def cards(user) -> list[dict]:
    experiments = visible_experiments(user).count()
    running = visible_runs(user).filter(status=Run.Status.RUNNING).count()
    return [
        {
            "title": "Experiments",
            "value": experiments,
            "detail": f"{running} run{'s' if running != 1 else ''} training now",
            "url": reverse("experiments:experiment-list"),
        }
    ]
