"""Permission-aware reads for the catalog: one SQL query per list, no id lists in Python.

Naming (STYLE 2): one object `<thing>_for(user, key, action="view")`, lists
`<things>_visible(user, filters)`, children of an object already fetched `<things>_of(parent)`.
Every `_for` / `_visible` starts from `restrict(...)`; a missing or invisible object is `NotFound`,
a visible one the user may not `action` is `Forbidden`.
"""

from __future__ import annotations

import operator
from functools import reduce
from typing import NamedTuple

from django.db import connection
from django.db.models import Q, QuerySet

from apps.catalog.models import Alias, ModelVersion, RegisteredModel
from apps.core import sqltemplates
from apps.core.errors import NotFound
from apps.core.permissions import Action, apply_scope, require, restrict, scope, visible_one


class AliasRow(NamedTuple):
    name: str
    version: int
    protected: bool


# What lists show of a model (the API row and the page): owner and team are joined for their names only.
LIST_FIELDS = ("name", "description", "tags", "owner", "team", "latest_version", "latest_version_at", "framework",
               "archived_at", "created_at", "updated_at")  # fmt: skip
# The same as values, in `ModelRow`'s order (its attributes are these names with "__" as "_").
ROW_COLUMNS = ("pk", "name", "description", "tags", "owner__username", "team__slug", "team__name", "latest_version",
               "latest_version_at", "framework", "archived_at", "created_at", "updated_at", "region")  # fmt: skip

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


def has_tag(tag: str) -> Q:
    """Rows whose slug list `tags` holds `tag` (models and versions both name the field `tags`)."""
    if connection.vendor == "postgresql":
        return Q(tags__contains=[tag])
    # Tags are validated slugs, so the quoted form matches one whole element of the JSON text.
    return Q(tags__icontains=f'"{tag}"')


def _normalized(filters: dict) -> dict:
    return {
        "q": (filters.get("q") or "").strip(),
        "tag": (filters.get("tag") or "").strip().lower(),
        "owner": (filters.get("owner") or "").strip(),
        "alias": (filters.get("alias") or "").strip(),
        "framework": filters.get("framework") or "",
        "archived": bool(filters.get("archived")),
        "order": SORTS.get(filters.get("sort") or "name", "name"),
    }


def _filtered(models: QuerySet, f: dict) -> QuerySet:
    """`models` filtered and ordered by normalized filters `f` (empty values do not filter)."""
    if not f["archived"]:
        models = models.filter(archived_at__isnull=True)
    if f["q"]:
        models = models.filter(Q(name__icontains=f["q"]) | Q(description__icontains=f["q"]))
    if f["tag"]:
        models = models.filter(has_tag(f["tag"]))
    if f["owner"]:
        models = models.filter(owner__username=f["owner"])
    if f["alias"]:
        models = models.filter(pk__in=Alias.objects.filter(name=f["alias"]).values("model_id"))
    if f["framework"]:
        models = models.filter(framework=f["framework"])
    return models.order_by(f["order"], "pk")


def models_visible(user, filters: dict) -> QuerySet[RegisteredModel]:
    """The catalog list for `user` as a QuerySet. `filters` is a validated query string
    (ModelFiltersSerializer or the page's ModelFiltersForm): q, tag, owner, alias, framework,
    archived, sort; absent keys do not filter. Lists use `model_rows`, the same query as rows."""
    models = _filtered(restrict(user, "view", RegisteredModel.objects.all()), _normalized(filters))
    return models.select_related("owner", "team").only(*LIST_FIELDS, "owner__username", "team__slug", "team__name")


class ModelRow:
    """A model as lists show it (API rows and the page), read as values rather than instances."""

    __slots__ = (*(c.replace("__", "_") for c in ROW_COLUMNS), "alias_list")

    def __init__(self, *values) -> None:
        for name, value in zip(self.__slots__, values, strict=False):
            setattr(self, name, value)

    @classmethod
    def of(cls, model: RegisteredModel) -> ModelRow:
        """The row of one model instance (detail answers share the list's row shape)."""
        team = model.team if model.team_id else None
        return cls(
            model.pk, model.name, model.description, model.tags, model.owner.username,
            team and team.slug, team and team.name, model.latest_version, model.latest_version_at,
            model.framework, model.archived_at, model.created_at, model.updated_at, model.region,
        )  # fmt: skip


def model_rows(user, filters: dict) -> sqltemplates.Lazy:
    """`models_visible` as a sliceable list of `ModelRow` with `count()`, for paginators: its SQL
    is compiled once per shape (which filters, the caller's kind of access, the sort) and run with
    this request's values (apps/core/sqltemplates.py)."""
    f, p = _normalized(filters), sqltemplates.Params()
    decided = p.scope(scope(user, "view", RegisteredModel))
    marked = {
        "q": p.str(f["q"]) if f["q"] else p.literal(""),
        "tag": p.literal(f["tag"]),  # a JSON value on PostgreSQL: part of the shape, not a parameter
        "owner": p.str(f["owner"]) if f["owner"] else p.literal(""),
        "alias": p.str(f["alias"]) if f["alias"] else p.literal(""),
        "framework": p.literal(f["framework"]),
        "archived": p.literal(f["archived"]),
        "order": p.literal(f["order"]),
    }

    def build() -> QuerySet:
        return _filtered(apply_scope(decided, RegisteredModel.objects.all()), marked).values_list(*ROW_COLUMNS)

    return sqltemplates.Lazy(p.key("catalog.models"), p, build, ModelRow)


def with_aliases(models: list) -> list:
    """Set `alias_list` ([AliasRow(name, version, protected)], by name) on a page of models or
    model rows: one query for the page, compiled once per page length."""
    by_model: dict[int, list[AliasRow]] = {m.pk: [] for m in models}
    if by_model:
        p = sqltemplates.Params()
        ids = [p.int(pk) for pk in by_model]
        rows = sqltemplates.rows(
            p.key("catalog.aliases"),
            p,
            lambda: (
                Alias.objects.filter(model_id__in=ids)
                .order_by("name")
                .values_list("model_id", "name", "version__version", "protected")
            ),
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


def versions_visible(user, filters: dict | None = None) -> QuerySet[ModelVersion]:
    """The versions of every model `user` may view (archived models too: their versions stay
    readable), with what the MLflow API answers (model, author, aliases), in one query plus the
    aliases' prefetch. `filters`: ``names`` / ``run_ids`` (lists of exact values) and ``q``, a
    Q object over ModelVersion already built by the caller from validated input; ``order``, a
    list of order_by terms (``pk`` is added as the tie-breaker)."""
    filters = filters or {}
    versions = ModelVersion.objects.filter(model__in=restrict(user, "view", RegisteredModel.objects.all()))
    if filters.get("names") is not None:
        versions = versions.filter(model__name__in=filters["names"])
    if filters.get("run_ids") is not None:
        versions = versions.filter(run_id__in=filters["run_ids"])
    if filters.get("q") is not None:
        versions = versions.filter(filters["q"])
    order = [*(filters.get("order") or ["-created_at"]), "pk"]
    return versions.select_related("model", "created_by").prefetch_related("aliases").order_by(*order)


def latest_versions_of(models: list) -> dict[int, ModelVersion]:
    """{model pk: its newest version} for a page of models, in one query (plus the aliases' prefetch)."""
    pairs = [Q(model_id=m.pk, version=m.latest_version) for m in models if m.latest_version]
    if not pairs:
        return {}
    versions = ModelVersion.objects.filter(reduce(operator.or_, pairs))
    return {v.model_id: v for v in versions.select_related("model", "created_by").prefetch_related("aliases")}


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
