"""Writes of batch scoring: creating a job (upload or training set), cancelling it.

The upload is checked (size, format, columns against the version's signature) and encrypted into
the vault before the transaction; a failure anywhere after that discards the ciphertext, so
nothing is left behind. The task is sent by name after commit (`states.scoring_enqueue`).
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pyarrow as pa
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.catalog.artifacts import local_path
from apps.catalog.models import ModelVersion
from apps.catalog.selectors import version_for
from apps.core import residency, vault
from apps.core.audit import audit_event
from apps.core.errors import Conflict, Forbidden, IntegrityFailure, NotFound, TooLarge
from apps.core.permissions import can_view_pii, grant_owner, require, restrict
from apps.features import filestore
from apps.features.models import FeatureView, TrainingSet
from apps.features.training_sets import pii_columns, training_set_schema
from apps.serving.models import ScoringJob
from apps.serving.scoring import columns as cols
from apps.serving.scoring.lease import lease_held
from apps.serving.scoring.states import State, scoring_enqueue, scoring_transition
from apps.training.services.routing import resolve_route
from portal.celery import app as celery_app

log = logging.getLogger(__name__)
MAX_LISTED_COLUMNS = 1000


def scoring_job_create(
    *, actor, model: str, version: int, file=None, training_set: int | None = None, resource_class: str = "cpu",
    region: str | None = None, exclude: list[str] | None = None, keep: list[str] | None = None, request=None,
) -> ScoringJob:  # fmt: skip
    """Queue a job scoring `file` (Parquet or CSV) or the training set `training_set` with
    version `version` of the model called `model`.

    The caller needs `add` on ScoringJob (Forbidden) and `view` on the model and the training set
    (a field error otherwise). `TooLarge` past SERVING_SCORING_MAX_UPLOAD_BYTES; ValidationError
    naming the field (a missing column names the column).
    """
    require(actor, "add", ScoringJob)
    found = _version(actor, model, version)
    residency.check_same_region(
        found.region, region or found.region, actor=actor, obj=found, action="be scored", target_label="by a job"
    )
    exclude, keep = _names("exclude", exclude), _names("keep", keep)
    if (file is None) == (training_set is None):
        raise ValidationError({"file": ["Give either a file to score or a training set (one of them, not both)."]})
    if training_set is not None:
        return _create_from_training_set(actor, found, training_set, resource_class, region, exclude, keep, request)
    return _create_from_upload(actor, found, file, resource_class, region, exclude, keep, request)


def _version(actor, model: str, number: int) -> ModelVersion:
    try:
        return version_for(actor, model, number)
    except (NotFound, Forbidden):
        raise ValidationError({"model": [f"No model {model!r} with a version {number} is visible to you."]}) from None


def _names(field: str, value: Any) -> list[str]:
    if value in (None, ""):
        return []
    if (
        not isinstance(value, list)
        or len(value) > MAX_LISTED_COLUMNS
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise ValidationError({field: [f"{field} is a list of column names."]})
    return list(dict.fromkeys(value))


def _route(resource_class: str, region: str | None, data_region: str | None, *, actor, obj) -> tuple[str, str, str]:
    """(queue, region, warning): the warning says when no GPU worker is online to take the job yet."""
    queue, region_name, _device, warning = resolve_route(
        resource_class=resource_class, region=region or None, data_region=data_region, allow_cpu_fallback=False,
        actor=actor, obj=obj,
    )  # fmt: skip
    return queue, region_name, warning[:500]


def _size_of(upload) -> int:
    """Bytes in the upload: Django's files know it; a plain file object is measured."""
    size = getattr(upload, "size", None)
    if size is None:
        size = upload.seek(0, 2)
        upload.seek(0)
    return size


def _create_from_upload(actor, version, upload, resource_class, region, exclude, keep, request) -> ScoringJob:
    limit = settings.SERVING_SCORING_MAX_UPLOAD_BYTES
    size, filename = _size_of(upload), getattr(upload, "name", "") or ""
    if size > limit:
        raise TooLarge(f"The file is {size:,} bytes; the limit is {limit:,} bytes (SERVING_SCORING_MAX_UPLOAD_BYTES).")
    if size == 0:
        raise ValidationError({"file": ["The file is empty."]})
    upload.seek(0)
    fmt = cols.format_of(filename, upload.read(4))
    with local_path(upload) as path:
        schema = cols.input_schema(path, fmt)
        plan = cols.plan_inputs(version.signature, schema, exclude=exclude, keep=keep)
        rows_total = cols.parquet_rows(path) if fmt == "parquet" else None
    if rows_total == 0:
        raise ValidationError({"file": ["The file has no rows."]})
    queue, region_name, warning = _route(resource_class, region, version.region, actor=actor, obj=version)
    upload.seek(0)
    # Encrypt before the transaction: a large upload must not hold the database lock.
    name, result = vault.blob_write(upload, purpose="serving.scoring-input")
    try:
        with transaction.atomic():
            blob = vault.blob_record(name, result, purpose="serving.scoring-input")
            source = {"upload": filename[:200], "format": fmt, "inputs": plan, "exclude": exclude, "keep": keep}
            return _record(
                actor, version, source=source, input_blob=blob, rows_total=rows_total, resource_class=resource_class,
                region=region_name, queue=queue, warning=warning, request=request,
            )  # fmt: skip
    except BaseException:
        vault.blob_discard(name)
        raise


def _create_from_training_set(actor, version, set_id, resource_class, region, exclude, keep, request) -> ScoringJob:
    found = restrict(actor, "view", TrainingSet.objects.all()).filter(pk=set_id).first()
    if found is None:
        raise ValidationError({"training_set": [f"No training set {set_id} is visible to you."]})
    if not found.path or not filestore.exists(found.path):
        raise ValidationError(
            {"training_set": [f"The file of training set {set_id} is missing; tell a platform admin."]}
        )
    residency.check_same_region(
        version.region, found.region, actor=actor, obj=version, action="score", target_label="a training set"
    )
    try:  # the footer only (decrypted first when the set is sealed): the digest is checked when it runs
        schema = training_set_schema(found)
    except (pa.ArrowInvalid, OSError, IntegrityFailure) as exc:
        raise ValidationError({"training_set": [f"The file of training set {set_id} cannot be read: {exc}"]}) from None
    plan = cols.plan_inputs(version.signature, schema, exclude=exclude, keep=keep, field="training_set")
    _refuse_masked_keys(actor, found, keep)
    data_region = found.region if residency.is_pinned(found.region) else version.region
    queue, region_name, warning = _route(resource_class, region, data_region, actor=actor, obj=found)
    source = {"training_set": found.pk, "format": "parquet", "inputs": plan, "exclude": exclude, "keep": keep}
    with transaction.atomic():
        return _record(
            actor, version, source=source, training_set=found, rows_total=found.row_count or None,
            resource_class=resource_class, region=region_name, queue=queue, warning=warning, request=request,
        )  # fmt: skip


def _refuse_masked_keys(actor, training_set: TrainingSet, keep: list[str]) -> None:
    """A kept column is copied into the predictions: PII the caller may not see is refused."""
    pii = {c: v for c, v in pii_columns(training_set).items() if c in keep}
    views = {v.pk: v for v in FeatureView.objects.filter(pk__in=[v for v in pii.values() if v is not None])}
    hidden = [c for c, v in pii.items() if v not in views or not can_view_pii(actor, views[v])]
    if hidden:
        raise ValidationError(
            {"keep": [f"Column {hidden[0]!r} holds personal data you may not view; it cannot be kept."]}
        )


def _record(actor, version, *, source, request, **fields) -> ScoringJob:
    job = ScoringJob.objects.create(
        owner=actor, version=version, source=source, celery_task_id=str(uuid.uuid4()), **fields
    )
    grant_owner(job)
    audit_event(
        actor=actor, event="scoring.create", obj=job, request=request,
        data={"model": version.model.name, "version": version.version, "queue": job.queue,
              "source": "training_set" if job.training_set_id else "upload"},
    )  # fmt: skip
    scoring_enqueue(job)
    return job


def scoring_job_cancel(*, job: ScoringJob, actor, request=None) -> ScoringJob:
    """Cancel a queued job at once; ask a running one to stop before its next chunk (at once when
    its delivery is gone, so a cancel always reaches a final state). `Forbidden` without change
    rights; `Conflict` when the job has already ended."""
    require(actor, "change", job)
    with transaction.atomic():
        locked = ScoringJob.objects.select_for_update().get(pk=job.pk)
        if locked.state in ScoringJob.TERMINAL:
            raise Conflict(f"Scoring job {job.pk} is already {locked.state}; there is nothing to cancel.")
        locked.cancel_requested = True
        locked.save(update_fields=["cancel_requested", "updated_at"])
        if locked.state == State.QUEUED:
            scoring_transition(job=locked, to=State.CANCELLED, error="Cancelled while queued.")
            _revoke_on_commit(locked.celery_task_id)
        elif lease_held(locked) is False:  # under the row lock: a delivery starting now waits for it
            scoring_transition(
                job=locked, to=State.CANCELLED, error="Cancelled; its worker was gone, so it stopped at once."
            )
        audit_event(actor=actor, event="scoring.cancel", obj=locked, request=request, data={"state": locked.state})
    return locked


def _revoke_on_commit(task_id: str) -> None:
    def revoke() -> None:
        try:
            celery_app.control.revoke(task_id)
        except Exception:  # the task checks the row first, so a missed revoke is harmless
            log.warning("revoke of scoring task %s failed", task_id)

    transaction.on_commit(revoke)
