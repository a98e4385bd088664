"""Training set pages: list what the user can read, build one from an uploaded label table, detail
with lineage and "train on it" links; strangers get 404, roles without the add right 403."""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from apps.features import training_sets
from apps.features.models import TrainingSet
from tests.conftest import page_client_for as browser

LIST = "/features/training-sets/"
LABELS = b"customer_id,event_timestamp,churned\n0,2024-06-03T00:00:00Z,0\n1,2024-06-03T00:00:00Z,1\n2,2024-06-01T00:00:00Z,0\n"


def build(client, **overrides):
    data = {"name": "churn-june", "features": "customer-stats:balance, customer-stats:orders",
            "file": SimpleUploadedFile("labels.csv", LABELS, content_type="text/csv"), **overrides}  # fmt: skip
    return client.post(LIST, data)


def test_build_from_an_uploaded_label_table_then_train_on_it(ingested, owner):
    client = browser(owner)
    page = client.get(LIST).content.decode()
    assert "Build a training set" in page and '<option value="customer-stats:balance">' in page
    response = build(client)
    ts = TrainingSet.objects.get(name="churn-june")
    assert response.status_code == 302 and response["Location"] == f"{LIST}{ts.pk}/"
    assert ts.row_count == 3 and {"balance", "orders", "churned"} <= set(ts.columns)
    detail = client.get(response["Location"]).content.decode()
    assert "customer-stats" in detail and "v1" in detail
    assert f"/training/templates/tabular-mlp-classifier/launch/?training_set={ts.pk}" in detail
    assert "/training/templates/digits-cnn/launch/" not in detail  # images only: not offered
    assert "churn-june" in client.get(LIST).content.decode()


def test_bad_input_shows_errors_and_builds_nothing(ingested, owner):
    client = browser(owner)
    response = build(client, features="customer-stats:nope")
    assert response.status_code == 200 and "has no feature" in response.content.decode()
    response = build(client, file=SimpleUploadedFile("labels.csv", b"nothing,here\n1,2\n"))
    assert response.status_code == 200 and "column customer_id: is missing from the entity table" in (
        response.content.decode()
    )
    response = build(client, features=" , ")
    assert "Name at least one view:feature." in response.content.decode()
    assert not TrainingSet.objects.exists()


def test_stranger_404_and_roles_without_the_add_right_403(ingested, owner, stranger, auditor):
    ts = training_sets.training_set_create(
        actor=owner, name="mine", features=["customer-stats:balance"],
        entity_rows=[{"customer_id": 1, "event_timestamp": "2024-06-01"}],
    )  # fmt: skip
    assert browser(stranger).get(f"{LIST}{ts.pk}/").status_code == 404
    assert "mine" not in browser(stranger).get(LIST).content.decode()
    assert browser(stranger).get(f"{LIST}999999/").status_code == 404
    # The stranger may build sets, but not from a view they cannot see: a 404 for that view.
    response = build(browser(stranger), name="theirs")
    assert response.status_code == 404 and not TrainingSet.objects.filter(name="theirs").exists()
    assert "Build a training set" not in browser(auditor).get(LIST).content.decode()
    assert build(browser(auditor), name="audit").status_code == 403


def test_list_query_count_does_not_grow_with_sets(ingested, owner, django_assert_max_num_queries):
    for i in range(8):
        training_sets.training_set_create(
            actor=owner, name=f"s{i}", features=["customer-stats:balance"],
            entity_rows=[{"customer_id": 1, "event_timestamp": "2024-06-01"}],
        )  # fmt: skip
    client = browser(owner)
    with django_assert_max_num_queries(14):
        response = client.get(LIST)
    assert response.content.decode().count('href="/features/training-sets/') >= 8


def test_training_set_page_title_is_only_its_name(db):
    from django.template.loader import get_template

    source = get_template("features/training_set_detail.html").template.source
    title = source.split("{% block title %}", 1)[1].split("{% endblock %}", 1)[0]
    assert title == "{{ ts.name }}"
