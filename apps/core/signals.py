"""Carry the acting user into Celery tasks so changes made by workers are audited to them."""

from __future__ import annotations

import contextlib

from auditlog.context import auditlog_value
from celery.signals import before_task_publish, task_postrun, task_prerun

_open_contexts: dict[str, contextlib.ExitStack] = {}


@before_task_publish.connect
def attach_actor(headers=None, **kwargs):
    if headers is None or headers.get("actor_id"):
        return
    try:
        actor = auditlog_value.get().get("actor")
    except LookupError:
        return
    if getattr(actor, "pk", None):
        headers["actor_id"] = actor.pk


@task_prerun.connect
def enter_actor(task_id=None, task=None, **kwargs):
    from django.contrib.auth import get_user_model

    from apps.core.audit import acting_as, system_user

    actor_id = getattr(task.request, "actor_id", None) if task is not None else None
    user = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    stack = contextlib.ExitStack()
    stack.enter_context(acting_as(user or system_user()))
    _open_contexts[task_id] = stack


@task_postrun.connect
def leave_actor(task_id=None, **kwargs):
    stack = _open_contexts.pop(task_id, None)
    if stack is not None:
        stack.close()
