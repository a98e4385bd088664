"""Queue names: `cpu`, `gpu` and `default`, optionally suffixed with a residency region."""

from __future__ import annotations

import re

RESOURCE_CLASSES = ("cpu", "gpu")
BASE_QUEUES = ("cpu", "gpu", "default")
_REGION_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,40}$")


def validate_region(region: str | None) -> str | None:
    if region in (None, "", "default"):
        return None
    if not _REGION_RE.match(region):
        raise ValueError(f"Region {region!r} must be lower-case letters, digits and dashes (e.g. uae-north).")
    return region


def queue_name(resource_class: str, region: str | None = None) -> str:
    if resource_class not in BASE_QUEUES:
        raise ValueError(f"Resource class {resource_class!r} must be one of: {', '.join(RESOURCE_CLASSES)}.")
    region = validate_region(region)
    return f"{resource_class}.{region}" if region else resource_class


def split_queue(name: str) -> tuple[str, str | None]:
    base, _, region = name.partition(".")
    return base, region or None
