"""The manifests' environment starts the portal: for every distinct container environment of every
overlay (web, each region's workers), portal/settings/ loads in production mode from the
ConfigMaps plus the Secret's files, and `manage.py check --deploy` finds nothing but the one warning
the Ingress answers for (security.W008: TLS and its redirect live at the Ingress).
"""

from __future__ import annotations

import base64
import os
import posixpath
import re
import secrets
import subprocess
import sys

import pytest

from tests.deploy.manifests import OVERLAYS, ROOT, container_env, containers, pod_spec, rendered, workloads

# What the Secret's files hold in a real cluster, generated afresh (the shapes settings expect).
SECRET_FILES = {
    "secret-key": lambda: secrets.token_urlsafe(64),
    "vault-keyring": lambda: "k1:" + base64.b64encode(os.urandom(32)).decode(),
    "database-url": lambda: f"postgres://portal:{secrets.token_hex(16)}@postgres.portal.svc.cluster.local:5432/portal",
    "redis-url": lambda: f"redis://:{secrets.token_hex(16)}@redis.portal.svc.cluster.local:6379/0",
    "s3-access-key-id": lambda: secrets.token_hex(10).upper(),
    "s3-secret-access-key": lambda: secrets.token_urlsafe(30),
}
EXPECTED_WARNINGS = {"security.W008"}


def _environments(overlay: str) -> list[dict[str, str]]:
    docs = rendered(f"overlays/{overlay}")
    distinct = {
        frozenset(container_env(docs, container).items())
        for doc in workloads(docs)
        for container in containers(pod_spec(doc))
    }
    return [dict(env) for env in sorted(distinct, key=sorted)]


@pytest.mark.slow
@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_every_container_environment_passes_the_deployment_checks(overlay, tmp_path):
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir()
    for name, make in SECRET_FILES.items():
        (secret_dir / name).write_text(make())
    environments = _environments(overlay)
    assert len({env["PORTAL_REGION"] for env in environments}) == len(OVERLAYS[overlay])
    for env in environments:
        run_env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}
        for name, value in env.items():
            if name.endswith("_FILE"):  # the Secret's mount point, here a local folder
                value = str(secret_dir / posixpath.basename(value))
            run_env[name] = value
        run_env["PORTAL_VAR_DIR"] = str(tmp_path / "var")
        run_env["AUDIT_CHECKPOINT_PATH"] = str(tmp_path / "audit" / posixpath.basename(env["AUDIT_CHECKPOINT_PATH"]))
        result = subprocess.run(  # noqa: S603  fixed argv, no shell
            [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
            cwd=ROOT,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        where = f"{overlay}, PORTAL_REGION={env['PORTAL_REGION']}"
        assert result.returncode == 0, f"{where}:\n{result.stdout}\n{result.stderr}"
        found = set(re.findall(r"\(([a-z_]+\.[A-Z]\d+)\)", result.stdout + result.stderr))
        assert found == EXPECTED_WARNINGS, f"{where}: unexpected checks {sorted(found - EXPECTED_WARNINGS)}"
