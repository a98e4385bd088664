"""`PortalClient`: the portal's REST API (shared/API.md) in one object, built from one module per area.

transport.py (session, Bearer token, retries, PortalError), tracking.py (experiments and runs),
models.py (catalog), features.py (feature store), training.py (jobs and scripts), serving.py
(predict and promotions). Everything is re-exported here and from `portal_client`.
"""

from __future__ import annotations

from portal_client.features import FeaturesMixin
from portal_client.models import ModelsMixin
from portal_client.serving import PromotionsMixin, ServingMixin
from portal_client.tracking import (
    MAX_LOG_BYTES_PER_CALL,
    MAX_PARAMS_PER_CALL,
    MAX_POINTS_PER_CALL,
    MAX_TAGS_PER_CALL,
    ActiveRun,
    TrackingMixin,
)
from portal_client.training import FINAL_STATES, JobTimeout, TrainingMixin
from portal_client.transport import RETRY_STATUSES, PortalError, Transport, raise_for_status

__all__ = [
    "FINAL_STATES",
    "MAX_LOG_BYTES_PER_CALL",
    "MAX_PARAMS_PER_CALL",
    "MAX_POINTS_PER_CALL",
    "MAX_TAGS_PER_CALL",
    "RETRY_STATUSES",
    "ActiveRun",
    "JobTimeout",
    "PortalClient",
    "PortalError",
    "raise_for_status",
]


class PortalClient(TrackingMixin, ModelsMixin, FeaturesMixin, TrainingMixin, ServingMixin, PromotionsMixin, Transport):
    """`PortalClient(url, token)` (or PORTAL_URL / PORTAL_TOKEN): every call raises PortalError
    with the portal's status and message when it refuses; 429 and brief outages are retried.

    Keyword options: `timeout` (seconds per request, default 30), `retries` (default 3),
    `session` (a `requests.Session` of your own)."""

    def me(self) -> dict:
        """Who the token belongs to: `username, roles, teams, token_scopes`."""
        return self.request("GET", "me")
