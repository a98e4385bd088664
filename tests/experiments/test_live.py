"""Live run updates go through the one broadcaster (apps.core.realtime): no thread of their own."""

from __future__ import annotations

import threading

import pytest

from apps.core.realtime import flush_sends
from apps.experiments import services
from tests.experiments.factories import experiment, points, run

pytestmark = pytest.mark.django_db


def test_live_updates_start_no_event_loop_thread_of_their_own(owner, django_capture_on_commit_callbacks):
    r = run(experiment(owner), owner)
    with django_capture_on_commit_callbacks(execute=True):
        services.run_log_batch(run=r, actor=owner, metrics=points("loss", 3))
        services.run_set_status(run=r, actor=owner, progress=0.5)
    assert flush_sends(3)
    names = [t.name for t in threading.enumerate()]
    assert "experiments-live" not in names
    assert names.count("realtime-sender") == 1
