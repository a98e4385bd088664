"""WebSocket `/ws/training/jobs/{id}/`: the job's state, progress and ETA as they change."""

from __future__ import annotations

from apps.core.errors import NotFound
from apps.core.realtime import ObjectConsumer
from apps.training import selectors


class JobConsumer(ObjectConsumer):
    group_kind = "trainingjob"

    def load_object(self, user, pk):
        try:
            return selectors.job_for(user, pk)
        except NotFound:
            return None
