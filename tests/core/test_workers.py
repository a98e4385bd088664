import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.core.queues import queue_name, split_queue, validate_region
from apps.core.workers import cuda_available, queue_depths, workers_by_queue

ROOT = Path(__file__).resolve().parents[2]


def test_queue_names_with_regions():
    assert queue_name("cpu") == "cpu"
    assert queue_name("gpu", "uae-north") == "gpu.uae-north"
    assert queue_name("cpu", "default") == "cpu"
    assert split_queue("gpu.uae-north") == ("gpu", "uae-north")
    with pytest.raises(ValueError, match="Resource class"):
        queue_name("tpu")
    with pytest.raises(ValueError, match="lower-case"):
        validate_region("UAE North; drop")


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA, so a gpu worker may start")
def test_gpu_worker_refuses_to_start_without_cuda():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-Q",
            "gpu",
            "--concurrency",
            "1",
            "-n",
            "gpu-probe@%h",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 78, result.stdout + result.stderr
    assert "no CUDA device is available" in result.stderr
    assert not workers_by_queue().get("gpu")


def test_queue_depth_reads_the_broker():
    from apps.core.workers import redis_client

    client = redis_client()
    client.delete("bench-q")
    client.rpush("bench-q", "a", "b")
    assert queue_depths(["bench-q"]) == {"bench-q": 2}
    client.delete("bench-q")
