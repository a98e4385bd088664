"""The run page: sharing through the experiment, the model version it produced, what training
kept for it, and Latest metrics right from the first paint."""

import re

import pytest

from apps.catalog.models import ModelVersion
from apps.catalog.services import model_create
from apps.core.models import VaultBlob
from apps.core.permissions import can
from apps.experiments.services import run_log_batch
from apps.training.models import TrainingJob
from tests.conftest import api_client_for, page_client_for
from tests.experiments.factories import experiment, run

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged(owner):
    r = run(experiment(owner), owner)
    run_log_batch(run=r, actor=owner, metrics=[{"key": "epoch", "step": s, "value": float(s)} for s in range(1, 9)])
    return r


def blob(name: str, size: int) -> VaultBlob:
    return VaultBlob.objects.create(
        storage_key=name, wrapped_key="w", kid="k", purpose="test", plaintext_size=size, ciphertext_size=size + 28,
        sha256="ab" * 32,
    )  # fmt: skip


def test_run_page_sharing_card_shares_the_experiment(owner, collaborator, logged):
    client = page_client_for(owner)
    page = client.get(f"/runs/{logged.pk}/").content.decode()
    assert 'id="sharing"' in page and "Runs are shared with their experiment" in page
    assert f'action="/runs/{logged.pk}/share/"' in page
    response = client.post(f"/runs/{logged.pk}/share/", {"user": "collaborator", "role": "viewer"})
    assert response.status_code == 302 and response["Location"] == f"/runs/{logged.pk}/"
    assert can(collaborator, "view", logged.experiment) and not can(collaborator, "change", logged.experiment)
    assert page_client_for(collaborator).get(f"/runs/{logged.pk}/").status_code == 200
    bad = client.post(f"/runs/{logged.pk}/share/", {"user": "nobody-here", "role": "viewer"})
    assert bad.status_code == 400 and "No active user" in bad.content.decode()  # inline, on the run page
    assert client.post(f"/runs/{logged.pk}/unshare/", {"user": "collaborator"}).status_code == 302
    assert not can(collaborator, "view", logged.experiment)


def test_viewer_sees_no_sharing_card_and_cannot_share(owner, collaborator, logged):
    client = page_client_for(owner)
    client.post(f"/runs/{logged.pk}/share/", {"user": "collaborator", "role": "viewer"})
    viewer = page_client_for(collaborator)
    assert 'id="sharing"' not in viewer.get(f"/runs/{logged.pk}/").content.decode()
    assert viewer.post(f"/runs/{logged.pk}/share/", {"user": "owner", "role": "editor"}).status_code == 403


def test_latest_metrics_min_and_max_cover_every_stored_point_from_the_first_paint(owner, logged):
    page = page_client_for(owner).get(f"/runs/{logged.pk}/").content.decode()
    row = re.search(r'<tr data-key="epoch"[^>]*>.*?</tr>', page, re.S).group(0)
    assert 'data-min="1.0"' in row and 'data-max="8.0"' in row and 'data-last-step="8"' in row
    cells = re.findall(r'<td class="text-end[^"]*">([^<]*)</td>', row)
    assert cells == ["8", "1", "8"]  # by magnitude: never 8.0000


def test_run_links_the_model_version_it_produced_and_lists_training_artifacts(owner, stranger, logged):
    model = model_create(actor=owner, name="churn")
    version = ModelVersion.objects.create(
        model=model, version=1, artifact=blob("onnx-1", 412_331), run_id=str(logged.pk), created_by=owner
    )
    job = TrainingJob.objects.create(
        owner=owner, template="tabular-mlp", queue="cpu", experiment=logged.experiment, run=logged,
        model_name="churn", model_version=version, checkpoint=blob("ckpt-1", 9_000), checkpoint_epoch=3,
        checkpoint_step=150,
    )  # fmt: skip
    page = page_client_for(owner).get(f"/runs/{logged.pk}/").content.decode()
    assert 'href="/models/churn/versions/1/"' in page and "churn v1" in page
    assert 'href="/models/churn/versions/1/download/"' in page and "model.onnx" in page
    assert "checkpoint (epoch 3, step 150)" in page and f"/training/jobs/{job.pk}/" in page
    assert api_client_for(owner).get(f"/api/v1/runs/{logged.pk}/").json()["model_version"] == {
        "model": "churn",
        "version": 1,
    }


def test_model_version_stays_hidden_from_who_cannot_view_the_model(owner, collaborator, logged):
    model = model_create(actor=owner, name="churn")
    ModelVersion.objects.create(
        model=model, version=1, artifact=blob("onnx-1", 10), run_id=str(logged.pk), created_by=owner
    )
    page_client_for(owner).post(f"/runs/{logged.pk}/share/", {"user": "collaborator", "role": "viewer"})
    page = page_client_for(collaborator).get(f"/runs/{logged.pk}/").content.decode()
    assert "/models/churn/" not in page
    assert api_client_for(collaborator).get(f"/api/v1/runs/{logged.pk}/").json()["model_version"] is None
