"""The one way a service starts background work: a Celery task sent by name after commit.

Services never import the task modules (tasks call services, so that would be a cycle), and a
rolled-back transaction sends nothing: the worker always finds the rows the task names.

    enqueue("features.materialize", args=[job.pk], queue=job.queue)
"""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction

from portal.celery import app as celery_app


def enqueue(task_name: str, *, args: Sequence = (), queue: str, **options) -> None:
    """Send `task_name` with `args` to `queue` once the current transaction commits (at once
    outside one). `options` go to Celery (`priority`, `task_id`, `countdown`)."""
    arguments = list(args)
    transaction.on_commit(lambda: celery_app.send_task(task_name, args=arguments, queue=queue, **options))
