"""Permission-aware reads for the catalog: one SQL query per list, no id lists in Python."""

from __future__ import annotations

from django.db import connection
from django.db.models import Prefetch, Q, QuerySet

from apps.catalog.models import Alias, ModelVersion, RegisteredModel
from apps.core.permissions import restrict, visible_one

SORTS = {
    "name": "name",
    "-name": "-name",
    "updated": "-updated_at",
    "-updated": "-updated_at",
    "created": "created_at",
    "-created": "-created_at",
    "versions": "-latest_version",
}
LIST_FILTERS = {
    "q": "search in name and description",
    "tag": "has this tag",
    "owner": "owner's username",
    "alias": "has an alias with this name",
    "framework": "framework of the newest version",
    "archived": "true: archived models too",
    "sort": f"one of {', '.join(SORTS)}",
}


def _has_tag(tag: str) -> Q:
    if connection.vendor == "postgresql":
        return Q(tags__contains=[tag])
    # Tags are validated slugs, so the quoted form matches one whole element of the JSON text.
    return Q(tags__icontains=f'"{tag}"')


def models_visible(user, params=None) -> QuerySet:
    """The catalog list for `user`, filtered and sorted by query params (bad values are ignored)."""
    params = params or {}
    qs = restrict(user, "view", RegisteredModel.objects.all())
    if str(params.get("archived", "")).lower() not in ("1", "true", "yes"):
        qs = qs.filter(archived_at__isnull=True)
    if q := (params.get("q") or "").strip()[:100]:
        qs = qs.filter(Q(name__icontains=q) | Q(description__icontains=q))
    if tag := (params.get("tag") or "").strip().lower()[:40]:
        qs = qs.filter(_has_tag(tag))
    if owner := (params.get("owner") or "").strip()[:150]:
        qs = qs.filter(owner__username=owner)
    if alias := (params.get("alias") or "").strip()[:40]:
        qs = qs.filter(pk__in=Alias.objects.filter(name=alias).values("model_id"))
    if framework := (params.get("framework") or "").strip()[:20]:
        qs = qs.filter(framework=framework)
    order = SORTS.get(params.get("sort") or "name", "name")
    return (
        qs.select_related("owner", "team")
        .prefetch_related(Prefetch("aliases", queryset=Alias.objects.select_related("version").order_by("name")))
        .order_by(order, "pk")
    )


def model_for(user, name: str, action: str = "view") -> RegisteredModel:
    """One model by name: 404 when invisible, 403 when visible but `action` is not allowed."""
    from apps.core.permissions import require

    model = visible_one(user, RegisteredModel.objects.select_related("owner", "team"), name=name)
    if action != "view":
        require(user, action, model)
    return model


def versions_of(model: RegisteredModel) -> QuerySet:
    return (
        ModelVersion.objects.filter(model=model)
        .select_related("artifact", "state_dict", "created_by")
        .prefetch_related("aliases")
        .order_by("-version")
    )


def version_for(user, name: str, number, action: str = "view") -> ModelVersion:
    from django.http import Http404

    model = model_for(user, name, action)
    try:
        return versions_of(model).select_related("model").get(version=int(number))
    except (ModelVersion.DoesNotExist, TypeError, ValueError):
        raise Http404(f"Model {name!r} has no version {number}.") from None


def alias_for(user, name: str, alias: str) -> Alias:
    from django.http import Http404

    model = model_for(user, name)
    found = Alias.objects.select_related("version", "moved_by", "model").filter(model=model, name=alias).first()
    if found is None:
        raise Http404(f"Model {name!r} has no alias {alias!r}.")
    return found


def metric_series(model: RegisteredModel) -> dict[str, list[tuple[int, float]]]:
    """Every metric across versions, for the model page chart."""
    series: dict[str, list[tuple[int, float]]] = {}
    for number, metrics in (
        ModelVersion.objects.filter(model=model).order_by("version").values_list("version", "metrics")
    ):
        for key, value in (metrics or {}).items():
            series.setdefault(key, []).append((number, value))
    return series


def sharing_of(model: RegisteredModel) -> dict:
    """Who has access to the model besides its owner, with their role."""
    from apps.catalog.models import RegisteredModelGroupObjectPermission, RegisteredModelUserObjectPermission

    users: dict[str, dict] = {}
    for perm in RegisteredModelUserObjectPermission.objects.filter(content_object=model).select_related(
        "user", "permission"
    ):
        entry = users.setdefault(perm.user.username, {"user": perm.user, "perms": set()})
        entry["perms"].add(perm.permission.codename.split("_", 1)[0])
    teams: dict[str, dict] = {}
    for perm in RegisteredModelGroupObjectPermission.objects.filter(content_object=model).select_related(
        "group__team", "permission"
    ):
        team = getattr(perm.group, "team", None)
        if team is None:
            continue
        entry = teams.setdefault(team.slug, {"team": team, "perms": set()})
        entry["perms"].add(perm.permission.codename.split("_", 1)[0])

    def role(perms: set) -> str:
        return "owner" if "delete" in perms else ("editor" if "change" in perms else "viewer")

    return {
        "users": [
            {"user": e["user"], "role": role(e["perms"])} for e in users.values() if e["user"].pk != model.owner_id
        ],
        "teams": [{"team": e["team"], "role": role(e["perms"])} for e in teams.values()],
    }
