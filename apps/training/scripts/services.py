"""Writes for training scripts: register (version 1), upload the next version, change the
description, and platform admins' per-team script-launch grant. Each checks permission, writes in
one transaction and audits with the actor; the file goes into the vault (encrypted) first."""

from __future__ import annotations

import io
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from apps.accounts.models import Team
from apps.core import vault
from apps.core.audit import audit_event
from apps.core.errors import Forbidden, TooLarge
from apps.core.names import check_name
from apps.core.permissions import grant_owner, is_platform_admin, require, team_grant, team_grants
from apps.core.sharing import share_with_team_on_create, team_for_create
from apps.training.models import ScriptVersion, TrainingScript
from apps.training.scripts.archive import Inspected, inspect_upload

NAME_ROUTE_PREFIXES = ("training/scripts/", "api/v1/training/scripts/")
LAUNCH_PERMISSION = "training.launch_trainingscript"
DESCRIPTION_MAX = 5000


def _read_upload(file: Any) -> tuple[bytes, str]:
    """(content, file name) of an uploaded file; `TooLarge` past TRAINING_SCRIPT_MAX_BYTES."""
    if file is None or not hasattr(file, "read"):
        raise ValidationError({"file": ["Attach the script as a multipart file (a .py, .zip or .tar.gz)."]})
    limit = settings.TRAINING_SCRIPT_MAX_BYTES
    size = getattr(file, "size", None)
    if size is not None and size > limit:
        raise TooLarge(f"The file is {size:,} bytes; the limit is {limit:,} bytes (TRAINING_SCRIPT_MAX_BYTES).")
    content = file.read(limit + 1)
    if len(content) > limit:
        raise TooLarge(f"The file is over {limit:,} bytes (TRAINING_SCRIPT_MAX_BYTES).")
    return content, str(getattr(file, "name", "") or "")


def _description(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > DESCRIPTION_MAX:
        raise ValidationError({"description": [f"description is text of at most {DESCRIPTION_MAX} characters."]})
    return value.strip()


def _inspected(file: Any, entry_point: str | None) -> tuple[bytes, str, Inspected]:
    content, filename = _read_upload(file)
    return (
        content,
        filename,
        inspect_upload(content, filename, entry_point, max_bytes=settings.TRAINING_SCRIPT_MAX_BYTES),
    )


def _version_store(
    *, script: TrainingScript, actor, content: bytes, filename: str, inspected: Inspected
) -> ScriptVersion:
    """Encrypt the upload (before any row lock), then record the script's next version under its lock."""
    name, result = vault.blob_write(io.BytesIO(content), purpose="training.script")
    try:
        with transaction.atomic():
            locked = TrainingScript.objects.select_for_update().get(pk=script.pk)
            blob = vault.blob_record(name, result, purpose="training.script")
            version = ScriptVersion.objects.create(
                script=locked, version=locked.latest_version + 1, blob=blob, filename=filename[:255],
                kind=inspected.kind, entry_point=inspected.entry_point, sha256=blob.sha256,
                size=blob.plaintext_size, created_by=actor,
            )  # fmt: skip
            locked.latest_version = version.version
            locked.entry_point = inspected.entry_point
            locked.save(update_fields=["latest_version", "entry_point", "updated_at"])
            audit_event(
                actor=actor, event="trainingscript.upload", obj=locked,
                data={"version": version.version, "digest": version.digest, "size": version.size,
                      "entry_point": version.entry_point},
            )  # fmt: skip
    except BaseException:
        vault.blob_discard(name)
        raise
    script.latest_version, script.entry_point = version.version, version.entry_point
    return version


def script_register(
    *, actor, name: Any, file: Any, entry_point: str | None = None, description: Any = "", team: str | None = None
) -> TrainingScript:
    """Register a script (its owner is `actor`) with its first version.

    `file` is a `.py`, or a `.zip` / `.tar.gz` of a folder whose `entry_point` is the file to run.
    `team`: the script is shared with that team (one of the actor's) as viewers. Raises `Forbidden`
    without the role's add permission, `ValidationError` per bad field, `TooLarge` past the limit."""
    require(actor, "add", TrainingScript)
    check_name(name, route_prefixes=NAME_ROUTE_PREFIXES)
    found_team = team_for_create(actor=actor, slug=team)
    text = _description(description)
    content, filename, inspected = _inspected(file, entry_point)
    with transaction.atomic():
        if TrainingScript.objects.filter(name=name).exists():  # names are unique: saying so reveals nothing
            raise ValidationError({"name": [f"A training script called {name!r} exists; choose another name."]})
        script = TrainingScript.objects.create(
            owner=actor, team=found_team, name=name, description=text, entry_point=inspected.entry_point
        )
        grant_owner(script)
        share_with_team_on_create(script, found_team)
        audit_event(actor=actor, event="trainingscript.register", obj=script, data={"name": name})
        _version_store(script=script, actor=actor, content=content, filename=filename, inspected=inspected)
    return script


def script_version_add(*, script: TrainingScript, actor, file: Any, entry_point: str | None = None) -> ScriptVersion:
    """Upload the script's next version (change rights); `entry_point` defaults to the script's."""
    require(actor, "change", script)
    content, filename, inspected = _inspected(file, entry_point or None)
    if entry_point is None and inspected.kind != "py" and script.entry_point in inspected.members:
        inspected = Inspected(inspected.kind, script.entry_point, inspected.members)
    return _version_store(script=script, actor=actor, content=content, filename=filename, inspected=inspected)


def script_update(*, script: TrainingScript, actor, description: Any = None) -> TrainingScript:
    """Change the description (change rights); versions are immutable."""
    require(actor, "change", script)
    if description is not None:
        script.description = _description(description)
        script.save(update_fields=["description", "updated_at"])
        audit_event(actor=actor, event="trainingscript.update", obj=script, data={"fields": ["description"]})
    return script


def script_launch_grant(*, team: Team, actor, granted: bool = True) -> bool:
    """Give (or take) a team's script-launch permission: its members may launch the scripts they can
    view. Platform admins only (`Forbidden` otherwise); audited. True when it changed."""
    if not is_platform_admin(actor):
        raise Forbidden("Only platform admins grant the script-launch permission.")
    with transaction.atomic():
        changed = team_grant(team, LAUNCH_PERMISSION, granted=granted)
        if changed:
            audit_event(
                actor=actor, event="trainingscript.launch_grant" if granted else "trainingscript.launch_revoke",
                obj=team, data={"team": team.slug, "permission": LAUNCH_PERMISSION},
            )  # fmt: skip
    return changed


def script_launch_granted(team: Team) -> bool:
    """Does the team hold the script-launch permission (for admin pages and commands)?"""
    return team_grants(team, LAUNCH_PERMISSION)
