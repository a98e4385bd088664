"""Predictions from an endpoint, and promotions (moving a protected alias through approval)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote


class ServingMixin:
    """Mixed into PortalClient, which supplies `request`."""

    def list_endpoints(self) -> list[dict]:
        return self._all_pages("endpoints/", {"page_size": 100})

    def predict(self, endpoint: str, inputs: list | dict, *, key: str | None = None) -> dict:
        """Score `inputs` (rows `[[...], ...]` or columns `{"column": [...]}`) on an endpoint.
        `key` keeps a caller on one route while the weights hold. Returns `{"outputs": {name:
        [one per row]}, "model", "version", "route", "prediction_id"}`."""
        body: dict[str, Any] = {"inputs": inputs}
        if key is not None:
            body["key"] = key
        return self.request("POST", f"endpoints/{quote(endpoint, safe='')}/predict", json=body)

    def send_feedback(self, endpoint: str, prediction_id: str, outcome: Any) -> dict:
        body = {"prediction_id": prediction_id, "outcome": outcome}
        return self.request("POST", f"endpoints/{quote(endpoint, safe='')}/feedback", json=body)


class PromotionsMixin:
    """Mixed into PortalClient, which supplies `request`."""

    def request_promotion(
        self,
        model: str,
        version: int,
        target_alias: str,
        *,
        justification: str,
        change: dict[str, Any] | None = None,
    ) -> dict:
        """Ask to move `target_alias` (a protected alias such as `production`) to `version`. The
        portal runs its checks, then the policy's approvers decide; the alias moves on the last
        approval. `change` is the change record: `{"type": "standard"|"normal"|"emergency", "risk",
        "impact", "rollback_plan", "window_start", "window_end"}`. Returns the request
        (`id`, `state` "checks_running", ...)."""
        body: dict[str, Any] = {
            "model": model,
            "version": int(version),
            "target_alias": target_alias,
            "justification": justification,
        }
        if change:
            body["change"] = change
        return self.request("POST", "promotions/", json=body)

    def get_promotion(self, promotion_id: int) -> dict:
        """`state` (checks_running, checks_failed, awaiting_approval, promoted, rejected, expired,
        withdrawn, rolled_back), `checks`, `decisions`, `approvals_required`, `expires_at`, ..."""
        return self.request("GET", f"promotions/{int(promotion_id)}/")

    def list_promotions(self, *, state: str = "", model: str = "", mine: bool = False) -> list[dict]:
        params: dict[str, Any] = {"page_size": 100}
        if state:
            params["state"] = state
        if model:
            params["model"] = model
        if mine:
            params["requested_by"] = "me"
        return self.request("GET", "promotions/", params=params)["results"]

    def withdraw_promotion(self, promotion_id: int) -> dict:
        return self.request("POST", f"promotions/{int(promotion_id)}/withdraw")
