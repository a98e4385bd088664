"""The import's tally (created / skipped / failed per kind, with the failures' reasons) and the
progress hook the command draws a bar with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from django.core.exceptions import ValidationError

from apps.core.errors import DomainError
from apps.mlflow_api.importer.source import ItemError

KINDS = (
    "experiments",
    "runs",
    "params",
    "tags",
    "metrics",
    "metric points",
    "artifacts",
    "models",
    "versions",
    "aliases",
)
OUTCOMES = ("created", "skipped", "failed")
MAX_REASONS = 200
# Errors one item may raise that the summary reports (anything else is a defect and propagates).
ITEM_ERRORS = (
    ItemError,
    ValidationError,
    DomainError,
    OSError,
)  # a summary names at most this many failures (the counts stay exact)


def reason(exc: BaseException) -> str:
    """One line for the summary: Django's field errors flattened, else the message."""
    if isinstance(exc, ValidationError) and hasattr(exc, "message_dict"):
        return "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc) or type(exc).__name__


class Progress(Protocol):
    def start(self, total: int) -> None: ...

    def advance(self, label: str) -> None: ...


class NoProgress:
    def start(self, total: int) -> None:
        return None

    def advance(self, label: str) -> None:
        return None


@dataclass
class ImportSummary:
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {kind: dict.fromkeys(OUTCOMES, 0) for kind in KINDS}
    )
    failures: list[str] = field(default_factory=list)
    dry_run: bool = False

    def add(self, kind: str, outcome: str, n: int = 1) -> None:
        self.counts[kind][outcome] += n

    def fail(self, kind: str, reason: str) -> None:
        self.counts[kind]["failed"] += 1
        if len(self.failures) < MAX_REASONS:
            self.failures.append(f"{kind}: {reason}")

    @property
    def failed(self) -> int:
        return sum(c["failed"] for c in self.counts.values())

    def lines(self) -> list[str]:
        """The table printed at the end: one line per kind that saw anything, then the failures."""
        verb = "would create" if self.dry_run else "created"
        out = [f"{'':14} {verb:>12} {'skipped':>8} {'failed':>7}"]
        for kind, c in self.counts.items():
            if any(c.values()):
                out.append(f"{kind:14} {c['created']:>12,} {c['skipped']:>8,} {c['failed']:>7,}")
        if len(out) == 1:
            out.append("nothing found to import")
        out += [f"failed: {reason}" for reason in self.failures]
        if self.failed > len(self.failures):
            out.append(f"... and {self.failed - len(self.failures)} more failures")
        return out

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "counts": self.counts, "failures": self.failures}
