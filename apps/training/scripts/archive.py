"""Training-script uploads: what a `.py` file or an archive of a folder (`.zip`, `.tar.gz`) may
hold, and unpacking it safely into a job's working folder.

Checked at upload (so a bad archive is a 400 naming the problem, never a failed job) and again
when unpacking (the worker trusts nothing it reads back): relative member paths only (no
absolute path, no `..`, no links or devices), a bounded number of members and unpacked size, and
an entry point that is a `.py` file among them. No Django here besides the settings' limits.
"""

from __future__ import annotations

import io
import posixpath
import re
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError

MAX_MEMBERS = 10_000
_ENTRY_RE = re.compile(r"^[A-Za-z0-9_.\-/]{1,255}$")


@dataclass(frozen=True)
class Inspected:
    """What an upload is: its kind (py, zip, tar.gz), the entry point to run, its member files."""

    kind: str
    entry_point: str
    members: tuple[str, ...]


def kind_of(filename: str) -> str:
    """The upload's kind from its file name; a field error for anything else."""
    lower = (filename or "").lower()
    if lower.endswith(".py"):
        return "py"
    if lower.endswith(".zip"):
        return "zip"
    if lower.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    raise ValidationError({"file": ["Upload a .py file, or a folder as a .zip or .tar.gz archive."]})


def clean_member(name: str) -> str:
    """A member path as stored: relative, forward slashes, no `.` parts; ValueError when unsafe."""
    if not name or "\x00" in name or "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise ValueError(name)
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or any(part == ".." for part in parts):
        raise ValueError(name)
    return "/".join(parts)


def clean_entry_point(entry_point: str | None) -> str | None:
    """The entry point as a safe relative `.py` path, None when not given; a field error otherwise."""
    if entry_point in (None, ""):
        return None
    try:
        cleaned = clean_member(entry_point) if isinstance(entry_point, str) else None
    except ValueError:
        cleaned = None
    if cleaned is None or not _ENTRY_RE.match(cleaned) or not cleaned.endswith(".py"):
        raise ValidationError(
            {"entry_point": ["entry_point is a relative path to a .py file in the upload, e.g. train.py."]}
        )
    return cleaned


def inspect_upload(content: bytes, filename: str, entry_point: str | None, *, max_bytes: int) -> Inspected:
    """Validate an upload; `ValidationError` on `file` or `entry_point` naming what is wrong."""
    kind = kind_of(filename)
    entry = clean_entry_point(entry_point)
    if not content:
        raise ValidationError({"file": ["The file is empty."]})
    if kind == "py":
        base = posixpath.basename(filename.replace("\\", "/"))
        own = clean_entry_point(base if _ENTRY_RE.match(base) else "script.py")
        if entry is not None and entry != own:
            raise ValidationError(
                {"entry_point": [f"A single .py file runs itself: leave entry_point empty or {own!r}."]}
            )
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError({"file": ["A .py file must be UTF-8 text."]}) from None
        return Inspected("py", own, (own,))
    members = _members(content, kind, max_bytes)
    if entry is None:
        top = [m for m in members if m.endswith(".py") and "/" not in m]
        if len(top) != 1:
            raise ValidationError({"entry_point": ["Name the file to run (entry_point), e.g. train.py."]})
        entry = top[0]
    if entry not in members:
        raise ValidationError({"entry_point": [f"{entry!r} is not a file in the archive."]})
    return Inspected(kind, entry, tuple(members))


def _members(content: bytes, kind: str, max_bytes: int) -> list[str]:
    """The archive's regular files (checked); a `file` error for anything unsafe or too large."""
    try:
        entries = list(_entries(content, kind))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError):
        raise ValidationError({"file": [f"The file is not a readable {kind} archive."]}) from None
    if len(entries) > MAX_MEMBERS:
        raise ValidationError({"file": [f"The archive holds more than {MAX_MEMBERS} entries."]})
    files, total = [], 0
    for name, size, regular, is_dir in entries:
        try:
            cleaned = clean_member(name)
        except ValueError:
            raise ValidationError(
                {"file": [f"Unsafe path in the archive: {name!r} (absolute or with '..')."]}
            ) from None
        if is_dir:
            continue
        if not regular:
            raise ValidationError({"file": [f"{name!r} is a link or a special file; archives hold files only."]})
        total += size
        if total > max_bytes:
            raise ValidationError({"file": [f"The archive unpacks to more than {max_bytes:,} bytes."]})
        files.append(cleaned)
    if not files:
        raise ValidationError({"file": ["The archive holds no files."]})
    return files


def _entries(content: bytes, kind: str):
    """(name, size, is a regular file, is a directory) per member."""
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            for info in archive.infolist():
                mode = (info.external_attr >> 16) & 0o170000
                link = mode == 0o120000
                yield info.filename, info.file_size, not info.is_dir() and not link, info.is_dir()
        return
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
        for member in archive.getmembers():
            yield member.name, member.size, member.isfile(), member.isdir()


def unpack(content: bytes, kind: str, entry_point: str, dest: Path, *, max_bytes: int) -> Path:
    """Write the upload's files under `dest` (checked again) and return the entry point's path."""
    dest = dest.resolve()
    if kind == "py":
        target = dest / clean_member(entry_point)
        target.write_bytes(content)
        return target
    allowed = set(_members(content, kind, max_bytes))
    if kind == "zip":
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            for info in archive.infolist():
                name = clean_member(info.filename)
                if name in allowed:
                    _write(dest, name, archive.read(info))
    else:
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:gz") as archive:
            for member in archive.getmembers():
                name = clean_member(member.name)
                handle = archive.extractfile(member) if member.isfile() and name in allowed else None
                if handle is not None:
                    _write(dest, name, handle.read())
    return dest / entry_point


def _write(dest: Path, name: str, data: bytes) -> None:
    target = (dest / name).resolve()
    if dest not in target.parents:  # clean_member already refused this; kept as the last word
        raise ValueError(f"unsafe archive member {name!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
