"""Approvals fixtures: a model with a complete card, v1 behind `production`, a better v2, three
approvers, and helpers to file a request and run its checks as the worker would."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest

from apps.accounts import roles
from apps.approvals import services, tasks
from apps.approvals.models import PromotionRequest
from apps.approvals.selectors import evidence_for
from apps.catalog import services as catalog
from apps.catalog.models import CARD_SECTIONS, RegisteredModel
from apps.core.sharing import share_object
from tests.access.objects import onnx_bytes
from tests.conftest import api_client_for, make_user

PARITY = {"max_abs_diff": 2e-6, "tolerance": 1e-4, "exporter": "dynamo", "batch_sizes_checked": [1, 4]}
LINEAGE = {"run_id": "run-7", "training_data_digest": "sha256:abc123", "training_set": "loans-2024"}


@dataclass(frozen=True)
class SetupTicket:
    """An approved promotion for fixtures only: puts v1 behind `production` before any test."""

    pk: str
    model_version: object
    target_alias: str
    is_approved: bool = True


@pytest.fixture(autouse=True)
def sent_tasks(monkeypatch):
    """Celery messages the services send (after commit), recorded instead of sent."""
    sent: list[tuple[str, list]] = []
    monkeypatch.setattr(
        "apps.core.dispatch.celery_app.send_task", lambda name, args=(), **options: sent.append((name, list(args)))
    )
    return sent


@pytest.fixture(scope="session")
def artifact() -> bytes:
    return onnx_bytes()


def add_version(model: RegisteredModel, actor, data: bytes, **kwargs):
    kwargs.setdefault("onnx_parity", PARITY)
    kwargs.setdefault("lineage", LINEAGE)
    return catalog.version_register(
        model=model, actor=actor, artifact=io.BytesIO(data), artifact_size=len(data), **kwargs
    )


@pytest.fixture
def model(owner, artifact):
    model = catalog.model_create(actor=owner, name="credit-risk", description="Scores loans")
    catalog.card_update(
        model=model,
        actor=owner,
        **{field: f"{label}: written for the approvals tests." for field, label in CARD_SECTIONS},
    )
    v1 = add_version(model, owner, artifact, metrics={"val_auc": 0.90, "val_loss": 0.30})
    catalog.alias_move(
        model=model, alias="production", version=v1, actor=owner, promotion=SetupTicket("setup", v1, "production")
    )
    return model


@pytest.fixture
def v1(model):
    return model.versions.get(version=1)


@pytest.fixture
def v2(model, owner, artifact):
    return add_version(model, owner, artifact, metrics={"val_auc": 0.91, "val_loss": 0.28})


@pytest.fixture
def approvers(db):
    return [make_user(f"approver{i}", roles.APPROVERS) for i in (1, 2, 3)]


@pytest.fixture
def requester(model, collaborator):
    """An editor of the model (not its owner, not the versions' creator) who files the requests."""
    share_object(obj=model, actor=model.owner, role="editor", user=collaborator)
    return collaborator


def file_request(version, actor, alias="production", **change) -> PromotionRequest:
    return services.promotion_request(
        actor=actor,
        version=version,
        target_alias=alias,
        justification="Better AUC on the October validation set.",
        change={
            "type": "normal",
            "risk": "low",
            "impact": "Scores change slightly.",
            "rollback_plan": "Roll back.",
            **change,
        },
    )


def run_checks(promotion: PromotionRequest) -> PromotionRequest:
    """What the worker does with the `approvals.run_checks` message."""
    tasks.run_checks(promotion.pk)
    return PromotionRequest.objects.get(pk=promotion.pk)


def digest_of(promotion: PromotionRequest) -> str:
    return evidence_for(PromotionRequest.objects.get(pk=promotion.pk))["evidence_digest"]


def decide(promotion, actor, decision="approve", comment="Looks right.", digest=None):
    return services.promotion_decide(
        actor=actor,
        promotion=PromotionRequest.objects.get(pk=promotion.pk),
        decision=decision,
        comment=comment,
        evidence_digest=digest or digest_of(promotion),
    )


@pytest.fixture
def awaiting(v2, requester, approvers) -> PromotionRequest:
    """A request for v2 to production whose checks passed (two approvals needed)."""
    promotion = run_checks(file_request(v2, requester))
    assert promotion.state == "awaiting_approval", [(c.name, c.status, c.evidence) for c in promotion.checks.all()]
    return promotion


@pytest.fixture
def api_requester(requester):
    return api_client_for(requester)


@pytest.fixture
def api_approvers(approvers):
    return [api_client_for(user) for user in approvers]
