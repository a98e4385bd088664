"""Reference profiles: requested by people (202, built by a task), built once per version.

A version's profile comes from its training data (the training job's training set or demo
dataset) or from a reference file its owner uploads (a model imported from elsewhere). Building
changes what the version carries, so it needs `change` on the model.
"""

from __future__ import annotations

import io
import logging

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import ModelVersion
from apps.core import vault
from apps.core.dispatch import enqueue
from apps.core.errors import Conflict, TooLarge
from apps.core.permissions import require
from apps.monitoring import sources
from apps.monitoring.models import ReferenceProfile
from apps.monitoring.stats import profile_build

log = logging.getLogger(__name__)


def profile_request(*, actor, version: ModelVersion, file=None) -> ReferenceProfile:
    """Queue a (re)build of `version`'s profile from its training data, or from `file` (Parquet
    or CSV with the version's feature columns). 409 while a build is under way."""
    require(actor, "change", version.model)
    sources.tabular_width(version)  # a clear 400 for a model drift checks cannot cover
    upload = None
    if file is not None:
        size = getattr(file, "size", None) or 0
        if size > settings.MONITORING_PROFILE_MAX_UPLOAD_BYTES:
            raise TooLarge(
                f"The reference file is {size:,} bytes; at most {settings.MONITORING_PROFILE_MAX_UPLOAD_BYTES:,}."
            )
        _read_table(file)  # refuse a file that is not Parquet or CSV now, not in the worker
        file.seek(0)
    if file is not None:  # encrypted before the transaction; removed again if the request fails
        upload = vault.blob_store(file, purpose="reference-profile")
    try:
        with transaction.atomic():
            profile, _ = ReferenceProfile.objects.select_for_update().get_or_create(version=version)
            if profile.state == ReferenceProfile.State.RUNNING and not _stuck(profile):
                raise Conflict("The profile is being built; wait for it to finish.")
            old = profile.upload
            profile.state, profile.error, profile.built_by, profile.upload = (
                ReferenceProfile.State.QUEUED, "", actor, upload,
            )  # fmt: skip
            profile.save()
            if old is not None and old.pk != getattr(upload, "pk", None):
                vault.blob_delete(old)
            enqueue("monitoring.build_profile", args=[profile.pk], queue="default")
    except BaseException:
        if upload is not None:
            vault.blob_delete(upload)
        raise
    return profile


def _stuck(profile: ReferenceProfile) -> bool:
    """A build running for over an hour is taken as lost (its worker died): it may be asked again."""
    return profile.started_at is None or (timezone.now() - profile.started_at).total_seconds() > 3600


def _read_table(file) -> pa.Table:
    head = file.read(4)
    file.seek(0)
    try:
        if head == b"PAR1":
            return pq.read_table(io.BytesIO(file.read()))
        return pacsv.read_csv(io.BytesIO(file.read()))
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValidationError(
            {"file": [f"The reference file is neither Parquet nor CSV that can be read: {exc}"]}
        ) from None


def profile_build_now(profile_id: int) -> ReferenceProfile | None:
    """The task's body: build and store the profile; a failure is kept with its reason."""
    profile = ReferenceProfile.objects.select_related("version__model", "upload").filter(pk=profile_id).first()
    if profile is None:
        return None
    ReferenceProfile.objects.filter(pk=profile.pk).update(
        state=ReferenceProfile.State.RUNNING, started_at=timezone.now()
    )
    try:
        if profile.upload is not None:
            table = _read_table(io.BytesIO(vault.blob_read(profile.upload, max_bytes=1 << 40)))
            sample = sources.reference_from_table(profile.version, table)
        else:
            sample = sources.reference_sample(profile.version)
        data = profile_build(sample.columns, predictions=sample.predictions or None)
    except ValidationError as exc:
        return _failed(profile, "; ".join(m for ms in exc.message_dict.values() for m in ms))
    except Exception as exc:  # noqa: BLE001  (any failure is kept on the profile, with its reason)
        log.exception("reference profile %s failed", profile.pk)
        return _failed(profile, f"{type(exc).__name__}: {exc}")
    with transaction.atomic():
        profile.state, profile.data, profile.rows = ReferenceProfile.State.READY, data, sample.rows
        profile.columns, profile.source, profile.error = list(sample.columns), sample.source, ""
        profile.built_at = timezone.now()
        upload, profile.upload = profile.upload, None
        profile.save()
        if upload is not None:  # the file's statistics are kept; the file itself is not
            vault.blob_delete(upload)
    return profile


def _failed(profile: ReferenceProfile, message: str) -> ReferenceProfile:
    profile.state, profile.error = ReferenceProfile.State.FAILED, message[:2000]
    profile.save(update_fields=["state", "error"])
    return profile


def profile_ready_for(version: ModelVersion) -> ReferenceProfile:
    """The ready profile of `version`, built here and now when there is none yet (a drift check
    of a version nobody profiled); raises ValidationError with the reason when it cannot be."""
    profile, _ = ReferenceProfile.objects.get_or_create(version=version)
    if profile.state != ReferenceProfile.State.READY:
        profile = profile_build_now(profile.pk)
    if profile.state != ReferenceProfile.State.READY:
        raise ValidationError({"version": [f"No reference profile for {version}: {profile.error}"]})
    return profile
