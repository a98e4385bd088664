"""Permission-aware reads of training scripts and their versions (every read starts from `restrict`)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core.errors import NotFound
from apps.core.permissions import Action, require, restrict
from apps.training.models import ScriptVersion, TrainingScript


def scripts_visible(user, filters: dict | None = None) -> QuerySet[TrainingScript]:
    """The scripts `user` may view, by name, with their owner and team (one query)."""
    return restrict(user, "view", TrainingScript.objects.select_related("owner", "team")).order_by("name", "pk")


def script_for(user, name: str, action: Action | str = "view") -> TrainingScript:
    """One script by name: `NotFound` when invisible, `Forbidden` when visible but `action` is not allowed
    (`launch` needs the script-launch grant of one of the user's teams)."""
    script = (
        restrict(user, "view", TrainingScript.objects.select_related("owner", "team"))
        .filter(name=name if isinstance(name, str) else "")
        .first()
    )
    if script is None:
        raise NotFound("No training script matches the given query.")
    require(user, action, script)
    return script


def versions_of(script: TrainingScript) -> QuerySet[ScriptVersion]:
    """A script's versions, newest first, with their uploader (for a script already fetched with `_for`)."""
    return script.versions.select_related("created_by", "blob").order_by("-version", "-pk")


def version_of(script: TrainingScript, version: int | None) -> ScriptVersion:
    """Version `version` of the script (None: its latest); `NotFound` otherwise."""
    number = script.latest_version if version is None else version
    found = versions_of(script).filter(version=number).first() if isinstance(number, int) else None
    if found is None:
        raise NotFound(f"Training script {script.name!r} has no version {version}.")
    return found
