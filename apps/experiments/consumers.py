"""WebSockets `/ws/runs/{id}/` and `/ws/experiments/{id}/` (messages documented in live.py)."""

from __future__ import annotations

from django.http import Http404

from apps.core.realtime import ObjectConsumer
from apps.experiments import selectors


class RunConsumer(ObjectConsumer):
    group_kind = "run"

    def load_object(self, user, pk):
        try:
            return selectors.get_run(user, pk)
        except Http404:
            return None


class ExperimentConsumer(ObjectConsumer):
    group_kind = "experiment"

    def load_object(self, user, pk):
        try:
            return selectors.get_experiment(user, pk)
        except Http404:
            return None
