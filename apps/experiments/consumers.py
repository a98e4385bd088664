"""WebSockets `/ws/runs/{id}/` and `/ws/experiments/{id}/` (messages documented in live.py)."""

from __future__ import annotations

from apps.core.errors import NotFound
from apps.core.realtime import ObjectConsumer
from apps.experiments import selectors


class RunConsumer(ObjectConsumer):
    group_kind = "run"

    def load_object(self, user, pk):
        try:
            return selectors.run_for(user, pk)
        except NotFound:
            return None


class ExperimentConsumer(ObjectConsumer):
    group_kind = "experiment"

    def load_object(self, user, pk):
        try:
            return selectors.experiment_for(user, pk)
        except NotFound:
            return None
