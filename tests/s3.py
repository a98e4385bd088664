"""A real S3-compatible HTTP server for the tests: moto's server mode in its own process on loopback.

`s3_server` (session) starts it once and returns its endpoint URL; `s3_buckets` (per test) makes
fresh buckets, a default and an "eu" one for the vault and for the feature store, and points the
S3 settings at them. Import both into a test module: `from tests.s3 import s3_buckets, s3_server`.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import urllib.request

import pytest

from apps.core.embedded_redis import free_port
from tests.conftest import ROOT, _die_with_parent, _stop, wait_until_up

ACCESS_KEY = "portal-test-key"
SECRET_KEY = "portal-test-secret"  # pragma: allowlist secret
_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    wait_until_up(
        process, lambda: urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).read(), log, "moto server"
    )
    yield endpoint
    _stop(process)


def s3_client(endpoint: str):
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
    )  # fmt: skip


@pytest.fixture
def s3_buckets(settings, s3_server):
    n = next(_numbers)
    client = s3_client(s3_server)
    names = {
        "vault": f"vault-{n}",
        "vault_eu": f"vault-eu-{n}",
        "features": f"features-{n}",
        "features_eu": f"features-eu-{n}",
    }
    for bucket in names.values():
        client.create_bucket(Bucket=bucket)
    settings.S3_ENDPOINT_URL = s3_server
    settings.S3_REGION = "us-east-1"
    settings.S3_ACCESS_KEY_ID = ACCESS_KEY
    settings.S3_SECRET_ACCESS_KEY = SECRET_KEY
    settings.S3_CA_BUNDLE = None
    settings.S3_ADDRESSING_STYLE = "path"
    settings.VAULT_STORAGE = None
    settings.VAULT_S3_BUCKET = names["vault"]
    settings.VAULT_S3_BUCKETS = {"default": names["vault"], "eu": names["vault_eu"]}
    settings.FEATURE_STORE_S3_BUCKET = names["features"]
    settings.FEATURE_STORE_S3_BUCKETS = {"default": names["features"], "eu": names["features_eu"]}
    return {**names, "endpoint": s3_server, "client": client}
