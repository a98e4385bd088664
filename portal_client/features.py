"""The feature store: online reads, training sets (built point-in-time correct) and their rows."""

from __future__ import annotations

import importlib.util
import io
import json
import os
from typing import Any

from portal_client.transport import Progress

FORMATS = ("parquet", "csv", "json")


class FeaturesMixin:
    """Mixed into PortalClient, which supplies `request`, `upload` and `download`."""

    def online_features(self, features: list[str], entities: dict[str, list]) -> dict:
        """Latest values from the online store: `features` as `"view:feature"`, `entities` as
        `{"customer_id": [1, 2]}`. Returns `{"results": {feature: {"values", "statuses"}},
        "event_timestamps", "masked"}` (values in entity order; PII masked unless you may see it)."""
        return self.request("POST", "features/online", json={"features": list(features), "entities": entities})

    def build_training_set(
        self,
        name: str,
        features: list[str],
        *,
        entity_rows: list[dict] | None = None,
        entity_table: str | os.PathLike | None = None,
        team: str | None = None,
        progress: Progress | None = None,
    ) -> dict:
        """A point-in-time-correct join of `features` onto your entity rows (join keys,
        `event_timestamp` and labels): give them as `entity_rows` (dicts) or an `entity_table` file
        (CSV or Parquet, uploaded). Returns the training set (`id, row_count, columns, digest, ...`)."""
        if (entity_rows is None) == (entity_table is None):
            raise ValueError("Give entity_rows or entity_table, one of them.")
        if entity_rows is not None:
            body: dict[str, Any] = {"name": name, "features": list(features), "entity_rows": entity_rows}
            if team:
                body["team"] = team
            return self.request("POST", "training-sets/", json=body)
        fields = {"name": name, "features": ",".join(features), "team": team or None}  # multipart: comma-separated
        return self.upload(
            "POST", "training-sets/", fields=fields, files={"entity_table": entity_table}, progress=progress
        )

    def get_training_set(self, training_set_id: int) -> dict:
        return self.request("GET", f"training-sets/{int(training_set_id)}/")

    def list_training_sets(self) -> list[dict]:
        return self._all_pages("training-sets/", {"page_size": 100})

    def download_training_set(
        self,
        training_set_id: int,
        destination: str | os.PathLike,
        *,
        format: str = "parquet",
        progress: Progress | None = None,
    ) -> dict:
        """Save a training set's rows to a file (`parquet`, `csv` or `json`). Returns `{"path",
        "size", "sha256", "masked_columns"}`; masked PII columns hold `***`."""
        if format not in FORMATS:
            raise ValueError(f"format is one of {', '.join(FORMATS)}.")
        result = self.download(
            f"training-sets/{int(training_set_id)}/data", destination, params={"format": format}, progress=progress
        )
        masked = [c for c in result.pop("headers").get("X-Masked-Columns", "").split(",") if c]
        return {**result, "masked_columns": masked}

    def training_set_rows(self, training_set_id: int) -> list[dict]:
        """The rows as a list of dicts (no optional dependency needed)."""
        buffer = io.BytesIO()
        self.download(f"training-sets/{int(training_set_id)}/data", buffer, params={"format": "json"})
        return json.loads(buffer.getvalue() or b"[]")

    def training_set_data(self, training_set_id: int, *, as_: str = "arrow"):
        """The rows of a training set as a pyarrow Table (``as_="arrow"``), a pandas DataFrame
        (``as_="pandas"``; both need pyarrow) or a list of dicts (``as_="rows"``).

        The portal checks the stored file's digest before sending any of it and masks PII columns
        (``***``) unless you may see the feature view's PII; their names are in the table's schema
        metadata (``b"portal.masked_columns"``) or the DataFrame's ``attrs["masked_columns"]``."""
        if as_ not in ("arrow", "pandas", "rows"):
            raise ValueError('as_ is "arrow", "pandas" or "rows".')
        if as_ == "rows":
            return self.training_set_rows(training_set_id)
        if importlib.util.find_spec("pyarrow") is None:
            raise ImportError('as_="arrow" and as_="pandas" need pyarrow: pip install pyarrow (or use as_="rows").')
        import pyarrow.parquet as pq  # optional dependency: only this call needs it

        if as_ == "pandas" and importlib.util.find_spec("pandas") is None:
            raise ImportError('as_="pandas" needs pandas: pip install pandas (or use as_="arrow").')

        buffer = io.BytesIO()
        result = self.download(f"training-sets/{int(training_set_id)}/data", buffer, params={"format": "parquet"})
        masked = [c for c in result["headers"].get("X-Masked-Columns", "").split(",") if c]
        buffer.seek(0)
        table = pq.read_table(buffer)
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), b"portal.masked_columns": ",".join(masked)}
        )
        if as_ == "arrow":
            return table
        frame = table.to_pandas()
        frame.attrs["masked_columns"] = masked
        return frame
