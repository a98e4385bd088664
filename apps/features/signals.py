"""Drop cached online-read decisions (in every process) whenever what they depend on changes."""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from apps.accounts.models import ApiToken
from apps.features import models as m

log = logging.getLogger(__name__)


def bump_generation() -> None:
    from apps.features import online
    from apps.features.reader import CACHE

    CACHE.clear()
    try:
        online.client().incr(online.GEN_KEY)
        from apps.features import nearcache

        nearcache.evict([online.GEN_KEY])  # this process sees the new generation at once
    except Exception:  # Redis down: local cache is cleared; entries also expire within a minute
        log.exception("could not bump the feature cache generation")


def _changed(sender, **kwargs) -> None:
    from apps.features.reader import CACHE

    CACHE.clear()  # this process at once (also inside tests' rolled-back transactions)
    transaction.on_commit(bump_generation)  # every process, after the change is visible


WATCHED = (
    m.FeatureView,
    m.Entity,
    m.FeatureViewUserObjectPermission,
    m.FeatureViewGroupObjectPermission,
    ApiToken,
    get_user_model(),
)
for model in WATCHED:
    post_save.connect(_changed, sender=model, dispatch_uid=f"features.cache.save.{model._meta.label}")
    post_delete.connect(_changed, sender=model, dispatch_uid=f"features.cache.delete.{model._meta.label}")
for through in (get_user_model().groups.through, get_user_model().user_permissions.through, Group.permissions.through):
    m2m_changed.connect(_changed, sender=through, dispatch_uid=f"features.cache.m2m.{through._meta.label}")
