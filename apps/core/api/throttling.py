"""DRF's throttle slot on the portal's per-user rate (apps/core/ratelimit.py).

DRF's own UserRateThrottle keeps each user's request history in the cache: two Redis round trips
and a pickled list of up to N timestamps per request. This one spends requests leased from the
same Redis counters the lean ASGI path uses, so a user has one rate across both paths and every
process, and most requests cost no round trip. Anonymous callers are not counted: PortalPermission
refuses them before throttles run everywhere but the public health checks.
"""

from __future__ import annotations

from rest_framework.throttling import BaseThrottle

from apps.core import ratelimit


class UserRateThrottle(BaseThrottle):
    def allow_request(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return True
        try:
            ratelimit.check(user.pk)
        except ratelimit.Throttled as exc:
            self._wait = exc.wait
            return False
        return True

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)
