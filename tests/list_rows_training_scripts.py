"""Row factories of the training-script lists (scripts, a script's versions, its sharing) for
tests/list_rows.py's registry. Registry lines to add there:

    "api-v1:training:script-list": Rows(_scripts, "?page_size=100"),
    "api-v1:training:script-versions": Rows(_script_versions, "?page_size=100", args=lambda w: [_script(w).name]),
    "api-v1:training:script-sharing": Rows(_shares(_script), args=lambda w: [_script(w).name]),
    "training:script-list": Rows(_scripts),
    "training:script-detail": Rows(_script_versions, args=lambda w: [_script(w).name]),
"""

from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile


def _script(w):
    """The world's first script (registered through the service: vault blob, version 1)."""
    from apps.training.scripts.services import script_register

    if not hasattr(w, "script"):
        w.script = script_register(
            actor=w.owner, name="list-costs-script", file=SimpleUploadedFile("train.py", b"print('rows')\n")
        )
    return w.script


def _scripts(w, start, stop):
    """Scripts the owner sees (half shared with the team), each with a version on the first's blob."""
    from apps.core.permissions import grant_owner, share
    from apps.training.models import ScriptVersion, TrainingScript

    first = _script(w).versions.get()
    for i in range(start, stop):
        script = TrainingScript.objects.create(
            owner=w.owner, team=w.team if i % 2 else None, name=f"script-{i}", entry_point="train.py", latest_version=1
        )
        grant_owner(script)
        if i % 2:
            share(script, role="viewer", team=w.team)
        ScriptVersion.objects.create(
            script=script, version=1, blob=first.blob, filename="train.py", kind="py", entry_point="train.py",
            sha256=first.sha256, size=first.size, created_by=w.owner,
        )  # fmt: skip


def _script_versions(w, start, stop):
    """More versions of the world's script (rows of its versions list and its page)."""
    from apps.training.models import ScriptVersion, TrainingScript

    script = _script(w)
    first = script.versions.order_by("version").first()
    latest = TrainingScript.objects.get(pk=script.pk).latest_version
    for offset, _ in enumerate(range(start, stop), start=1):
        ScriptVersion.objects.create(
            script=script, version=latest + offset, blob=first.blob, filename="train.py", kind="py",
            entry_point="train.py", sha256=first.sha256, size=first.size, created_by=w.owner,
        )  # fmt: skip
    TrainingScript.objects.filter(pk=script.pk).update(latest_version=latest + stop - start)
