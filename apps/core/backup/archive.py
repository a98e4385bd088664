"""The backup archive: a plain tar written in one pass, its manifest last.

Each member is streamed into the tar through a reader that hashes it on the way (memory stays at
one chunk whatever the size); ``manifest.json`` comes last and lists every member's path, size and
SHA-256 together with the format version, the creation time, the database vendor and the migration
heads. Reading checks the whole archive against its manifest before anything is restored.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import PurePosixPath
from typing import BinaryIO

from apps.core.backup.stores import BackupError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHUNK = 1 << 20

Progress = Callable[[int], None]


class _HashingReader:
    """Reads through to `src`, hashing and counting the bytes (tarfile pulls it in chunks)."""

    def __init__(self, src: BinaryIO, progress: Progress | None) -> None:
        self.src, self.progress = src, progress
        self.digest, self.size = hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        block = self.src.read(n if n and n > 0 else CHUNK)
        self.digest.update(block)
        self.size += len(block)
        if self.progress and block:
            self.progress(len(block))
        return block


class ArchiveWriter:
    """Adds members to an open tar stream and records them for the manifest."""

    def __init__(self, out: BinaryIO, *, progress: Progress | None = None) -> None:
        self.tar = tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115  closed by close()
        self.progress = progress
        self.members: list[dict] = []

    def add(self, name: str, src: BinaryIO, size: int) -> None:
        """Stream `size` bytes of `src` in as member `name`; a source that is shorter fails loudly."""
        info = tarfile.TarInfo(safe_name(name))
        info.size, info.mtime, info.mode = size, int(time.time()), 0o600
        reader = _HashingReader(src, self.progress)
        self.tar.addfile(info, reader)  # tarfile raises if the source ends before `size` bytes
        self.members.append({"path": info.name, "size": size, "sha256": reader.digest.hexdigest()})

    def close(self, manifest: dict) -> dict:
        manifest = {**manifest, "format_version": FORMAT_VERSION, "members": self.members}
        body = json.dumps(manifest, indent=2, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(body), int(time.time()), 0o600
        self.tar.addfile(info, io.BytesIO(body))
        self.tar.close()
        return manifest


def safe_name(name: str) -> str:
    """A member name that stays inside its destination (no absolute path, no ``..``)."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts or name != path.as_posix():
        raise BackupError(f"{name!r} is not a safe archive member name; this archive was not written by `backup`")
    return name


def read_verified_manifest(path: str, *, progress: Progress | None = None) -> dict:
    """Read the whole archive once and return its manifest if every member matches it.

    Refuses (BackupError naming the member) a truncated archive, a member whose bytes or size differ
    from the manifest, a member the manifest does not list or one it lists that is missing.
    """
    seen: dict[str, tuple[int, str]] = {}
    manifest_bytes = None
    current = "(archive header)"
    try:
        with tarfile.open(path, mode="r|") as tar:
            for info in tar:
                current = info.name
                safe_name(info.name)
                if not info.isfile():
                    raise BackupError(f"{info.name}: not a regular file; this archive was not written by `backup`")
                handle = tar.extractfile(info)
                if info.name == MANIFEST:
                    manifest_bytes = handle.read(16 << 20)
                    continue
                digest, size = hashlib.sha256(), 0
                while block := handle.read(CHUNK):
                    digest.update(block)
                    size += len(block)
                    if progress:
                        progress(len(block))
                seen[info.name] = (size, digest.hexdigest())
            current = "(after the last member)"
    except tarfile.TarError as exc:
        raise BackupError(f"the archive is damaged or truncated at member {current}: {exc}") from None
    except EOFError:
        raise BackupError(f"the archive is truncated in member {current}") from None
    if manifest_bytes is None:
        raise BackupError(f"{MANIFEST} is missing: the archive is truncated or was not written by `backup`")
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError:
        raise BackupError(f"{MANIFEST} is not valid JSON: the archive is damaged") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            f"archive format {manifest.get('format_version')!r} is not {FORMAT_VERSION}: use the portal version that wrote it"
        )
    _compare(manifest, seen)
    return manifest


def _compare(manifest: dict, seen: dict[str, tuple[int, str]]) -> None:
    listed = {m["path"]: (m["size"], m["sha256"]) for m in manifest.get("members", [])}
    for name, (size, digest) in seen.items():
        if name not in listed:
            raise BackupError(f"{name}: in the archive but not in its manifest (tampered archive)")
        if listed[name][0] != size:
            raise BackupError(
                f"{name}: {size} bytes in the archive, {listed[name][0]} in the manifest (tampered or truncated)"
            )
        if listed[name][1] != digest:
            raise BackupError(f"{name}: SHA-256 does not match the manifest (tampered or corrupted)")
    for name in listed:
        if name not in seen:
            raise BackupError(f"{name}: listed in the manifest but missing from the archive (truncated)")


def members(path: str) -> Iterator[tuple[tarfile.TarInfo, BinaryIO]]:
    """Every member but the manifest with a reader for its bytes (a second pass, after verification)."""
    with tarfile.open(path, mode="r|") as tar:
        for info in tar:
            if info.name != MANIFEST:
                yield info, tar.extractfile(info)
