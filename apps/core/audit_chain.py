"""The audit chain's anchors and its verifier: signed checkpoints outside the table, full and
incremental verification, and the alert when it breaks.

A checkpoint is one JSON line ``{v, seq, head, count, time, kid, sig}``: the entry id `seq`, its
hash `head`, how many entries have an id up to `seq`, and an HMAC over the rest under the checkpoint
key of master key `kid` (apps.core.audit_keys). Lines are appended (O_APPEND, fsync) to
``settings.AUDIT_CHECKPOINT_PATH`` under the var directory and logged on ``portal.audit``; nothing
here ever rewrites that file. One is written after every ``AUDIT_CHECKPOINT_EVERY`` entries (after
commit, one append) and by the hourly beat task.

Verification fails when an entry's keyed hash or its link to the previous entry does not hold, an
entry names a master key the ring lacks, a checkpoint's signature is bad, the entry at a
checkpoint's seq is missing or has another hash or count (re-chained), or the table ends before the
newest checkpoint (truncated; flushed when it is empty). The full walk reads the table once, in id
order; `chain_status` (the audit page, /healthz) starts from the last verified state, kept signed
beside the checkpoint file, and checks only what is new: a few indexed lookups when nothing is.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import logging
import os
import tempfile
from datetime import datetime
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.dispatch import Signal, receiver
from django.utils import timezone

from apps.core import audit_keys
from apps.core.audit_keys import CANONICAL_FIELDS, GENESIS_HASH
from apps.core.crypto import KeyRingError
from apps.core.models import AuditEntry, audit_entry_chained

log = logging.getLogger("portal.audit")

# Sent with `report` (a ChainReport) when a verification finds the chain broken; monitoring
# raises the "audit_chain" alert from it (apps/monitoring/signals.py).
audit_chain_broken = Signal()

CHECKS = {
    "link": "an entry does not follow the one before it (deleted or inserted)",
    "hash": "an entry's keyed hash does not match its content (edited)",
    "key": "an entry or checkpoint names a master key that is not in the key ring (retired too early?)",
    "checkpoint_signature": "a checkpoint line is not signed by the portal (the file was edited or forged)",
    "checkpoint_mismatch": "the table disagrees with a checkpoint (entries re-chained, deleted or inserted)",
    "truncated": "the table ends before the newest checkpoint (newest entries deleted)",
    "flushed": "the table is empty but checkpoints exist (entries purged)",
    "anchor": "an entry verified earlier is gone or changed",
}
_WALK_FIELDS = ("prev_hash", "entry_hash", "hash_kid", *CANONICAL_FIELDS)


@dataclasses.dataclass
class ChainReport:
    """What a verification found. `ok` and `status` agree except for "unverified" (ok so far, rows
    left for the next call); `check` names the failed check (a key of CHECKS)."""

    ok: bool
    checked: int = 0
    first_broken_id: int | None = None
    reason: str = ""
    check: str = ""
    status: str = "ok"
    mode: str = "full"
    verified_through: int = 0
    head_hash: str = GENESIS_HASH
    count: int = 0
    pending: int = 0
    last_checkpoint_seq: int | None = None
    last_full_at: str | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def check_label(self) -> str:
        return CHECKS.get(self.check, "")

    @property
    def last_full_time(self) -> datetime | None:
        return datetime.fromisoformat(self.last_full_at) if self.last_full_at else None


class _Broken(Exception):
    def __init__(self, check: str, entry_id: int | None, reason: str) -> None:
        super().__init__(reason)
        self.check, self.entry_id, self.reason = check, entry_id, reason


# --- checkpoints ----------------------------------------------------------------------------


def checkpoint_path() -> Path:
    return Path(settings.AUDIT_CHECKPOINT_PATH)


def _state_path() -> Path:
    path = checkpoint_path()
    return path.with_name(f"{path.stem}.verified.json")


def checkpoint_write(*, seq: int, head: str, count: int, kid: str, note: str = "") -> dict:
    """Append one signed checkpoint line and log it. `kid` is the master key the entry at `seq` was
    hashed under, so a key the checkpoints need is always one the entries keep in the ring."""
    _, key = audit_keys.checkpoint_key(kid)
    body = {"v": 1, "seq": seq, "head": head, "count": count, "time": timezone.now().isoformat(), "kid": kid}
    if note:
        body["note"] = note
    line = {**body, "sig": audit_keys.sign(key, body)}
    data = (json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n").encode()
    path = checkpoint_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, data)  # one write: concurrent appenders never interleave inside a line
        os.fsync(fd)
    finally:
        os.close(fd)
    log.info("audit checkpoint %s", data.decode().strip())
    return line


def checkpoint_entry(seq: int) -> dict | None:
    """Checkpoint the stored entry `seq` (after its transaction committed); None if it is gone."""
    row = AuditEntry.objects.filter(pk=seq).values_list("entry_hash", "hash_kid").first()
    if row is None:
        return None
    count = AuditEntry.objects.filter(pk__lte=seq).count()
    return checkpoint_write(seq=seq, head=row[0], count=count, kid=row[1])


def _checkpoint_safely(seq: int) -> None:
    try:
        checkpoint_entry(seq)
    except Exception:  # noqa: BLE001  (the write that triggered it has committed; the hourly one follows)
        log.exception("audit checkpoint at entry %s could not be written", seq)


@receiver(audit_entry_chained, dispatch_uid="core.audit_chain.checkpoint_every_n")
def _checkpoint_every_n(sender, entry, prev_id: int, **kwargs) -> None:
    every = settings.AUDIT_CHECKPOINT_EVERY
    if entry.pk // every != prev_id // every:  # crossed a multiple of N (ids may have gaps)
        transaction.on_commit(partial(_checkpoint_safely, entry.pk), robust=True)


def _read_checkpoints(offset: int) -> tuple[list[dict], int]:
    """Signed checkpoints from byte `offset` on, and the offset after the last complete line.
    Raises _Broken for a line that does not parse or verify."""
    path = checkpoint_path()
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except FileNotFoundError:
        return [], 0
    complete = data[: data.rfind(b"\n") + 1]  # a line still being appended is read next time
    found: list[dict] = []
    for number, raw in enumerate(complete.splitlines(), 1):
        found.append(_checked_checkpoint(raw, f"{path.name} byte {offset}, line {number}"))
    return found, offset + len(complete)


def _checked_checkpoint(raw: bytes, where: str) -> dict:
    try:
        line = json.loads(raw)
        body = {k: v for k, v in line.items() if k != "sig"}
        seq, head, count, kid = int(line["seq"]), str(line["head"]), int(line["count"]), str(line["kid"])
        _, key = audit_keys.checkpoint_key(kid)
    except KeyRingError as exc:
        raise _Broken("key", None, f"{where} cannot be checked: {exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError):
        raise _Broken("checkpoint_signature", None, f"{where} is not a checkpoint line") from None
    if not hmac.compare_digest(str(line.get("sig", "")), audit_keys.sign(key, body)):
        raise _Broken("checkpoint_signature", seq, f"{where} (seq {seq}) has a bad signature")
    return {"seq": seq, "head": head, "count": count}


# --- the walk -------------------------------------------------------------------------------


@dataclasses.dataclass
class _Position:
    """How far the chain is verified: the last entry, its hash, entries up to it, checkpoint state."""

    through: int = 0
    head: str = GENESIS_HASH
    count: int = 0
    offset: int = 0  # bytes of the checkpoint file already verified
    ahead: list = dataclasses.field(default_factory=list)  # checkpoints past `through`, oldest first
    last_cp: dict | None = None  # the newest checkpoint at or before `through`
    last_full_at: str | None = None


def _take_checkpoints(pos: _Position, checkpoints: list[dict]) -> None:
    """Check checkpoints at or before the verified position now; keep later ones for the walk."""
    for cp in checkpoints:
        if cp["seq"] > pos.through:
            pos.ahead.append(cp)
            continue
        row = AuditEntry.objects.filter(pk=cp["seq"]).values_list("entry_hash", flat=True).first()
        _match_checkpoint(cp, row, None)
        if pos.last_cp is None or cp["seq"] >= pos.last_cp["seq"]:
            pos.last_cp = cp
    pos.ahead.sort(key=lambda cp: cp["seq"])


def _match_checkpoint(cp: dict, head: str | None, count: int | None) -> None:
    seq = cp["seq"]
    if head is None:
        raise _Broken("checkpoint_mismatch", seq, f"entry {seq}, anchored by a checkpoint, is missing")
    if head != cp["head"] or (count is not None and count != cp["count"]):
        raise _Broken(
            "checkpoint_mismatch",
            seq,
            f"entry {seq} differs from its checkpoint (hash {head[:12]}… vs {cp['head'][:12]}…, "
            f"{count if count is not None else '?'} vs {cp['count']} entries up to it): the chain was re-chained",
        )


def _walk(pos: _Position, limit: int | None, batch: int) -> int:
    """Verify entries after `pos.through` in id order (at most `limit`), advancing `pos`."""
    keys: dict[str, bytes] = {}
    rows = AuditEntry.objects.filter(pk__gt=pos.through).order_by("id").values_list(*_WALK_FIELDS)
    checked = 0
    for prev_hash, entry_hash, kid, *row in (rows[:limit] if limit else rows).iterator(chunk_size=batch):
        pk = row[0]
        while pos.ahead and pos.ahead[0]["seq"] < pk:
            _match_checkpoint(pos.ahead[0], None, None)
        if prev_hash != pos.head:
            raise _Broken("link", pk, f"entry {pk} does not follow entry {pos.through or 'genesis'}")
        if kid not in keys:
            try:
                keys[kid] = audit_keys.chain_key(kid)[1]
            except KeyRingError as exc:
                raise _Broken("key", pk, f"entry {pk} is hashed under master key {kid!r}: {exc}") from None
        if not hmac.compare_digest(entry_hash, audit_keys.entry_mac(keys[kid], prev_hash, row)):
            raise _Broken("hash", pk, f"entry {pk} was modified after it was written")
        pos.through, pos.head, pos.count = pk, entry_hash, pos.count + 1
        while pos.ahead and pos.ahead[0]["seq"] == pk:  # the hourly anchor may repeat an unchanged head
            _match_checkpoint(pos.ahead[0], entry_hash, pos.count)
            pos.last_cp = pos.ahead.pop(0)
        checked += 1
    return checked


def _check_end(pos: _Position) -> None:
    """Called when the walk reached the table's end: a checkpoint beyond it means entries were cut."""
    if pos.ahead:
        seq = pos.ahead[-1]["seq"]
        if pos.through == 0:
            raise _Broken("flushed", seq, f"the table is empty but a checkpoint anchors entry {seq}")
        raise _Broken("truncated", seq, f"the table ends at entry {pos.through}, before the checkpoint at {seq}")


# --- verification ---------------------------------------------------------------------------


def verify_chain(*, batch: int = 5000, alert: bool = True) -> ChainReport:
    """Walk the whole table against every checkpoint; the result becomes the verified state.
    A broken chain is logged and (with `alert`) raises the audit_chain alert."""
    pos = _Position()
    checked = 0
    try:
        checkpoints, pos.offset = _read_checkpoints(0)
        _take_checkpoints(pos, checkpoints)
        checked = _walk(pos, None, batch)
        _check_end(pos)
    except _Broken as broken:
        return _finish(_broken_report(broken, pos, checked, "full"), pos, alert=alert)
    pos.last_full_at = timezone.now().isoformat()
    return _finish(_report(pos, checked, "full", 0), pos, alert=alert)


def chain_status(
    *, limit: int | None = None, batch: int = 5000, alert: bool = True, count: bool = False
) -> ChainReport:
    """Cheap check for the audit page and /healthz: from the last verified state, confirm it still
    holds (its head entry, the newest checkpoint; with `count` also how many entries lead up to the
    head: one range count, for the hourly task) and verify what is new, at most
    `limit` entries (settings.AUDIT_INCREMENTAL_MAX_ROWS; 0: all). A recorded break stays reported
    until a full verification passes; a new one raises the alert unless `alert` is False."""
    limit = settings.AUDIT_INCREMENTAL_MAX_ROWS if limit is None else limit
    state = _load_state()
    if state is not None and state.get("broken"):
        return ChainReport(**state["broken"])
    pos = _Position(**state["position"]) if state else _Position()
    unchanged = dataclasses.asdict(pos) if state else None
    checked = 0
    try:
        _confirm(pos, count=count)
        checkpoints, pos.offset = _read_checkpoints(pos.offset)
        _take_checkpoints(pos, checkpoints)
        checked = _walk(pos, limit, batch)
        pending = AuditEntry.objects.filter(pk__gt=pos.through).count() if limit and checked == limit else 0
        if not pending:
            _check_end(pos)
            if not state:  # walked from genesis to the end: that was a full verification
                pos.last_full_at = timezone.now().isoformat()
    except _Broken as broken:
        return _finish(_broken_report(broken, pos, checked, "incremental"), pos, alert=alert)
    report = _report(pos, checked, "incremental", pending)
    if dataclasses.asdict(pos) == unchanged:  # nothing new: no state to write (the /healthz case)
        return report
    return _finish(report, pos, alert=alert)


def _confirm(pos: _Position, *, count: bool) -> None:
    """The verified prefix is still there: its last entry unchanged and (with `count`, one range
    count: the hourly task, not /healthz) nothing deleted before it."""
    if pos.through:
        head = AuditEntry.objects.filter(pk=pos.through).values_list("entry_hash", flat=True).first()
        if head != pos.head:
            what = "is gone" if head is None else "has changed"
            raise _Broken("anchor", pos.through, f"entry {pos.through}, verified earlier, {what}")
        counted = AuditEntry.objects.filter(pk__lte=pos.through).count() if count else pos.count
        if counted != pos.count:
            raise _Broken(
                "anchor", pos.through, f"{counted} entries up to entry {pos.through}, {pos.count} when verified"
            )
    if pos.last_cp is not None:
        row = AuditEntry.objects.filter(pk=pos.last_cp["seq"]).values_list("entry_hash", flat=True).first()
        _match_checkpoint(pos.last_cp, row, None)


def _report(pos: _Position, checked: int, mode: str, pending: int) -> ChainReport:
    return ChainReport(
        ok=True, checked=checked, status="unverified" if pending else "ok", mode=mode,
        verified_through=pos.through, head_hash=pos.head, count=pos.count, pending=pending,
        last_checkpoint_seq=pos.last_cp["seq"] if pos.last_cp else None, last_full_at=pos.last_full_at,
    )  # fmt: skip


def _broken_report(broken: _Broken, pos: _Position, checked: int, mode: str) -> ChainReport:
    report = _report(pos, checked, mode, 0)
    report.ok, report.status = False, "broken"
    report.first_broken_id, report.check, report.reason = broken.entry_id, broken.check, broken.reason
    return report


def _finish(report: ChainReport, pos: _Position, *, alert: bool) -> ChainReport:
    if report.ok:
        _save_state({"position": dataclasses.asdict(pos)})
        return report
    _save_state({"broken": report.as_dict()})
    log.error("audit chain broken (%s): %s", report.check, report.reason)
    if alert:
        audit_chain_broken.send(sender=ChainReport, report=report)
    return report


def chain_checkpoint(report: ChainReport) -> dict | None:
    """The hourly anchor: checkpoint the verified head (nothing when the chain is broken or empty)."""
    if not report.ok or not report.verified_through:
        return None
    kid = AuditEntry.objects.filter(pk=report.verified_through).values_list("hash_kid", flat=True).first()
    if kid is None:
        return None
    return checkpoint_write(seq=report.verified_through, head=report.head_hash, count=report.count, kid=kid)


def chain_check_and_anchor() -> ChainReport:
    """The beat task's work: a full walk when the last one is older than AUDIT_FULL_VERIFY_EVERY_S,
    otherwise the incremental check to the end; then a checkpoint of the head if it holds."""
    state = _load_state()
    last_full = (state or {}).get("position", {}).get("last_full_at")
    age = (timezone.now() - datetime.fromisoformat(last_full)).total_seconds() if last_full else None
    if age is None or age > settings.AUDIT_FULL_VERIFY_EVERY_S:
        report = verify_chain()
    else:
        report = chain_status(limit=0, alert=False, count=True)
        if not report.ok:  # new or known: the alert counts one more hour broken
            audit_chain_broken.send(sender=ChainReport, report=report)
    chain_checkpoint(report)
    return report


# --- the verifier's own state (a cache: losing it costs one walk from the start) -------------


def _load_state() -> dict | None:
    try:
        data = json.loads(_state_path().read_text())
        _, key = audit_keys.checkpoint_key(data["kid"])
        if hmac.compare_digest(data["sig"], audit_keys.sign(key, data["state"])):
            return data["state"]
    except (OSError, ValueError, KeyError, TypeError, KeyRingError):
        pass
    return None


def _save_state(state: dict) -> None:
    path = _state_path()
    try:
        kid, key = audit_keys.checkpoint_key()
        payload = json.dumps({"kid": kid, "state": state, "sig": audit_keys.sign(key, state)}, default=str)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=".audit-state-", delete=False) as handle:
            handle.write(payload)
        os.replace(handle.name, path)  # whole or not at all; concurrent savers: the last one wins
    except (OSError, KeyRingError):
        log.warning("the audit verifier's state could not be saved to %s", path, exc_info=True)


# --- the one sanctioned re-chain (migration 0004) --------------------------------------------


def rechain_for_migration(model, using: str, batch: int = 1000) -> int:
    """Re-hash every entry of `model` (a migration's historical AuditEntry) with the keyed hash, in
    id order, then checkpoint the head after commit. Only migration 0004 calls this."""
    kid, key = audit_keys.chain_key()
    prev_hash, last_id, count = GENESIS_HASH, 0, 0
    while True:
        rows = list(
            model.objects.using(using).filter(pk__gt=last_id).order_by("id").values_list(*CANONICAL_FIELDS)[:batch]
        )
        if not rows:
            break
        updates = []
        for row in rows:
            entry_hash = audit_keys.entry_mac(key, prev_hash, row)
            updates.append(model(pk=row[0], prev_hash=prev_hash, entry_hash=entry_hash, hash_kid=kid))
            prev_hash, last_id = entry_hash, row[0]
        model.objects.using(using).bulk_update(updates, ["prev_hash", "entry_hash", "hash_kid"])
        count += len(rows)
    if count:
        transaction.on_commit(partial(_anchor_rechain, last_id, prev_hash, count, kid), using=using)
    return count


def _anchor_rechain(seq: int, head: str, count: int, kid: str) -> None:
    """After the re-chain commits: its checkpoint, and the verified state it amounts to (so that
    /healthz does not have to walk the whole table once more)."""
    checkpoint_write(seq=seq, head=head, count=count, kid=kid, note="rechain:core.0004")
    pos = _Position(through=seq, head=head, count=count, last_full_at=timezone.now().isoformat())
    _save_state({"position": dataclasses.asdict(pos)})
