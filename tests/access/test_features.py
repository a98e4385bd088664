"""Feature store: entities, feature views and their actions, online reads, training sets (API and pages)."""

from __future__ import annotations

from tests.access import objects
from tests.access.matrix import (
    HIDDEN_REFERENCE,
    AccessMatrix,
    api_changes,
    api_collection,
    api_reads,
    api_sharing,
    page_changes,
    page_collection,
    page_reads,
)

E = "/api/v1/entities/{entity}"
FV = "/api/v1/feature-views/{view}"
TS = "/api/v1/training-sets/{ts}"
SHARE = {"user": "bystander", "role": "viewer"}
UNSHARE = {"user": "viewer"}
NEW_VIEW = {"name": "fresh-view", "entity": "customer", "features": [{"name": "score", "dtype": "float64"}]}
NEW_SET = {
    "name": "fresh-set",
    "features": ["customer-stats:balance"],
    "entity_rows": [{"customer_id": 1, "event_timestamp": "2024-06-01"}],
}
ONLINE = {"features": ["customer-stats:balance"], "entities": {"customer_id": [1]}}
RANGE = {"start": "2024-04-01T00:00:00Z", "end": "2024-06-01T00:00:00Z"}


def features_with_job(owner, team) -> dict:
    """objects.features plus a queued materialization job of the batch view (never dispatched)."""
    from apps.features.models import FeatureView, MaterializationJob

    made = objects.features(owner, team)
    view = FeatureView.objects.get(name=made["view"])
    job = MaterializationJob.objects.create(
        view=view, version=view.version, requested_by=owner, start="2024-04-01T00:00:00Z", end="2024-06-01T00:00:00Z"
    )
    return {**made, "job": job.pk}


def entity_table(world):
    csv = b"customer_id,event_timestamp\n1,2024-06-01\n"
    return {"name": "page-set", "features": "customer-stats:balance", "file": objects.upload("rows.csv", csv)}


def ingest_file(world):
    rows = objects.feature_rows(1)[0]
    csv = ",".join(rows).encode() + b"\n" + ",".join(str(v) for v in rows.values()).encode() + b"\n"
    return {"file": objects.upload("rows.csv", csv), "rows": ""}


class TestFeatureApiAccess(AccessMatrix):
    make = staticmethod(features_with_job)
    rows = {
        ("GET", "/api/v1/entities/"): api_collection(),
        ("POST", "/api/v1/entities/"): api_collection(
            201, body={"name": "account", "join_keys": [{"name": "account_id", "dtype": "int64"}]}
        ),
        ("GET", f"{E}/"): api_reads(),
        ("GET", f"{E}/sharing"): api_sharing(),
        ("POST", f"{E}/sharing"): api_sharing(204, body=SHARE),
        ("DELETE", f"{E}/sharing"): api_sharing(204, body=UNSHARE),
        ("GET", "/api/v1/feature-views/"): api_collection(),
        ("POST", "/api/v1/feature-views/"): api_collection(201, stranger=HIDDEN_REFERENCE, body=NEW_VIEW),
        ("GET", f"{FV}/"): api_reads(),
        ("PATCH", f"{FV}/"): api_changes(body={"description": "changed"}),
        ("POST", f"{FV}/ingest"): api_changes(201, body=objects.feature_rows(1)),
        ("POST", "/api/v1/feature-views/{push_view}/push"): api_changes(body=objects.feature_rows(1)),
        ("GET", f"{FV}/materialize"): api_reads(),
        ("POST", f"{FV}/materialize"): api_changes(202, body=RANGE),
        ("POST", f"{FV}/materializations/{{job}}/cancel"): api_changes(),
        ("POST", f"{FV}/apply-retention"): api_changes(),
        ("GET", f"{FV}/sharing"): api_sharing(),
        ("POST", f"{FV}/sharing"): api_sharing(204, body=SHARE),
        ("DELETE", f"{FV}/sharing"): api_sharing(204, body=UNSHARE),
        # online reads take `features` or `read`: a write-only token is the one without the scope
        ("POST", "/api/v1/features/online"): api_reads(body=ONLINE, scopes=("write",)),
        ("GET", "/api/v1/training-sets/"): api_collection(),
        ("POST", "/api/v1/training-sets/"): api_collection(201, stranger=HIDDEN_REFERENCE, body=NEW_SET),
        ("GET", f"{TS}/"): api_reads(),
        ("GET", f"{TS}/data"): api_reads(),
        ("GET", f"{TS}/sharing"): api_sharing(),
        ("POST", f"{TS}/sharing"): api_sharing(204, body=SHARE),
        ("DELETE", f"{TS}/sharing"): api_sharing(204, body=UNSHARE),
    }


class TestFeaturePageAccess(AccessMatrix):
    make = staticmethod(features_with_job)
    rows = {
        ("GET", "/features/"): page_collection(),
        ("GET", "/features/new/"): page_collection(),
        ("POST", "/features/new/"): page_collection(
            302,
            stranger={200, 404},  # an invisible entity: not among the form's choices (200), or 404
            body={
                "name": "fresh-view",
                "entity": "customer",
                "features": "score:float64",
                "region": "default",
                "ttl_seconds": 0,
                "source": "batch",
            },
        ),  # fmt: skip
        ("GET", "/features/entities/"): page_collection(),
        ("GET", "/features/entities/{entity}/"): page_reads(),
        ("POST", "/features/entities/{entity}/share/"): page_changes(body=SHARE),
        ("POST", "/features/entities/{entity}/unshare/"): page_changes(body=UNSHARE),
        ("GET", "/features/entities/new/"): page_collection(),
        ("POST", "/features/entities/new/"): page_collection(
            302, body={"name": "account", "join_keys": "account_id:int64"}
        ),
        ("GET", "/features/lookup/"): page_collection(),
        # the form reports an unknown or invisible view alike, on the page
        ("POST", "/features/lookup/"): page_collection(
            body={"features": "customer-stats:balance", "keys": "1", "key_names": "customer_id"}
        ),
        ("GET", "/features/training-sets/"): page_collection(),
        # naming a feature of an invisible view: the form says so (200) or the page answers 404
        ("POST", "/features/training-sets/"): page_collection(302, stranger={200, 404}, body=entity_table),
        ("GET", "/features/training-sets/{ts}/"): page_reads(),
        ("POST", "/features/training-sets/{ts}/share/"): page_changes(body=SHARE),
        ("POST", "/features/training-sets/{ts}/unshare/"): page_changes(body=UNSHARE),
        ("GET", "/features/{view}/"): page_reads(),
        ("GET", "/features/{view}/ingest/"): page_changes(200),
        ("POST", "/features/{view}/ingest/"): page_changes(body=ingest_file),
        # the form lives on the view's page: a GET goes back there (viewers included)
        ("GET", "/features/{view}/materialize/"): page_reads(owner=302, viewer=302, editor=302, team=302, admin=302),
        ("POST", "/features/{view}/materialize/"): page_changes(
            body={"start": "2024-04-01T00:00", "end": "2024-06-01T00:00"}
        ),
        ("POST", "/features/{view}/materializations/{job}/cancel/"): page_changes(),
        ("POST", "/features/{view}/retention/"): page_changes(body={"retention_days": 400}),
        ("POST", "/features/{view}/retention/apply/"): page_changes(),
        ("POST", "/features/{view}/share/"): page_changes(body=SHARE),
        ("POST", "/features/{view}/unshare/"): page_changes(body=UNSHARE),
    }
