"""Offline store: validated ingest (JSON, CSV, Parquet), all-or-nothing, statistics, versioning, residency."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from apps.core.models import AuditEntry
from apps.features import filestore, offline, services
from apps.features.models import Partition
from tests.features.conftest import rows


def files(root):
    return sorted(p for p in root.rglob("*") if p.is_file())


def test_json_ingest_writes_date_partitions_and_statistics(view, owner, feature_store):
    result = services.feature_view_ingest(view=view, actor=owner, data=rows())
    view.refresh_from_db()
    assert result["rows"] == 6 and view.row_count == 6
    assert len(result["partitions"]) == 2  # two event dates
    assert all("default/customer-stats/v1/date=2024-05-0" in p for p in result["partitions"])
    assert len(files(feature_store)) == 2 and Partition.objects.filter(view=view).count() == 2
    s = view.statistics
    assert s["balance"]["count"] == 6 and s["balance"]["min"] == 0.0 and s["balance"]["max"] == 201.0
    assert sum(s["balance"]["histogram"]["counts"]) == 6 and "p50" in s["balance"]["quantiles"]
    assert dict(s["segment"]["top"]) == {"silver": 4, "gold": 2}
    table = offline.read_view(view)
    assert table.num_rows == 6 and table.schema.field("event_timestamp").type == pa.timestamp("us", tz="UTC")


def test_csv_and_parquet_ingest(view, owner):
    csv = b"customer_id,event_timestamp,balance,orders,segment,email\n7,2024-05-01T00:00:00Z,1.5,2,gold,a@x\n8,2024-05-01 10:00:00,,3,,\n"
    assert services.feature_view_ingest(view=view, actor=owner, data=csv)["rows"] == 2
    buf = io.BytesIO()
    pq.write_table(pa.table({"customer_id": [9], "event_timestamp": ["2024-05-02T00:00:00+02:00"], "balance": [3],
                             "orders": [1], "segment": ["x"], "email": [None]}), buf)  # fmt: skip
    assert services.feature_view_ingest(view=view, actor=owner, data=buf.getvalue())["rows"] == 1
    table = offline.read_view(view).sort_by("customer_id")
    assert table.column("balance").to_pylist() == [1.5, None, 3.0]
    assert table.column("event_timestamp")[2].as_py().hour == 22  # offset converted to UTC


def test_bad_file_is_refused_whole_with_row_numbers(view, owner, feature_store):
    services.feature_view_ingest(view=view, actor=owner, data=rows(1, 1))
    view.refresh_from_db()
    before = (files(feature_store), Partition.objects.count(), view.statistics)
    bad = rows(2, 2)
    bad[1]["orders"] = "many"
    bad[3]["event_timestamp"] = "yesterday"
    bad[2]["customer_id"] = None
    with pytest.raises(ValidationError) as exc:
        services.feature_view_ingest(view=view, actor=owner, data=bad)
    text = " ".join(exc.value.message_dict["rows"])
    assert (
        "row 2, column orders" in text
        and "row 3, column customer_id" in text
        and "row 4, column event_timestamp" in text
    )
    assert "nothing was written" in exc.value.message_dict["detail"][0]
    view.refresh_from_db()
    assert (files(feature_store), Partition.objects.count(), view.statistics) == before


@pytest.mark.parametrize(
    "data,needle",
    [
        (
            [
                {
                    "customer_id": 1,
                    "event_timestamp": "2024-01-01",
                    "balance": 1,
                    "orders": 1,
                    "segment": "a",
                    "email": "",
                    "color": "red",
                }
            ],
            "column color",
        ),  # fmt: skip
        ([{"customer_id": 1, "event_timestamp": "2024-01-01"}], "column balance: is missing"),
        (b"not,a\nparquet", "row 1, column -: has 1 fields but the header names 2"),
        (b"customer_id,event_timestamp\n1,2024-01-01\n", "column balance: is missing"),
        (b"\xff\xfe\x00garbage", "UTF-8"),
        (b"PAR1 truncated", "Parquet"),
        ([], "no rows"),
        ([1, 2], "row 1"),
        (
            [
                {
                    "customer_id": True,
                    "event_timestamp": "2024-01-01",
                    "balance": "inf",
                    "orders": 1.5,
                    "segment": 3,
                    "email": None,
                }
            ],
            "is a boolean",
        ),  # fmt: skip
    ],
)
def test_invalid_inputs_are_explained(view, owner, data, needle, feature_store):
    with pytest.raises(ValidationError) as exc:
        services.feature_view_ingest(view=view, actor=owner, data=data)
    assert needle in str(exc.value)
    assert files(feature_store) == []


def test_failure_while_writing_leaves_nothing(view, owner, feature_store, monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(filestore.os, "replace", boom)
    with pytest.raises(OSError):
        services.feature_view_ingest(view=view, actor=owner, data=rows())
    assert files(feature_store) == [] and Partition.objects.count() == 0


def test_adding_a_feature_keeps_the_version_and_old_files_read_as_null(ingested, owner):
    features = [*ingested.features, {"name": "score", "dtype": "float64"}]
    view = services.feature_view_update(view=ingested, actor=owner, features=features)
    assert view.version == 1
    assert offline.read_view(view).column("score").null_count == 6


def test_breaking_change_makes_a_new_version(ingested, owner):
    features = [f for f in ingested.features if f["name"] != "segment"]
    view = services.feature_view_update(view=ingested, actor=owner, features=features)
    assert view.version == 2 and view.versions.count() == 2 and view.row_count == 0
    assert offline.read_view(view).num_rows == 0 and offline.read_view(view, version=1).num_rows == 6
    changed = [{**f, "dtype": "string"} if f["name"] == "orders" else f for f in features]
    assert services.feature_view_update(view=view, actor=owner, features=changed).version == 3


def test_residency_refuses_and_audits(view, owner, settings, feature_store):
    settings.PORTAL_REGION = "uae-north"
    with pytest.raises(PermissionDenied, match="region 'default'"):
        services.feature_view_ingest(view=view, actor=owner, data=rows())
    assert files(feature_store) == []
    entry = AuditEntry.objects.filter(additional_data__event="features.residency_denied").get()
    assert entry.additional_data["process_region"] == "uae-north" and entry.actor == owner


def test_only_editors_ingest(view, collaborator):
    from apps.core.permissions import share

    share(view, role="viewer", user=collaborator)
    with pytest.raises(PermissionDenied):
        services.feature_view_ingest(view=view, actor=collaborator, data=rows())
