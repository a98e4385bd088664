"""Data-subject requests (UAE PDPL, GDPR): where one entity key's data lives, and its erasure.

- `subject_access` reports every place (offline partitions, online keys, training sets,
  prediction logs and their feedback; run artifacts are not indexed by entity key) and audits
  `subject.accessed`.
- `subject_erase` removes every copy now (the command line), `erasure_request` queues the same
  work as a job (the portal; `privacy.erase` on the default queue) and `erasure_run` is that job.
  Files are rewritten one at a time through the feature store's writers (new file, then the
  partition or training set row pointed at it; the old file goes after commit). Safe to repeat: a
  second run finds nothing and certifies zero.
- Each erasure ends in an `ErasureCertificate` and an audit event `subject.erased` with the counts
  per store, the SHA-256 of every rewritten file before and after and the certificate's own digest;
  the key appears in neither, only its keyed hash (`subject_digest`).

Callers: platform admins (others get NotFound), or the server's command line (`console=True`:
shell access to the server is operator access; the actor is still recorded).
"""

from __future__ import annotations

import hashlib
import io
import json
import secrets
import time
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from apps.core import vault
from apps.core.audit import audit_event
from apps.core.dispatch import enqueue
from apps.features import offline
from apps.features import services as feature_services
from apps.privacy import stores
from apps.privacy.models import ErasureCertificate
from apps.privacy.selectors import require_admin

TASK = "privacy.erase"
QUEUE = "default"
KEY_PURPOSE = "privacy.subject-key"
STORES = ("offline", "online", "training_sets", "prediction_logs", "feedback")
_SAVE_EVERY_S = 0.5
State = ErasureCertificate.State
Progress = Callable[[str, int, int], None]


def subject_digest(key: str) -> str:
    """The key as certificates and the audit trail keep it: HMAC-SHA256 under the portal's secret
    key (the same key, the same digest; the key cannot be read back from it)."""
    return salted_hmac("apps.privacy.subject", key, algorithm="sha256").hexdigest()


def subject_access(*, actor, key, entity: str | None = None, console: bool = False, request=None) -> dict:
    """Every place the key's data lives, with counts; audited without the key."""
    if not console:
        require_admin(actor)
    subject = stores.subject_of(key, entity)
    skipped: list[dict] = []
    offline_files = stores.offline_find(subject, skipped)
    online_keys = stores.online_find(subject, skipped)
    sets = stores.training_set_find(subject, skipped)
    predictions = stores.prediction_find(subject)
    digest = subject_digest(key)
    report = {
        "key_digest": digest,
        "entities": [e.name for e, _ in subject.entities],
        "region": offline.process_region(),
        "offline": {"rows": sum(f["rows"] for f in offline_files), "files": offline_files},
        "online": {"keys": len(online_keys), "entries": online_keys},
        "training_sets": {"rows": sum(s["rows"] for s in sets), "sets": sets},
        "prediction_logs": {"rows": predictions["rows"], "endpoints": predictions["endpoints"]},
        "feedback": {"rows": predictions["feedback"]},
        "not_indexed": list(stores.NOT_INDEXED.values()),
        "skipped": skipped,
        "certificates": list(ErasureCertificate.objects.filter(key_digest=digest).values_list("pk", flat=True)),
    }
    audit_event(
        actor=actor, event="subject.accessed", request=request,
        data={"key_digest": digest, "entities": report["entities"], "counts": _access_counts(report)},
    )  # fmt: skip
    return report


def _access_counts(report: dict) -> dict:
    return {
        "offline_rows": report["offline"]["rows"], "offline_files": len(report["offline"]["files"]),
        "online_keys": report["online"]["keys"], "training_set_rows": report["training_sets"]["rows"],
        "prediction_log_rows": report["prediction_logs"]["rows"], "feedback_rows": report["feedback"]["rows"],
    }  # fmt: skip


def subject_erase(
    *, actor, key, entity: str | None = None, progress: Progress | None = None, console: bool = False, request=None
) -> ErasureCertificate:
    """Erase the key everywhere now and return its certificate (raises after recording a failure)."""
    if not console:
        require_admin(actor)
    subject = stores.subject_of(key, entity)
    certificate = ErasureCertificate.objects.create(
        key_digest=subject_digest(key), entity_name=entity or "", requested_by=actor, state=State.RUNNING,
        started_at=timezone.now(), queue="",
    )  # fmt: skip
    return _execute(certificate, subject, progress, request=request)


def erasure_request(*, actor, key, entity: str | None = None, request=None) -> ErasureCertificate:
    """Queue an erasure (the portal): the key waits encrypted in the vault until the job has run."""
    require_admin(actor)
    stores.subject_of(key, entity)  # field errors now, not in the job
    with transaction.atomic():
        # Salted: the blob row records the plaintext's SHA-256, which must not identify a short key.
        sealed = json.dumps({"key": key, "salt": secrets.token_hex(16)}).encode("utf-8", "surrogatepass")
        blob = vault.blob_store(io.BytesIO(sealed), purpose=KEY_PURPOSE)
        certificate = ErasureCertificate.objects.create(
            key_digest=subject_digest(key), entity_name=entity or "", requested_by=actor, key_blob=blob, queue=QUEUE
        )
        audit_event(
            actor=actor, event="subject.erase_requested", obj=certificate, request=request,
            data={"key_digest": certificate.key_digest, "entity": certificate.entity_name},
        )  # fmt: skip
        enqueue(TASK, args=[certificate.pk], queue=QUEUE)
    return certificate


def erasure_run(*, certificate_id: int) -> ErasureCertificate:
    """The queued job: claim it once, erase, forget the stored key whatever happens."""
    claimed = ErasureCertificate.objects.filter(pk=certificate_id, state=State.QUEUED).update(
        state=State.RUNNING, started_at=timezone.now(), stage="starting"
    )
    certificate = ErasureCertificate.objects.select_related("key_blob", "requested_by").get(pk=certificate_id)
    if not claimed:
        return certificate  # a duplicate delivery: the job is running or done
    blob = certificate.key_blob
    try:
        key = json.loads(vault.blob_read(blob).decode("utf-8", "surrogatepass"))["key"] if blob else None
        if key is None:
            raise RuntimeError("The key of this request is no longer stored; ask again from the page.")
        subject = stores.subject_of(key, certificate.entity_name or None)
        return _execute(certificate, subject, None)
    except Exception as exc:
        if ErasureCertificate.objects.filter(pk=certificate.pk, state=State.RUNNING).exists():
            _fail(certificate, exc, [], {}, [])
        certificate.refresh_from_db()
        return certificate
    finally:
        _forget_key(certificate.pk)


def _forget_key(certificate_id: int) -> None:
    with transaction.atomic():
        certificate = ErasureCertificate.objects.select_for_update().get(pk=certificate_id)
        blob = certificate.key_blob
        if blob is not None:
            certificate.key_blob = None
            certificate.save(update_fields=["key_blob"])
            vault.blob_delete(blob)


class _Tracker:
    """Progress of one erasure: the caller's callback per store, the row's progress twice a second."""

    def __init__(self, certificate: ErasureCertificate, callback: Progress | None, total_units: int):
        self.certificate, self.callback = certificate, callback
        self.total, self.done, self.saved_at = max(total_units, 1), 0, 0.0

    def step(self, store: str, done: int, total: int) -> None:
        self.done += 1
        if self.callback:
            self.callback(store, done, total)
        now = time.monotonic()
        if now - self.saved_at >= _SAVE_EVERY_S or done == total:
            self.saved_at = now
            ErasureCertificate.objects.filter(pk=self.certificate.pk).update(
                progress=min(self.done / self.total, 1.0), stage=f"{store.replace('_', ' ')}: {done} of {total}"
            )


def _execute(certificate: ErasureCertificate, subject: stores.Subject, progress: Progress | None, request=None):
    skipped: list[dict] = []
    files: list[dict] = []
    counts = {store: {"removed": 0} for store in STORES}
    try:
        off_targets = list(stores.offline_targets(subject, skipped))
        set_targets = list(stores.training_set_targets(subject, skipped))
        tracker = _Tracker(certificate, progress, len(off_targets) + len(set_targets) + 2)
        _erase_offline(off_targets, files, counts, tracker)
        online_found = stores.online_find(subject, skipped)
        counts["online"] = {"removed": stores.online_erase(online_found)}
        tracker.step("online", 1, 1)
        _erase_training_sets(set_targets, files, counts, skipped, tracker)
        logs = stores.prediction_erase(subject)
        counts["prediction_logs"], counts["feedback"] = {"removed": logs["rows"]}, {"removed": logs["feedback"]}
        tracker.step("prediction_logs", 1, 1)
    except Exception as exc:
        _fail(certificate, exc, files, counts, skipped, request=request)
        raise
    return _certify(certificate, subject, files, counts, skipped, request=request)


def _erase_offline(targets: list, files: list, counts: dict, tracker: _Tracker) -> None:
    touched: dict[int, object] = {}
    counts["offline"].update(files_rewritten=0, files_deleted=0)
    for i, (view, part, names, values) in enumerate(targets, 1):
        entry = stores.offline_erase(view, part, names, values)
        if entry:
            files.append(entry)
            counts["offline"]["removed"] += entry["rows_removed"]
            counts["offline"]["files_rewritten" if entry["new_path"] else "files_deleted"] += 1
            touched[view.pk] = view
        tracker.step("offline", i, len(targets))
    for view in touched.values():
        feature_services.feature_view_recount(view=view)


def _erase_training_sets(targets: list, files: list, counts: dict, skipped: list, tracker: _Tracker) -> None:
    counts["training_sets"].update(files_rewritten=0)
    for i, (ts, names, values) in enumerate(targets, 1):
        entry = stores.training_set_erase(ts, names, values, skipped)
        if entry:
            files.append(entry)
            counts["training_sets"]["removed"] += entry["rows_removed"]
            counts["training_sets"]["files_rewritten"] += 1
        tracker.step("training_sets", i, len(targets))


def certificate_document(certificate: ErasureCertificate) -> dict:
    """The certificate as it is downloaded and digested (no key, only its keyed hash)."""
    return {
        "certificate": certificate.pk,
        "kind": "data-subject erasure",
        "state": certificate.state,
        "key_digest": certificate.key_digest,
        "key_digest_algorithm": "HMAC-SHA256 under the portal's secret key",
        "entity": certificate.entity_name or None,
        "region": offline.process_region(),
        "requested_by": certificate.requested_by.get_username(),
        "requested_at": _iso(certificate.created_at),
        "started_at": _iso(certificate.started_at),
        "finished_at": _iso(certificate.finished_at),
        "counts": certificate.counts,
        "files": certificate.files,
        "skipped": certificate.skipped,
        "not_indexed": list(stores.NOT_INDEXED.values()),
        "error": certificate.error or None,
    }


def certificate_download(*, actor, certificate: ErasureCertificate, request=None) -> bytes:
    """The certificate as a JSON file's bytes; the download is audited."""
    require_admin(actor)
    audit_event(
        actor=actor, event="subject.certificate_downloaded", obj=certificate, request=request,
        data={"certificate": certificate.pk, "document_sha256": certificate.document_sha256},
    )  # fmt: skip
    return json.dumps(certificate_document(certificate), indent=2, sort_keys=True).encode()


def document_digest(document: dict) -> str:
    return hashlib.sha256(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def _certify(certificate, subject, files, counts, skipped, request=None) -> ErasureCertificate:
    with transaction.atomic():
        certificate = (
            ErasureCertificate.objects.select_for_update().select_related("requested_by").get(pk=certificate.pk)
        )
        certificate.state, certificate.progress, certificate.stage = State.SUCCEEDED, 1.0, "done"
        certificate.counts, certificate.files, certificate.skipped = counts, files, skipped
        certificate.finished_at = timezone.now()
        certificate.document_sha256 = document_digest(certificate_document(certificate))
        entry = _audit(certificate, "subject.erased", [e.name for e, _ in subject.entities], request)
        certificate.audit_entry_id = entry.pk
        certificate.save()
    return certificate


def _fail(certificate, exc, files, counts, skipped, request=None) -> None:
    """Record what was done before the failure (a rerun finishes the rest) and audit it."""
    with transaction.atomic():
        certificate = (
            ErasureCertificate.objects.select_for_update().select_related("requested_by").get(pk=certificate.pk)
        )
        certificate.state, certificate.error = State.FAILED, f"{type(exc).__name__}: {exc}"[:2000]
        certificate.counts, certificate.files, certificate.skipped = counts, files, skipped
        certificate.finished_at = timezone.now()
        certificate.document_sha256 = document_digest(certificate_document(certificate))
        certificate.audit_entry_id = _audit(certificate, "subject.erase_failed", [], request).pk
        certificate.save()


def _audit(certificate: ErasureCertificate, event: str, entities: list[str], request):
    limit = settings.PRIVACY_AUDIT_MAX_FILES
    return audit_event(
        actor=certificate.requested_by, event=event, obj=certificate, request=request,
        data={
            "certificate": certificate.pk, "key_digest": certificate.key_digest, "entity": certificate.entity_name,
            "entities": entities, "counts": certificate.counts, "files": certificate.files[:limit],
            "files_total": len(certificate.files), "skipped": certificate.skipped,
            "document_sha256": certificate.document_sha256, "error": certificate.error,
        },
    )  # fmt: skip
