"""Keep the garbage collector off the startup heap of long-running processes.

Django, DRF, NumPy, PyArrow and the app modules leave ~275,000 long-lived objects. Python's full
(generation 2) collection walks all of them, and a request that allocates a lot (a 1,000-point
log-batch) triggers one every second or two: measured as 130-160 ms pauses, which were the whole
p99 of the ingest benchmark. `gc.freeze()` moves what exists after start-up into a permanent
generation that collections skip; objects created later are collected as usual.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def settle(*, import_urls: bool = True) -> int:
    """Import what requests need, collect once, then freeze the heap; returns the frozen count."""
    if import_urls:
        from django.urls import get_resolver

        get_resolver().url_patterns  # noqa: B018 - imports every app's URLconf, views and serializers
    gc.collect()
    gc.freeze()
    count = gc.get_freeze_count()
    log.debug("froze %d start-up objects", count)
    return count
