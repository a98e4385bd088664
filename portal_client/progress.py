"""Progress bars for the `portal` command: one line on stderr, redrawn at most ten times a second,
shown only on a terminal (or when asked with --progress), never on stdout."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 30


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


class Bar:
    """`Bar("upload", enabled)`; `bar.bytes(done, total)` for transfers, `bar.job(job)` for waits."""

    def __init__(self, label: str, enabled: bool, stream: TextIO | None = None):
        self.label, self.enabled = label, enabled
        self.stream = stream or sys.stderr
        self._last = 0.0
        self._drawn = False

    def _draw(self, fraction: float | None, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        if fraction is None:
            bar = ""
        else:
            fraction = max(0.0, min(1.0, fraction))
            filled = int(WIDTH * fraction)
            bar = f"[{'#' * filled}{'.' * (WIDTH - filled)}] {fraction * 100:5.1f}% "
        self.stream.write(f"\r\033[K{self.label} {bar}{text}")
        self.stream.flush()
        self._drawn = True

    def bytes(self, done: int, total: int | None) -> None:
        fraction = done / total if total else None
        text = f"{_size(done)}" + (f" / {_size(total)}" if total else "")
        self._draw(fraction, text, force=bool(total) and done >= total)

    def job(self, job: dict) -> None:
        state = job.get("state", "?")
        eta = job.get("eta_s")
        text = f"{state}" + (f", about {int(eta)} s left" if eta and state == "running" else "")
        self._draw(float(job.get("progress") or 0.0), text, force=state in ("succeeded", "failed", "cancelled"))

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
