"""Entry point for the server and worker processes the test suite starts over the test database.

    python -m tests.child_process celery -A portal worker ...
    python -m tests.child_process uvicorn portal.asgi:application ...

Transactional tests flush the shared test database, which gives content types new ids; a child
process must never trust a cached id, so it clears Django's content-type cache and the caller
cache (apps/accounts/principals.py: a flush reuses user ids) before each request and each task. This is the test suite's concern, so it lives here and not in apps/.
"""

from __future__ import annotations

import os
import sys


def _clear_content_type_cache(**_kwargs) -> None:
    from django.contrib.contenttypes.models import ContentType

    from apps.accounts import principals
    from apps.core import permissions

    ContentType.objects.clear_cache()
    permissions.clear_caches()
    if os.environ.get("PORTAL_TEST_KEEP_CALLER_CACHE") != "1":  # a test of cross-process invalidation
        principals.CACHE.clear()  # user ids come back after a flush too


def main() -> None:
    from celery.signals import task_prerun
    from django.core.signals import request_started

    request_started.connect(_clear_content_type_cache, dispatch_uid="test-clear-ct-request")
    task_prerun.connect(_clear_content_type_cache, dispatch_uid="test-clear-ct-task")
    program, *args = sys.argv[1:]
    sys.argv = [program, *args]
    if program == "celery":
        from celery.__main__ import main as celery_main

        celery_main()
    elif program == "uvicorn":
        from uvicorn.main import main as uvicorn_main

        uvicorn_main()
    else:
        raise SystemExit(f"tests.child_process runs celery or uvicorn, not {program!r}")


if __name__ == "__main__":
    main()
