"""`backup` and `restore` end to end, in child processes with their own var dirs (issue 20).

Each installation is a fresh PORTAL_VAR_DIR (SQLite, embedded key ring) or, in the services mode,
a scratch PostgreSQL database created and dropped here; the test Redis is shared.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from apps.core.backup import BackupError, archive, backup_restore
from tests.conftest import ROOT
from tests.s3 import s3_buckets, s3_server  # noqa: F401  fixtures

pytestmark = pytest.mark.slow

MARKER = b"backup-round-trip-marker:"
FEATURE_FILE = "default/churn/v1/date=2024-01-01/part-0.parquet"
# Settings that would point a child at the test run's own state instead of its fresh one.
INHERITED = ("DATABASE_URL", "PORTAL_SQLITE_PATH", "VAULT_KEYRING", "VAULT_KEYRING_FILE", "VAULT_ROOT",
             "FEATURE_STORE_ROOT", "AUDIT_CHECKPOINT_PATH", "VAULT_S3_BUCKET", "FEATURE_STORE_S3_BUCKET")  # fmt: skip

CREATE = f"""
import io
from pathlib import Path
from django.conf import settings
from django.contrib.auth import get_user_model
from apps.core import vault
get_user_model().objects.create_user("alice", email="alice@example.com", password="correct-horse-battery-staple")  # pragma: allowlist secret
blob = vault.blob_store(io.BytesIO({MARKER!r} * 4096), purpose="test.backup")
path = Path(settings.FEATURE_STORE_ROOT) / {FEATURE_FILE!r}
path.parent.mkdir(parents=True, exist_ok=True)
path.write_bytes(b"PAR1 feature rows PAR1")
from apps.core.audit_chain import chain_check_and_anchor
assert chain_check_and_anchor().ok and Path(settings.AUDIT_CHECKPOINT_PATH).is_file()
"""  # pragma: allowlist secret

CHECK = f"""
import json
from pathlib import Path
from django.conf import settings
from django.contrib.auth import get_user_model
from apps.core import vault
from apps.core.audit_chain import verify_chain
from apps.core.models import AuditEntry, VaultBlob
blob = VaultBlob.objects.get(purpose="test.backup")
alice = get_user_model().objects.get(username="alice")
print(json.dumps({{
    "alice_password_ok": alice.check_password("correct-horse-battery-staple"),
    "blob_ok": vault.blob_read(blob) == {MARKER!r} * 4096,
    "feature": (Path(settings.FEATURE_STORE_ROOT) / {FEATURE_FILE!r}).read_bytes().decode(),
    "checkpoints": Path(settings.AUDIT_CHECKPOINT_PATH).read_text().count("\\n"),
    "chain": verify_chain(alert=False).as_dict(),
    "events": sorted({{(e.additional_data or {{}}).get("event") for e in AuditEntry.objects.all()}} - {{None}}),
}}))
"""  # pragma: allowlist secret


def _state(installation: Installation) -> dict:
    return json.loads(installation.manage("shell", "-c", CHECK).stdout.strip().splitlines()[-1])


class Installation:
    """One portal installation driven through manage.py in child processes."""

    def __init__(self, var_dir: Path, database_url: str | None = None) -> None:
        self.var_dir = var_dir
        env = {k: v for k, v in os.environ.items() if k not in INHERITED}
        env.update(PORTAL_VAR_DIR=str(var_dir), PORTAL_2FA_ENFORCED="false", PYTHONUNBUFFERED="1")
        if database_url:
            env["DATABASE_URL"] = database_url
        self.env = env

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(  # noqa: S603  the test's own interpreter and manage.py
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=180
        )
        if check and result.returncode != 0:
            raise AssertionError(f"manage.py {args[0]} failed:\n{result.stdout}\n{result.stderr[-4000:]}")
        return result


class ScratchDatabases:
    """PostgreSQL databases beside the test database (services mode), dropped at the end."""

    def __init__(self) -> None:
        import psycopg
        from django.db import connection

        db = connection.settings_dict
        self.base = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
        self.admin = psycopg.connect(f"{self.base}/postgres", autocommit=True, password=db.get("PASSWORD") or None)
        self.names: list[str] = []

    def create(self) -> str:
        name = f"backup_{uuid.uuid4().hex[:12]}"
        self.admin.execute(f'CREATE DATABASE "{name}"')
        self.names.append(name)
        return f"{self.base}/{name}"

    def drop_all(self) -> None:
        for name in self.names:
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.admin.close()


MODES = ["sqlite"] + (["postgresql"] if os.environ.get("DATABASE_URL", "").startswith("postgres") else [])


@pytest.fixture(scope="module", params=MODES)
def backed_up(request, tmp_path_factory, django_db_blocker):
    """A source installation with a user, a vault blob and a feature file, and its backup."""
    scratch = None
    if request.param == "postgresql":
        with django_db_blocker.unblock():
            scratch = ScratchDatabases()
    source = Installation(tmp_path_factory.mktemp("source"), scratch.create() if scratch else None)
    source.manage("migrate", "-v0")
    source.manage("shell", "-c", CREATE)
    out = tmp_path_factory.mktemp("archive")
    result = source.manage(
        "backup", "--out", str(out / "portal.tar"), "--keyring-out", str(out / "ring"), "--no-progress"
    )
    yield {"source": source, "archive": out / "portal.tar", "ring": out / "ring", "summary": result.stdout,
           "scratch": scratch}  # fmt: skip
    if scratch is not None:
        scratch.drop_all()


@pytest.fixture
def target(backed_up, tmp_path) -> Installation:
    """A fresh installation to restore into: a new var dir (and a new empty PostgreSQL database)."""
    scratch = backed_up["scratch"]
    return Installation(tmp_path / "target", scratch.create() if scratch else None)


def test_round_trip_restores_users_blobs_feature_files_and_key_ring(backed_up, target):
    result = target.manage("restore", str(backed_up["archive"]), "--keyring", str(backed_up["ring"]), "--no-progress")
    assert "1 blob(s), 0 missing; 1 decrypted and verified, 0 failed" in result.stdout
    state = _state(target)
    assert state["alice_password_ok"] and state["blob_ok"]
    assert state["feature"] == "PAR1 feature rows PAR1"
    assert "backup.restore" in state["events"]  # written into the restored database
    # The audit trail verifies under the restored key ring, against the restored checkpoints.
    assert state["checkpoints"] >= 1 and state["chain"]["ok"], state["chain"]
    assert "backup.create" in _state(backed_up["source"])["events"]
    assert (target.var_dir / "vault-keyring").read_text() == backed_up["ring"].read_text()


def test_key_ring_is_written_apart_with_mode_0600_and_never_into_the_archive(backed_up):
    ring = backed_up["ring"]
    assert ring.stat().st_mode & 0o777 == 0o600
    keys = [entry.split(":", 1)[1] for entry in ring.read_text().strip().split(",")]
    data = backed_up["archive"].read_bytes()
    assert keys and not any(key.encode() in data for key in keys)
    with tarfile.open(backed_up["archive"]) as tar:
        names = tar.getnames()
    assert names[-1] == archive.MANIFEST and not any("keyring" in name for name in names)
    assert any(name.startswith("vault/local/") for name in names)
    assert f"features/local/{FEATURE_FILE}" in names


def test_restore_without_the_key_ring_reports_blobs_that_do_not_decrypt(backed_up, target):
    result = target.manage("restore", str(backed_up["archive"]), "--no-progress", check=False)
    assert result.returncode == 1
    assert "1 failed" in result.stdout and "not in the key ring" in result.stderr


def test_tampered_archive_is_refused_naming_the_member_before_anything_changes(backed_up, target, tmp_path):
    tampered = tmp_path / "tampered.tar"
    tampered.write_bytes(backed_up["archive"].read_bytes())
    with tarfile.open(tampered) as tar:
        member = next(m for m in tar.getmembers() if m.name.startswith("vault/"))
    with tampered.open("r+b") as handle:
        handle.seek(member.offset_data + member.size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0x01]))
    result = target.manage("restore", str(tampered), "--keyring", str(backed_up["ring"]), check=False)
    assert result.returncode == 1
    assert f"{member.name}: SHA-256 does not match the manifest" in result.stderr
    assert not (target.var_dir / "vault").exists()  # nothing was written


def test_restore_into_an_installation_that_holds_data_needs_force(backed_up):
    result = backed_up["source"].manage("restore", str(backed_up["archive"]), "--no-progress", check=False)
    assert result.returncode == 1
    assert "already holds users or artifacts" in result.stderr and "--force" in result.stderr


def test_truncated_archive_is_refused(backed_up, tmp_path):
    data = backed_up["archive"].read_bytes()
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(BackupError, match="truncated"):
        backup_restore(path=truncated)


def _rewritten(original: Path, out: Path, **changes) -> Path:
    """A copy of the archive with manifest fields changed and every digest still right."""
    with tarfile.open(original) as tar, out.open("wb") as handle:
        manifest = json.load(tar.extractfile(archive.MANIFEST))
        writer = archive.ArchiveWriter(handle)
        for info in tar.getmembers():
            if info.name != archive.MANIFEST:
                writer.add(info.name, tar.extractfile(info), info.size)
        writer.close({k: v for k, v in manifest.items() if k != "members"} | changes)
    return out


def test_archive_from_newer_code_is_refused(backed_up, tmp_path):
    with tarfile.open(backed_up["archive"]) as tar:
        heads = json.load(tar.extractfile(archive.MANIFEST))["migration_heads"]
    newer = _rewritten(backed_up["archive"], tmp_path / "newer.tar", migration_heads={**heads, "core": "9999_future"})
    with pytest.raises(BackupError, match=r"core\.9999_future.*upgrade the code first"):
        backup_restore(path=newer)


def test_archive_of_another_database_vendor_is_refused(backed_up, tmp_path):
    other = "oracle"
    moved = _rewritten(backed_up["archive"], tmp_path / "other.tar", database_vendor=other)
    with pytest.raises(BackupError, match=f"holds a {other} database"):
        backup_restore(path=moved)


def test_backup_summary_names_what_it_wrote(backed_up):
    assert "members" in backed_up["summary"] and "Key ring written to" in backed_up["summary"]


# --- S3 stores (in process, on the moto server): objects go back to the bucket of their region ----


@pytest.mark.django_db
def test_s3_objects_are_archived_per_region_and_put_back_into_their_buckets(s3_buckets, tmp_path):  # noqa: F811  the fixture
    import io

    from apps.core import vault
    from apps.core.backup import backup_create, blobs_check
    from apps.core.backup.stores import feature_store, vault_store

    s3 = s3_buckets["client"]
    blob = vault.blob_store(io.BytesIO(MARKER * 100), purpose="test.backup")
    s3.put_object(Bucket=s3_buckets["vault_eu"], Key="catalog/eu/only.pvlt", Body=b"eu ciphertext")
    s3.put_object(Bucket=s3_buckets["features_eu"], Key="eu/fv/v1/part-0.parquet", Body=b"eu features")
    manifest = backup_create(out=tmp_path / "s3.tar")
    names = {m["path"] for m in manifest["members"]}
    assert {f"vault/s3-default/{blob.storage_key}", "vault/s3-eu/catalog/eu/only.pvlt",
            "features/s3-eu/eu/fv/v1/part-0.parquet"} <= names  # fmt: skip
    assert manifest["vault_mode"] == "s3" and manifest["feature_store_mode"] == "s3"

    for bucket, key in ((s3_buckets["vault"], blob.storage_key), (s3_buckets["vault_eu"], "catalog/eu/only.pvlt"),
                        (s3_buckets["features_eu"], "eu/fv/v1/part-0.parquet")):  # fmt: skip
        s3.delete_object(Bucket=bucket, Key=key)
    assert blobs_check()["missing"] == [f"blob {blob.pk}: {blob.storage_key}"]
    stores = {"vault": vault_store(), "features": feature_store()}
    for info, src in archive.members(str(tmp_path / "s3.tar")):
        kind, _, rest = info.name.partition("/")
        if kind in stores:
            source, _, key = rest.partition("/")
            stores[kind].put(source, key, src, info.size)
    assert s3.get_object(Bucket=s3_buckets["vault_eu"], Key="catalog/eu/only.pvlt")["Body"].read() == b"eu ciphertext"
    assert (
        s3.get_object(Bucket=s3_buckets["features_eu"], Key="eu/fv/v1/part-0.parquet")["Body"].read() == b"eu features"
    )
    report = blobs_check()
    assert report["missing"] == [] and report["failed"] == [] and report["decrypt_checked"] == 1
