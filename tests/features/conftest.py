"""Feature store fixtures: a private store folder, a clean online store and cache per test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.features import nearcache, online, services
from apps.features.reader import CACHE

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def feature_store(settings, tmp_path):
    # Personas are created with real passwords; a fast hasher keeps this suite quick (not under test here).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.FEATURE_STORE_ROOT = tmp_path / "features"
    settings.PORTAL_REGION = "default"
    c = online.client()
    for key in c.scan_iter(match=f"{online.PREFIX}*", count=1000):
        c.delete(key)
    CACHE.clear()
    nearcache.evict(None)
    yield tmp_path / "features"
    CACHE.clear()


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


@pytest.fixture
def customer(owner):
    return services.entity_create(actor=owner, name="customer", join_keys=[{"name": "customer_id", "dtype": "int64"}])


FEATURES = [
    {"name": "balance", "dtype": "float64", "description": "account balance"},
    {"name": "orders", "dtype": "int64"},
    {"name": "segment", "dtype": "string"},
    {"name": "email", "dtype": "string", "pii": True, "description": "contact"},
]


@pytest.fixture
def view(owner, customer):
    return services.feature_view_create(
        actor=owner, name="customer-stats", entity=customer, features=FEATURES, tags=["risk"], ttl_seconds=0
    )


def rows(n_keys=3, per_key=2, start=T0):
    out = []
    for k in range(n_keys):
        for j in range(per_key):
            out.append(
                {
                    "customer_id": k,
                    "event_timestamp": iso(start + timedelta(days=j, hours=k)),
                    "balance": 100.0 * k + j,
                    "orders": k + j,
                    "segment": "gold" if k % 2 else "silver",
                    "email": f"c{k}@example.com",
                }
            )
    return out


@pytest.fixture
def ingested(view, owner):
    services.feature_view_ingest(view=view, actor=owner, data=rows())
    view.refresh_from_db()
    return view


@pytest.fixture
def materialized(ingested, owner, django_capture_on_commit_callbacks):
    job = services.feature_view_materialize(
        view=ingested, actor=owner, start=T0 - timedelta(days=1), end=T0 + timedelta(days=30)
    )
    job = services.materialization_run(job_id=job.pk)
    assert job.state == "succeeded", job.error
    ingested.refresh_from_db()
    return ingested
