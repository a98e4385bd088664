"""Drop cached endpoint plans, tokens and view decisions of the predict path in every process when
what they depend on changes (the caches: apps/serving/inference/cache.py), and start the ramp of
an alias move on endpoints with a rollout plan (apps/serving/services/rollouts.py).

This process forgets at once (also inside a transaction a test rolls back); after commit the
Redis counter moves and every process's listener hears of it. Route rows are changed with
save()/create()/delete() for this reason: a queryset update() sends no signal.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from apps.accounts.models import ApiToken
from apps.catalog.models import Alias, RegisteredModel
from apps.serving import models as m
from apps.serving.inference.cache import bump, clear_local
from apps.serving.services.rollouts import rollouts_begin


def _changed(sender, **kwargs) -> None:
    clear_local()
    transaction.on_commit(bump)


WATCHED = (
    m.Endpoint,
    m.Route,
    m.EndpointUserObjectPermission,
    m.EndpointGroupObjectPermission,
    Alias,
    RegisteredModel,
    ApiToken,
    get_user_model(),
    Group,
)
for model in WATCHED:
    post_save.connect(_changed, sender=model, dispatch_uid=f"serving.cache.save.{model._meta.label}")
    post_delete.connect(_changed, sender=model, dispatch_uid=f"serving.cache.delete.{model._meta.label}")
for through in (get_user_model().groups.through, get_user_model().user_permissions.through, Group.permissions.through):
    m2m_changed.connect(_changed, sender=through, dispatch_uid=f"serving.cache.m2m.{through._meta.label}")


# --- alias moves that ramp in (apps/serving/services/rollouts.py) ---------------------------------
def _remember_version(sender, instance, **kwargs) -> None:
    instance._serving_previous_version_id = (
        Alias.objects.filter(pk=instance.pk).values_list("version_id", flat=True).first() if instance.pk else None
    )


def _alias_moved(sender, instance, created, raw=False, **kwargs) -> None:
    if raw:  # fixtures load rows as they are
        return
    rollouts_begin(alias=instance, previous_version_id=getattr(instance, "_serving_previous_version_id", None))


pre_save.connect(_remember_version, sender=Alias, dispatch_uid="serving.rollout.pre_save")
post_save.connect(_alias_moved, sender=Alias, dispatch_uid="serving.rollout.post_save")
