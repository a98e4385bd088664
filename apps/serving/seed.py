"""Demo serving: the endpoint `fraud-demo` on the catalog seed's breast-cancer model, live on its
`staging` alias with a shadow copy to version 1. Predict tokens are not seeded: a token is shown
once, so people make their own on the profile page.

Idempotent: an existing `fraud-demo` is left alone.
"""

from __future__ import annotations

from apps.catalog.models import Alias, ModelVersion
from apps.serving.models import Endpoint
from apps.serving.services.endpoints import endpoint_create

NAME = "fraud-demo"
MODEL = "breast-cancer-mlp"


def seed(*, users, team, out) -> None:
    engineer = users.get("engineer")
    if engineer is None:
        out.write("  serving: no 'engineer' user; skipped")
        return
    if Endpoint.objects.filter(name=NAME).exists():
        out.write(f"  serving: {NAME} already there; left alone")
        return
    staging = Alias.objects.filter(model__name=MODEL, name="staging").select_related("version").first()
    first = ModelVersion.objects.filter(model__name=MODEL, version=1).first()
    if staging is None or first is None:
        out.write(f"  serving: no {MODEL} with a staging alias (catalog seed); skipped")
        return
    routes = [{"name": "main", "model": MODEL, "alias": "staging", "weight": 100, "mode": "live"}]
    if first.pk != staging.version_id:
        routes.append({"name": "challenger", "model": MODEL, "version": 1, "weight": 100, "mode": "shadow"})
    endpoint = endpoint_create(
        actor=engineer, name=NAME, description="Demo endpoint: the breast-cancer MLP behind its staging alias.",
        routes=routes, team=team.slug if team is not None else None,
    )  # fmt: skip
    shadow = " and a shadow copy to v1" if len(routes) > 1 else ""
    out.write(f"  serving: {endpoint.name} on {MODEL}@staging (v{staging.version.version}){shadow}")
