"""The key ring in the portal (issue 17): what the ring holds, and rotating it from the web.

Platform admins only; everyone else gets NotFound (404), as a stranger does: the decision is the
decision point's (`apps.core.permissions.is_platform_admin`). Nothing here returns key material:
the summary names key ids and counts what each one protects (blobs it wraps, audit entries hashed
under it), with one aggregate query each.

A rotation is a `KeyRotation` job run by a worker on the default queue (re-wrapping every data key
can take a while): `key_rotation_request` queues it (one at a time, also across processes: a
partial unique index), `key_rotation_run` runs `vault.keys_rotate` as the admin who asked (so the
vault's `vault.keys_rotate` audit entry names them) and, when asked, `vault.keys_retire_unused`.
Only an embedded ring (the file in var/) can be rotated here; a ring from VAULT_KEYRING is changed
in the configuration (docs/SECURITY.md, "Keys"). Step-up is the boundary's (pages, API).
"""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError as DatabaseIntegrityError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from apps.core import permissions, vault
from apps.core.audit import acting_as, audit_event
from apps.core.dispatch import enqueue
from apps.core.errors import Conflict, NotFound
from apps.core.models import AuditEntry, KeyRotation, VaultBlob

TASK = "core.keys_rotate"
QUEUE = "default"
STEP_UP_ACTION = "keys.rotate"
# A live rotation that has not reported for this long lost its worker (or never found one): the
# next request marks it failed instead of waiting for it forever. Progress is saved every batch.
STALE_AFTER = timedelta(minutes=15)
NOT_FOUND = "Not found."
CONFIGURED = (
    "The key ring comes from the VAULT_KEYRING setting (environment or VAULT_KEYRING_FILE), which the "
    "portal cannot change: put a new key first there, restart every process, then run "
    "`python manage.py keys_rotate` (docs/SECURITY.md, Keys)."
)


def require_admin(user) -> None:
    """Raise NotFound unless `user` is a platform admin."""
    if not permissions.is_platform_admin(user):
        raise NotFound(NOT_FOUND)


# --- reads ------------------------------------------------------------------------------------


def keyring_summary(user) -> dict:
    """Key ids with what each protects, where the ring comes from, and the latest rotation."""
    require_admin(user)
    ring = vault.keyring()
    blobs = dict(VaultBlob.objects.order_by().values_list("kid").annotate(n=Count("id")))
    hashed = dict(AuditEntry.objects.order_by().exclude(hash_kid="").values_list("hash_kid").annotate(n=Count("id")))
    keys = []
    for kid in ring.kids:
        n_blobs, n_audit = blobs.get(kid, 0), hashed.get(kid, 0)
        keys.append(
            {
                "kid": kid,
                "active": kid == ring.active_kid,
                "blobs": n_blobs,
                "audit_entries": n_audit,
                "needed": kid == ring.active_kid or bool(n_blobs or n_audit),
            }
        )
    # Keys something is sealed or hashed under but the ring lacks: those files or entries cannot be read.
    missing = sorted((set(blobs) | set(hashed)) - set(ring.kids))
    embedded = vault.keyring_is_embedded()
    return {
        "source": "embedded" if embedded else "configured",
        "source_detail": str(vault.keyring_path()) if embedded else "VAULT_KEYRING",
        "rotatable": embedded,
        "active_kid": ring.active_kid,
        "keys": keys,
        "missing": [{"kid": kid, "blobs": blobs.get(kid, 0), "audit_entries": hashed.get(kid, 0)} for kid in missing],
        "rotation": KeyRotation.objects.select_related("requested_by").first(),
    }


def rotations_recent(user, limit: int = 5) -> list[KeyRotation]:
    require_admin(user)
    return list(KeyRotation.objects.select_related("requested_by")[:limit])


def rotation_for(user, pk) -> KeyRotation:
    require_admin(user)
    try:
        found = KeyRotation.objects.select_related("requested_by").filter(pk=int(pk)).first()
    except (TypeError, ValueError, OverflowError):
        found = None
    if found is None:
        raise NotFound(NOT_FOUND)
    return found


# --- writes -----------------------------------------------------------------------------------


def key_rotation_request(*, actor, retire: bool = False, request=None) -> KeyRotation:
    """Queue a rotation of the embedded ring; Conflict when the ring is configured or one is live.

    The caller has passed step-up (`STEP_UP_ACTION`) at its boundary."""
    require_admin(actor)
    with transaction.atomic():
        rotation_refusal()
        try:
            with transaction.atomic():
                rotation = KeyRotation.objects.create(requested_by=actor, retire=retire)
        except DatabaseIntegrityError:  # another request won the race between the check and here
            raise Conflict("A key rotation was started a moment ago; wait for it to finish.") from None
        audit_event(
            actor=actor, event="vault.keys_rotate_requested", obj=rotation, request=request,
            data={"rotation": rotation.pk, "retire": retire},
        )  # fmt: skip
        enqueue(TASK, args=[rotation.pk], queue=QUEUE)
    return rotation


def rotation_refusal() -> None:
    """Raise Conflict, saying why, when a rotation cannot start now (boundaries ask before step-up)."""
    if not vault.keyring_is_embedded():
        raise Conflict(CONFIGURED)
    _fail_stale()
    running = KeyRotation.objects.filter(live=True).select_related("requested_by").first()
    if running is not None:
        raise Conflict(_already(running))


def _already(running: KeyRotation) -> str:
    who = running.requested_by.get_username()
    when = timezone.localtime(running.created_at).strftime("%Y-%m-%d %H:%M")
    return (
        f"A key rotation is already {running.state} (number {running.pk}, started by {who} at {when}); "
        "wait for it to finish, then rotate again if you still need to."
    )


def _fail_stale() -> None:
    KeyRotation.objects.filter(live=True, updated_at__lt=timezone.now() - STALE_AFTER).update(
        live=False,
        updated_at=timezone.now(),
        state=KeyRotation.State.FAILED,
        finished_at=timezone.now(),
        error="No worker reported on this rotation for 15 minutes (none on the default queue, or it stopped). "
        "Keys already re-wrapped stay so; a new rotation finishes the rest.",
    )


def key_rotation_run(*, rotation_id: int) -> KeyRotation:
    """The queued job: claim it once, rotate as the admin who asked, record the outcome."""
    claimed = KeyRotation.objects.filter(pk=rotation_id, state=KeyRotation.State.QUEUED, live=True).update(
        state=KeyRotation.State.RUNNING, started_at=timezone.now(), updated_at=timezone.now()
    )
    rotation = KeyRotation.objects.select_related("requested_by").get(pk=rotation_id)
    if not claimed:
        return rotation  # a duplicate delivery, or marked stale: nothing to do
    actor = rotation.requested_by

    def progress(done: int, total: int) -> None:
        KeyRotation.objects.filter(pk=rotation_id).update(done=done, total=total, updated_at=timezone.now())

    outcome: dict = {"live": False, "finished_at": None}
    try:
        with acting_as(actor):
            report = vault.keys_rotate(actor=actor, progress=progress)
            if rotation.retire and not report["failed"]:
                report["retired_kids"] = vault.keys_retire_unused()
                if report["retired_kids"]:
                    audit_event(actor=actor, event="vault.keys_retired", data={"kids": report["retired_kids"]})
        failed = report["failed"]
        outcome.update(
            state=KeyRotation.State.FAILED if failed else KeyRotation.State.SUCCEEDED,
            previous_kid=report["previous_kid"],
            active_kid=report["active_kid"],
            report=report,
            error=f"{failed} data key(s) could not be re-wrapped; see the report's errors." if failed else "",
        )
    except Exception as exc:  # the job's error field says why; the page shows it
        outcome.update(state=KeyRotation.State.FAILED, error=str(exc)[:2000] or type(exc).__name__)
    outcome["finished_at"] = outcome["updated_at"] = timezone.now()
    KeyRotation.objects.filter(pk=rotation_id).update(**outcome)
    rotation.refresh_from_db()
    return rotation
