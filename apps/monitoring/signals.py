"""Alerts raised by what happens elsewhere: a canary rolled back, a job failed.

The apps that own those rows know nothing of monitoring (it depends on them, not the other way):
their saves are heard here. A failure to raise an alert is logged and never fails the save that
caused it.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from apps.catalog.models import RegisteredModel
from apps.core.audit_chain import audit_chain_broken
from apps.features.models import MaterializationJob
from apps.monitoring.models import Alert
from apps.monitoring.services.alerts import alert_raise
from apps.serving.models import Canary, ScoringJob
from apps.training.models import TrainingJob

log = logging.getLogger(__name__)


def _safely(raise_alert) -> None:
    try:
        with transaction.atomic():  # a savepoint: a failure here leaves the caller's transaction usable
            raise_alert()
    except Exception:  # noqa: BLE001  (the job or canary must finish whatever monitoring thinks)
        log.exception("monitoring: an alert could not be raised")


@receiver(post_save, sender=Canary, dispatch_uid="monitoring-canary-rollback")
def canary_rolled_back(sender, instance: Canary, **kwargs) -> None:
    if instance.state != Canary.State.ROLLED_BACK:
        return
    endpoint = instance.endpoint
    _safely(
        lambda: alert_raise(
            kind=Alert.Kind.CANARY_ROLLBACK,
            dedup_key=f"canary:{instance.pk}",
            severity=Alert.Severity.WARNING,
            title=f"Canary of {instance.version} on {endpoint.name} rolled back",
            description=instance.reason,
            data={"canary": instance.pk, "step": instance.step},
            endpoint=endpoint,
            object_url=f"/endpoints/{endpoint.name}/canary/",
            once=True,
        )  # fmt: skip
    )


def _job_failed(*, label: str, job, group: str, title: str, url: str, error: str, **subject) -> None:
    """One alert per group (a model's training, a view's materialization) while unresolved: each
    failed job counts once (a job row is saved several times as it fails)."""
    key = f"job_failed:{group}"
    existing = Alert.objects.filter(dedup_key=key).exclude(state=Alert.State.RESOLVED).first()
    jobs = list((existing.data or {}).get("jobs", [])) if existing else []
    if f"{label}:{job.pk}" in jobs:
        return
    alert_raise(
        kind=Alert.Kind.JOB_FAILED, dedup_key=key, severity=Alert.Severity.WARNING, title=title,
        description=error[:2000], data={"jobs": [*jobs, f"{label}:{job.pk}"][-50:], "last_job": f"{label}:{job.pk}"},
        object_url=url, **subject,
    )  # fmt: skip


@receiver(post_save, sender=TrainingJob, dispatch_uid="monitoring-training-failed")
def training_failed(sender, instance: TrainingJob, **kwargs) -> None:
    if instance.state != TrainingJob.State.FAILED:
        return
    model = RegisteredModel.objects.filter(name=instance.model_name).first()
    _safely(
        lambda: _job_failed(
            label="training",
            job=instance,
            group=f"training:{instance.model_name}",
            title=f"Training of {instance.model_name} failed (job {instance.pk})",
            url=f"/training/jobs/{instance.pk}/",
            error=instance.error or "",
            model=model,
            owner=instance.owner,
        )  # fmt: skip
    )


@receiver(post_save, sender=ScoringJob, dispatch_uid="monitoring-scoring-failed")
def scoring_failed(sender, instance: ScoringJob, **kwargs) -> None:
    if instance.state != ScoringJob.State.FAILED:
        return
    model = instance.version.model
    _safely(
        lambda: _job_failed(
            label="scoring",
            job=instance,
            group=f"scoring:{model.name}",
            title=f"Batch scoring with {instance.version} failed (job {instance.pk})",
            url=f"/scoring/{instance.pk}/",
            error=instance.error or "",
            model=model,
            owner=instance.owner,
        )  # fmt: skip
    )


@receiver(post_save, sender=MaterializationJob, dispatch_uid="monitoring-materialization-failed")
def materialization_failed(sender, instance: MaterializationJob, **kwargs) -> None:
    if instance.state != MaterializationJob.State.FAILED:
        return
    view = instance.view
    _safely(
        lambda: _job_failed(
            label="materialization",
            job=instance,
            group=f"materialization:{view.name}",
            title=f"Materialization of {view.name} failed (job {instance.pk})",
            url=f"/features/{view.name}/",
            error=instance.error or "",
            feature_view=view,
            owner=instance.requested_by,
        )  # fmt: skip
    )


@receiver(audit_chain_broken, dispatch_uid="monitoring-audit-chain-broken")
def audit_chain_failed(sender, report, **kwargs) -> None:
    """One critical platform alert while the audit trail fails verification (each check counts)."""
    where = f"entry {report.first_broken_id}" if report.first_broken_id else "the checkpoint file"
    _safely(
        lambda: alert_raise(
            kind=Alert.Kind.AUDIT_CHAIN,
            dedup_key="audit_chain",
            severity=Alert.Severity.CRITICAL,
            title=f"Audit trail failed its integrity check at {where} ({report.check})",
            description=f"{report.check_label}: {report.reason}.",
            data=report.as_dict(),
            object_url="/audit/",
        )
    )
