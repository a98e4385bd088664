"""Files replaced whole or not at all: written to a temporary file beside the target, fsync'd, then
renamed over it (the vault's key ring, restored database files, vault objects and key rings)."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO


def atomic_write(
    target: Path, src: BinaryIO, *, mode: int = 0o600, prefix: str = ".tmp-", chunk: int = 1 << 20
) -> None:
    """Copy `src` into `target` through a temporary file (`prefix`...) beside it, fsync'd, then renamed."""
    fd, tmp = tempfile.mkstemp(prefix=prefix, dir=target.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            while block := src.read(chunk):
                out.write(block)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_private(target: Path, data: bytes, *, prefix: str = ".tmp-") -> None:
    """Write a secret file (a key ring) readable only by this user, replacing any previous one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, io.BytesIO(data), mode=0o600, prefix=prefix)
