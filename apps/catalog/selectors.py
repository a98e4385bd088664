"""Permission-aware reads for the catalog: one SQL query per list, no id lists in Python.

Naming (STYLE 2): one object `<thing>_for(user, key, action="view")`, lists
`<things>_visible(user, filters)`, children of an object already fetched `<things>_of(parent)`.
Every `_for` / `_visible` starts from `restrict(...)`; a missing or invisible object is `NotFound`,
a visible one the user may not `action` is `Forbidden`.
"""

from __future__ import annotations

from typing import NamedTuple

from django.db import connection
from django.db.models import Q, QuerySet

from apps.catalog.models import Alias, ModelVersion, RegisteredModel
from apps.core.errors import NotFound
from apps.core.permissions import Action, require, restrict, visible_one


class AliasRow(NamedTuple):
    name: str
    version: int
    protected: bool


# What lists show of a model (the API row and the page): owner and team are joined for their names only.
LIST_FIELDS = ("name", "description", "tags", "owner", "team", "latest_version", "latest_version_at", "framework",
               "archived_at", "created_at", "updated_at")  # fmt: skip

# `sort` values of the model list (API and page) and the ordering each one means.
SORTS = {
    "name": "name",
    "-name": "-name",
    "updated": "-updated_at",
    "-updated": "-updated_at",
    "created": "created_at",
    "-created": "-created_at",
    "versions": "-latest_version",
}


def _has_tag(tag: str) -> Q:
    if connection.vendor == "postgresql":
        return Q(tags__contains=[tag])
    # Tags are validated slugs, so the quoted form matches one whole element of the JSON text.
    return Q(tags__icontains=f'"{tag}"')


def models_visible(user, filters: dict) -> QuerySet[RegisteredModel]:
    """The catalog list for `user`. `filters` is a validated query string (ModelFiltersSerializer
    or the page's ModelFiltersForm): q, tag, owner, alias, framework, archived, sort; absent keys
    do not filter. `with_aliases` adds a page's aliases in one query."""
    models = restrict(user, "view", RegisteredModel.objects.all())
    if not filters.get("archived"):
        models = models.filter(archived_at__isnull=True)
    if q := (filters.get("q") or "").strip():
        models = models.filter(Q(name__icontains=q) | Q(description__icontains=q))
    if tag := (filters.get("tag") or "").strip().lower():
        models = models.filter(_has_tag(tag))
    if owner := (filters.get("owner") or "").strip():
        models = models.filter(owner__username=owner)
    if alias := (filters.get("alias") or "").strip():
        models = models.filter(pk__in=Alias.objects.filter(name=alias).values("model_id"))
    if framework := filters.get("framework"):
        models = models.filter(framework=framework)
    order = SORTS.get(filters.get("sort") or "name", "name")
    return (
        models.select_related("owner", "team")
        .only(*LIST_FIELDS, "owner__username", "team__slug", "team__name")
        .order_by(order, "pk")
    )


def with_aliases(models: list[RegisteredModel]) -> list[RegisteredModel]:
    """Set `alias_list` ([AliasRow(name, version, protected)], by name) on a page of models: one
    query for the page, no queryset per model (Django's prefetch builds one for each)."""
    by_model: dict[int, list[AliasRow]] = {m.pk: [] for m in models}
    rows = (
        Alias.objects.filter(model_id__in=list(by_model))
        .order_by("name")
        .values_list("model_id", "name", "version__version", "protected")
    )
    for model_id, name, version, protected in rows:
        by_model[model_id].append(AliasRow(name, version, protected))
    for m in models:
        m.alias_list = by_model[m.pk]
    return models


def model_for(user, name: str, action: Action = "view") -> RegisteredModel:
    """One model by name: `NotFound` when invisible, `Forbidden` when visible but `action` is not allowed."""
    model = visible_one(user, RegisteredModel.objects.select_related("owner", "team", "card"), name=name)
    if action != "view":  # visible_one has answered "view" already
        require(user, action, model)
    return model


def versions_of(model: RegisteredModel) -> QuerySet[ModelVersion]:
    """Every version of `model`, newest first, with what lists show (blobs, author, aliases)."""
    return (
        ModelVersion.objects.filter(model=model)
        .select_related("model", "artifact", "state_dict", "created_by")
        .prefetch_related("aliases")
        .order_by("-version")
    )


def version_for(user, name: str, number, action: Action = "view") -> ModelVersion:
    """Version `number` of model `name`; a malformed or unknown number is `NotFound`."""
    model = model_for(user, name, action)
    try:
        found = versions_of(model).filter(version=int(number)).first()
    except (TypeError, ValueError, OverflowError):
        found = None
    if found is None:
        raise NotFound(f"Model {name!r} has no version {number}.")
    return found


def aliases_of(model: RegisteredModel) -> QuerySet[Alias]:
    """The aliases of `model` by name, with the version each points to and who moved it last."""
    return Alias.objects.filter(model=model).select_related("model", "version", "moved_by").order_by("name", "pk")


def alias_for(user, name: str, alias: str, action: Action = "view") -> Alias:
    """Alias `alias` of model `name`: `NotFound` when the model is invisible or has no such alias."""
    found = aliases_of(model_for(user, name, action)).filter(name=alias).first()
    if found is None:
        raise NotFound(f"Model {name!r} has no alias {alias!r}.")
    return found


def metric_series_of(model: RegisteredModel) -> dict[str, list[tuple[int, float]]]:
    """Every metric across versions, for the model page chart."""
    series: dict[str, list[tuple[int, float]]] = {}
    for number, metrics in (
        ModelVersion.objects.filter(model=model).order_by("version").values_list("version", "metrics")
    ):
        for key, value in (metrics or {}).items():
            series.setdefault(key, []).append((number, value))
    return series
