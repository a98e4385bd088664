"""Permission-aware reads for the feature registry: one restricted query per list, joins chosen here.

One object: `<thing>_for(user, key, action="view")` (NotFound when invisible, Forbidden when visible
but `action` is not allowed). Lists: `<things>_visible(user, filters)` with `filters` the validated
query string (a dict; unknown names are ignored). Children of an object already fetched: `<things>_of`.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import connection
from django.db.models import Prefetch, Q, QuerySet

from apps.core.errors import NotFound
from apps.core.permissions import Action, require, restrict, visible_one
from apps.features.models import Entity, FeatureView, FeatureViewVersion, MaterializationJob, TrainingSet

VIEW_FILTERS = {
    "q": "search name, description and feature names",
    "tag": "has this tag",
    "entity": "entity name",
    "region": "residency region",
    "owner": "owner username",
    "source": "batch or push",
}


def _has_tag(tag: str) -> Q:
    if connection.vendor == "postgresql":
        return Q(tags__contains=[tag])
    # Tags are validated slugs, so the quoted form matches one whole element of the JSON text.
    return Q(tags__icontains=f'"{tag}"')


def _text(filters: Mapping, name: str, limit: int) -> str:
    value = filters.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def feature_views_visible(user, filters: Mapping | None = None) -> QuerySet[FeatureView]:
    """The feature views `user` may view, filtered by `VIEW_FILTERS` (empty values ignored)."""
    filters = filters or {}
    views = restrict(user, "view", FeatureView.objects.select_related("entity", "owner", "team"))
    if q := _text(filters, "q", 100):
        views = views.filter(Q(name__icontains=q) | Q(description__icontains=q) | Q(features__icontains=q))
    if tag := _text(filters, "tag", 60):
        views = views.filter(_has_tag(tag))
    if entity := _text(filters, "entity", 100):
        views = views.filter(entity__name=entity)
    if region := _text(filters, "region", 41):
        views = views.filter(region=region)
    if owner := _text(filters, "owner", 150):
        views = views.filter(owner__username=owner)
    if (source := _text(filters, "source", 10)) in FeatureView.Source.values:
        views = views.filter(source=source)
    return views.order_by("name", "pk")


def feature_view_for(user, name: str, action: Action = "view") -> FeatureView:
    view = visible_one(user, FeatureView.objects.select_related("entity", "owner", "team"), name=name)
    if action != "view":
        require(user, action, view)
    return view


def entities_visible(user, filters: Mapping | None = None, *, with_views: bool = False) -> QuerySet[Entity]:
    """The entities `user` may view, by name. `with_views` also loads, in one more query for the
    whole list, the feature views on each that `user` may view (as ``entity.visible_views``)."""
    entities = restrict(user, "view", Entity.objects.select_related("owner", "team")).order_by("name", "pk")
    if with_views:
        views = restrict(user, "view", FeatureView.objects.only("pk", "name", "entity_id")).order_by("name", "pk")
        entities = entities.prefetch_related(Prefetch("views", queryset=views, to_attr="visible_views"))
    return entities


def entity_for(user, name: str, action: Action = "view") -> Entity:
    entity = visible_one(user, Entity.objects.select_related("owner", "team"), name=name)
    if action != "view":
        require(user, action, entity)
    return entity


def materialization_for(user, name: str, pk: int, action: Action = "view") -> MaterializationJob:
    """A materialization job of the view `name`; `action` is checked on the view (jobs have no
    permissions of their own)."""
    view = feature_view_for(user, name, action)
    job = view.materializations.select_related("view", "requested_by").filter(pk=pk).first()
    if job is None:
        raise NotFound("No materialization job of this feature view matches the given query.")
    return job


def materializations_of(view: FeatureView, limit: int = 20) -> list[MaterializationJob]:
    return list(view.materializations.select_related("requested_by", "view")[:limit])


def versions_of(view: FeatureView, limit: int = 50) -> list[FeatureViewVersion]:
    return list(view.versions.all()[:limit])


def training_sets_visible(user, filters: Mapping | None = None) -> QuerySet[TrainingSet]:
    sets = restrict(user, "view", TrainingSet.objects.select_related("owner", "team"))
    return sets.order_by("-created_at", "-pk")


def training_set_for(user, pk: int, action: Action = "view") -> TrainingSet:
    training_set = visible_one(user, TrainingSet.objects.select_related("owner", "team"), pk=pk)
    if action != "view":
        require(user, action, training_set)
    return training_set
