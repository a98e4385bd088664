"""The model catalog: registered models, versions (ONNX uploads and downloads) and aliases."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from portal_client.transport import PortalError, Progress


def _name(name: str) -> str:
    return quote(str(name), safe="")


class ModelsMixin:
    """Mixed into PortalClient, which supplies `request`, `upload` and `download`."""

    def list_models(self, *, q: str = "", tag: str = "", page_size: int = 100, archived: bool = False) -> list[dict]:
        """Every model you may view (all pages), optionally filtered by text or tag."""
        params: dict[str, Any] = {"page_size": page_size}
        if q:
            params["q"] = q
        if tag:
            params["tag"] = tag
        if archived:
            params["archived"] = "true"
        return self._all_pages("models/", params)

    def get_model(self, name: str) -> dict:
        return self.request("GET", f"models/{_name(name)}/")

    def create_model(
        self, name: str, *, description: str = "", tags: list[str] | None = None, team: str | None = None
    ) -> dict:
        body = {"name": name, "description": description, "tags": list(tags or []), "team": team}
        return self.request("POST", "models/", json=body)

    def list_versions(self, name: str, *, page_size: int = 100) -> list[dict]:
        return self._all_pages(f"models/{_name(name)}/versions/", {"page_size": page_size})

    def get_version(self, name: str, version: int) -> dict:
        return self.request("GET", f"models/{_name(name)}/versions/{int(version)}/")

    def register_model(
        self,
        name: str,
        onnx_path: str | os.PathLike,
        *,
        description: str = "",
        metrics: dict[str, float] | None = None,
        tags: list[str] | None = None,
        lineage: dict[str, Any] | None = None,
        state_dict_path: str | os.PathLike | None = None,
        create: bool = True,
        team: str | None = None,
        progress: Progress | None = None,
    ) -> dict:
        """Upload an ONNX file as the next version of model `name` (created first when missing and
        `create` is true). The file streams from disk; `progress(sent, total)` follows the bytes.
        Returns the new version (`version`, `signature`, `artifact {sha256, size}`, ...)."""
        if create:
            try:
                self.get_model(name)
            except PortalError as error:
                if error.status != 404:
                    raise
                self.create_model(name, description="", team=team)
        files = {"artifact": onnx_path}
        if state_dict_path is not None:
            files["state_dict"] = state_dict_path
        fields = {
            "description": description,
            "metrics": metrics or {},
            "tags": list(tags or []),
            "lineage": lineage or {},
        }
        return self.upload("POST", f"models/{_name(name)}/versions/", fields=fields, files=files, progress=progress)

    def download_version(
        self,
        name: str,
        version: int,
        destination: str | os.PathLike,
        *,
        which: str = "artifact",
        progress: Progress | None = None,
    ) -> dict:
        """Save a version's ONNX file (`which="artifact"`) or its weights (`"state-dict"`) to
        `destination`, streamed, checked against the portal's `X-Content-SHA256` (a mismatch raises
        PortalError and leaves no file). Returns `{"path", "size", "sha256"}`."""
        if which not in ("artifact", "state-dict"):
            raise ValueError('which is "artifact" or "state-dict".')
        path = f"models/{_name(name)}/versions/{int(version)}/{which}"
        result = self.download(path, destination, progress=progress)
        result.pop("headers", None)
        return result

    def list_aliases(self, name: str) -> list[dict]:
        return self._all_pages(f"models/{_name(name)}/aliases/", {"page_size": 100})

    def get_alias(self, name: str, alias: str) -> dict:
        """`{"alias", "version", "protected", "moved_by", "moved_at", "promotion_ref", ...}`"""
        return self.request("GET", f"models/{_name(name)}/aliases/{_name(alias)}")

    def set_alias(self, name: str, alias: str, version: int, *, protected: bool | None = None) -> dict:
        """Point `alias` at `version` (creating it). A protected alias is refused with 409: move it
        through a promotion (`request_promotion`)."""
        body: dict[str, Any] = {"version": int(version)}
        if protected is not None:
            body["protected"] = protected
        return self.request("PUT", f"models/{_name(name)}/aliases/{_name(alias)}", json=body)

    def protect_alias(self, name: str, alias: str, protected: bool = True) -> dict:
        """Protect an alias (editors) so that it moves only through a promotion; lifting the
        protection is for platform admins (403 otherwise)."""
        return self.request("PATCH", f"models/{_name(name)}/aliases/{_name(alias)}", json={"protected": protected})

    def delete_alias(self, name: str, alias: str) -> None:
        self.request("DELETE", f"models/{_name(name)}/aliases/{_name(alias)}")
