"""Permission-aware reads for the feature registry."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.core.permissions import restrict, visible_one
from apps.features.models import Entity, FeatureView, MaterializationJob, TrainingSet

VIEW_FILTERS = {
    "q": "search name, description and feature names",
    "tag": "has this tag",
    "entity": "entity name",
    "region": "residency region",
    "owner": "owner username",
    "source": "batch or push",
}


def views_visible(user, params=None) -> QuerySet:
    params = params or {}
    qs = restrict(user, "view", FeatureView.objects.select_related("entity", "owner", "team"))
    q = (params.get("q") or "").strip()[:100]
    if q:
        qs = qs.filter(Q(name__icontains=q) | Q(description__icontains=q) | Q(features__icontains=q))
    if params.get("tag"):
        tag = params["tag"][:60]
        ids = [v.pk for v in qs.only("pk", "tags") if tag in (v.tags or [])]
        qs = qs.filter(pk__in=ids)
    if params.get("entity"):
        qs = qs.filter(entity__name=params["entity"])
    if params.get("region"):
        qs = qs.filter(region=params["region"])
    if params.get("owner"):
        qs = qs.filter(owner__username=params["owner"])
    if params.get("source") in FeatureView.Source.values:
        qs = qs.filter(source=params["source"])
    return qs.order_by("name")


def view_for(user, name: str) -> FeatureView:
    return visible_one(user, FeatureView.objects.select_related("entity", "owner", "team"), name=name)


def entities_visible(user) -> QuerySet:
    return restrict(user, "view", Entity.objects.select_related("owner")).order_by("name")


def entity_for(user, name: str) -> Entity:
    return visible_one(user, Entity.objects.all(), name=name)


def jobs_of(view: FeatureView, limit: int = 20) -> list[MaterializationJob]:
    return list(view.materializations.select_related("requested_by")[:limit])


def training_sets_visible(user) -> QuerySet:
    return restrict(user, "view", TrainingSet.objects.select_related("owner")).order_by("-created_at", "-id")


def training_set_for(user, pk) -> TrainingSet:
    return visible_one(user, TrainingSet.objects.select_related("owner"), pk=pk)
