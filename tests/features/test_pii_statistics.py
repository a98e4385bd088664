"""PII features show counts and distinct counts only, never values, whoever looks: in the stored
statistics, the API, the view page's schema table and its Distributions panel."""

from __future__ import annotations

import json
import re

import pytest

from apps.core.permissions import can_view_pii, share
from apps.features import services
from apps.features.models import FeatureView
from tests.conftest import api_client_for
from tests.conftest import page_client_for as browser
from tests.features.conftest import FEATURES

pytestmark = pytest.mark.django_db
VALUE_KEYS = {"min", "max", "mean", "std", "quantiles", "histogram", "top"}


def emails_in(text: str) -> list[str]:
    return re.findall(r"c\d@example\.com", text)


def test_pii_statistics_are_counts_only_when_computed(ingested):
    assert ingested.statistics["email"] == {"count": 6, "nulls": 0, "distinct": 3, "pii": True}
    assert "top" in ingested.statistics["segment"]  # other string features keep their top values


def test_numeric_pii_feature_has_no_min_max_or_histogram(owner, customer):
    features = [{"name": "age", "dtype": "int64", "pii": True}, {"name": "score", "dtype": "float64"}]
    view = services.feature_view_create(actor=owner, name="people", entity=customer, features=features)
    data = [{"customer_id": i, "event_timestamp": "2024-05-01", "age": 30 + i % 3, "score": i / 2} for i in range(9)]
    services.feature_view_ingest(view=view, actor=owner, data=data)
    view.refresh_from_db()
    assert view.statistics["age"] == {"count": 9, "nulls": 0, "distinct": 3, "pii": True}
    assert view.statistics["score"]["max"] == 4.0


@pytest.mark.parametrize("who", ["owner", "steward_with_view_pii", "viewer"])
def test_api_statistics_of_pii_features_hold_no_values_whoever_asks(who, ingested, owner, collaborator):
    user = owner
    if who != "owner":
        share(ingested, role="viewer", user=collaborator)
        user = collaborator
    if who == "steward_with_view_pii":
        services_share_pii(ingested, collaborator)
        assert can_view_pii(collaborator, ingested)
    body = api_client_for(user).get(f"/api/v1/feature-views/{ingested.name}/").json()
    assert body["statistics"]["email"] == {"count": 6, "nulls": 0, "distinct": 3, "pii": True}
    assert not emails_in(json.dumps(body["statistics"]))


def services_share_pii(view, user) -> None:
    from apps.core.permissions import PII_CODENAME, grant_extra

    grant_extra(view, PII_CODENAME, user=user)


def test_distributions_panel_never_charts_pii_values_even_for_the_steward(ingested, owner):
    response = browser(owner).get(f"/features/{ingested.name}/")
    assert response.status_code == 200
    html = response.content.decode()
    data = json.loads(re.search(r'<script id="stats-data" type="application/json">(.*?)</script>', html, re.S)[1])
    assert data["email"] == {"count": 6, "nulls": 0, "distinct": 3, "pii": True}
    assert "top" in data["segment"]
    schema = html[html.index('<h2 class="h5 mt-4">Schema</h2>') : html.index("Distributions</h2>")]
    assert not emails_in(schema) and "PII: values are never shown in statistics" in schema


def test_statistics_stored_before_a_feature_became_pii_are_not_shown(ingested, owner):
    # statistics computed while `segment` was not PII hold its top values; marking it PII hides them
    assert ingested.statistics["segment"]["top"]
    features = [f | {"pii": True} if f["name"] == "segment" else f for f in FEATURES]
    services.feature_view_update(view=ingested, actor=owner, features=features)
    view = FeatureView.objects.get(pk=ingested.pk)
    assert VALUE_KEYS.isdisjoint(view.statistics["segment"])  # scrubbed in the database too
    body = api_client_for(owner).get(f"/api/v1/feature-views/{view.name}/").json()
    assert body["statistics"]["segment"] == {"count": 6, "nulls": 0, "distinct": 2, "pii": True}
    assert b"silver" not in browser(owner).get(f"/features/{view.name}/").content.split(b"Newest rows")[0]


def test_pii_rows_stay_readable_for_the_steward(ingested, owner):
    # the rule is about statistics: the audited preview of rows still shows PII to who may see it
    assert emails_in(browser(owner).get(f"/features/{ingested.name}/").content.decode())
