"""A script job's data: a feature-store training set is mounted as a Parquet file (PII masked as
for its owner, digest recorded), and the script's working folder holds the unpacked version."""

from __future__ import annotations

import hashlib

import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.features import training_sets
from apps.features.training_sets import MASK
from apps.training.scripts.launch import script_job_launch
from apps.training.scripts.services import script_launch_grant, script_register
from apps.training.scripts.workspace import workspace_prepare
from tests.conftest import share_as
from tests.features.conftest import customer, feature_store, ingested, view  # noqa: F401 (fixtures)
from tests.training.test_scripts_api import zip_file

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("ingested")]


def test_training_set_is_mounted_as_parquet_beside_the_unpacked_folder(owner, team, admin_user, sent_tasks, tmp_path):
    ts = training_sets.training_set_create(
        actor=owner, name="churn-rows", features=["customer-stats:balance", "customer-stats:email"],
        entity_rows=[{"customer_id": k, "event_timestamp": "2024-06-01"} for k in range(3)],
    )  # fmt: skip
    project = zip_file({"project/train.py": b"print(1)\n", "project/lib/util.py": b"X = 1\n"})
    script_register(actor=owner, name="folder", file=project, entry_point="project/train.py")
    script_launch_grant(team=team, actor=admin_user)
    owner = type(owner).objects.get(pk=owner.pk)  # a fresh instance: Django caches permissions per instance
    job = script_job_launch(actor=owner, script="folder", data={"training_set": ts.pk})
    assert job.data == {"training_set": ts.pk} and job.training_set == ts
    space = workspace_prepare(job, tmp_path)
    assert space.entry == tmp_path / "project" / "train.py" and (tmp_path / "project/lib/util.py").read_text() == (
        "X = 1\n"
    )
    assert space.outputs.is_dir() and space.data_path.suffix == ".parquet"
    table = pq.read_table(space.data_path)
    assert (
        table.num_rows == 3
        and {"customer_id", "customer-stats__balance"} <= set(table.column_names)
        or ({"customer_id", "balance"} <= set(table.column_names))
    )
    assert space.data_digest == f"sha256:{hashlib.sha256(space.data_path.read_bytes()).hexdigest()}"
    email = next(c for c in table.column_names if "email" in c)
    assert "@example.com" in table.column(email)[0].as_py()  # the owner (a data steward) sees PII


def test_pii_reaches_a_script_masked_for_a_launcher_without_pii_access(owner, collaborator, team, admin_user, tmp_path):
    ts = training_sets.training_set_create(
        actor=owner, name="pii-rows", features=["customer-stats:email"],
        entity_rows=[{"customer_id": 1, "event_timestamp": "2024-06-01"}],
    )  # fmt: skip
    share_as(ts, collaborator)
    script_register(actor=collaborator, name="theirs", file=SimpleUploadedFile("train.py", b"print(1)\n"))
    script_launch_grant(team=team, actor=admin_user)
    collaborator = type(collaborator).objects.get(pk=collaborator.pk)
    job = script_job_launch(actor=collaborator, script="theirs", data={"training_set": ts.pk})
    table = pq.read_table(workspace_prepare(job, tmp_path).data_path)
    email = next(c for c in table.column_names if "email" in c)
    assert table.column(email).to_pylist() == [MASK]


def test_script_data_refuses_a_training_set_the_actor_cannot_view(owner, stranger):
    ts = training_sets.training_set_create(
        actor=owner, name="private-rows", features=["customer-stats:balance"],
        entity_rows=[{"customer_id": 1, "event_timestamp": "2024-06-01"}],
    )  # fmt: skip
    script_register(actor=owner, name="mine", file=SimpleUploadedFile("train.py", b"print(1)\n"))
    from django.core.exceptions import ValidationError

    from apps.training.scripts.launch import clean_script_data

    with pytest.raises(ValidationError, match="No training set"):
        clean_script_data({"training_set": ts.pk}, actor=stranger)
    spec, found, region = clean_script_data({"training_set": ts.pk}, actor=owner)
    assert spec == {"training_set": ts.pk} and found == ts and region == ts.region
