"""Row factories of the sign-in lists (tests/list_rows.py's registry uses them)."""

from __future__ import annotations


def _lockouts(w, start, stop):
    """Username and address pairs locked out now (the platform admins' lock-out page)."""
    from axes.models import AccessAttempt
    from django.conf import settings
    from django.utils import timezone

    AccessAttempt.objects.bulk_create(
        AccessAttempt(
            username=f"locked{i}",
            ip_address=f"10.0.{i // 250}.{i % 250}",
            user_agent="test",
            failures_since_start=settings.AXES_FAILURE_LIMIT,
            attempt_time=timezone.now(),
            get_data="",
            post_data="",
            http_accept="",
            path_info="/accounts/login/",
        )  # fmt: skip
        for i in range(start, stop)
    )
