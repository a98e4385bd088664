"""Training overhead benchmark: the portal's callbacks vs the plain loop, and launch -> running.

1. Overhead: the same template, data, seed and thread count trained in one process, in pairs of
   one plain PyTorch loop (the engine with no-op callbacks) and one run with the portal's
   callbacks (step metrics batched into the experiments run, a checkpoint per epoch encrypted into
   the vault, cooperative cancel checks through Redis, progress/ETA updates and broadcasts); the
   order inside a pair alternates (plain first, then portal first), so drift hits both alike.
   The figure is the mean of the paired relative differences (portal / plain - 1) with its 95%
   confidence interval (Student's t). Pairs are added, from --repeats up to --max-repeats, until
   the interval's half-width is at most --ci-half-width percentage points, so the interval is
   narrower than the 5% goal and says whether the goal is met: met when its upper bound is under
   5%, not met when its lower bound is over 5%, undecided otherwise.
   Goal: portal overhead <= 5%.
2. Launch -> running: `job_launch` on an idle real Celery worker (prefork, concurrency 1), time
   from the job row's creation to the worker marking it running. Goal: p50 < 1 s.

    python bench/training_overhead.py                    # full: 30-400 pairs per config until CI +-1.5 pp
    python bench/training_overhead.py --repeats 4 --max-repeats 4 --configs small --launches 3   # smoke
    python bench/training_overhead.py --writers process,thread   # also the former writer thread

Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import portal_env  # noqa: E402

TEMPLATE = "digits-cnn"
# Two model sizes on the same data: "small" is the worst case for a fixed per-epoch cost (0.13 s
# epochs of tiny, Python-bound steps); "wide" has 4x the channels (about 0.7 s epochs).
CONFIGS = {
    "small": {"epochs": 4, "batch_size": 32, "channels": 16, "patience": 0},
    "wide": {"epochs": 4, "batch_size": 32, "channels": 64, "patience": 0},
}
CONFIG = {"template": TEMPLATE, "params": CONFIGS["small"]}


def _user():
    from django.contrib.auth import get_user_model

    from tests.conftest import make_user

    return get_user_model().objects.filter(username="bench").first() or make_user("bench", "ml-engineers")


def confidence_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of the mean of `values` with Student's t."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, float("-inf"), float("inf")
    try:
        from scipy.stats import t

        q = float(t.ppf((1 + level) / 2, n - 1))
    except ImportError:  # the normal quantile: slightly narrow for small n
        q = statistics.NormalDist().inv_cdf((1 + level) / 2)
    half = q * statistics.stdev(values) / n**0.5
    return mean, mean - half, mean + half


def overhead(
    repeats: int, names: list[str], writers: list[str], max_repeats: int = 400, half_width: float = 1.5
) -> dict:
    from django.conf import settings

    from portal.celery import app as celery_app

    user = _user()
    send_task, celery_app.send_task = celery_app.send_task, lambda *a, **k: None  # callbacks only: nothing is queued
    default = settings.TRAINING_WRITER
    out = {}
    try:
        for writer in writers:  # the default first, keyed by config; others as "<config>/<writer>"
            settings.TRAINING_WRITER = writer
            for name in names:
                out[name if writer == writers[0] else f"{name}/{writer}"] = _overhead(
                    user, repeats, CONFIGS[name], max_repeats, half_width
                )
        return out
    finally:
        celery_app.send_task = send_task
        settings.TRAINING_WRITER = default


def _overhead(user, repeats: int, params: dict, max_repeats: int, half_width: float) -> dict:
    from django.conf import settings

    from apps.training import services
    from apps.training.callbacks import PortalCallbacks
    from apps.training.engine import Callbacks, TrainConfig, train
    from apps.training.models import TrainingJob

    def config():
        return TrainConfig(TEMPLATE, dict(params), device="cpu", seed=0, num_threads=1)

    def running_job():
        job = services.job_launch(actor=user, template=TEMPLATE, params=dict(params))  # nothing queued
        TrainingJob.objects.filter(pk=job.pk).update(state="running")
        return TrainingJob.objects.select_related("run").get(pk=job.pk)

    def portal_run():
        return PortalCallbacks(running_job())

    # Warm-up, one run each: imports, allocator and data cache for both; for the portal also what
    # a long-running worker process has from its first job: the writer process, its first vault
    # write, ORM and channel-layer connections.
    train(config(), Callbacks())
    warm = portal_run()
    train(config(), warm)
    warm.close()
    plain, portal, drains, steps, flushes = [], [], [], 0, 0
    diffs: list[float] = []  # portal / plain - 1, in percent, per pair
    i = 0
    while True:
        if i >= repeats:
            _, low, high = confidence_interval(diffs)
            if (high - low) / 2 <= half_width or i >= max_repeats:
                break
        pair = {}
        for mode in ("plain", "portal") if i % 2 == 0 else ("portal", "plain"):
            if mode == "plain":
                t0 = time.perf_counter()
                result = train(config(), Callbacks())
                pair["plain"] = time.perf_counter() - t0
            else:
                job = running_job()
                t0 = time.perf_counter()  # from opening the job's writer session
                callbacks = PortalCallbacks(job)
                result = train(config(), callbacks)
                t1 = time.perf_counter()
                callbacks.close()  # the last checkpoint and metrics are stored before the job may end
                pair["portal"] = time.perf_counter() - t0
                drains.append(time.perf_counter() - t1)
                flushes += callbacks.flushes
                steps = len(result.history["steps"])
        plain.append(pair["plain"])
        portal.append(pair["portal"])
        diffs.append((pair["portal"] / pair["plain"] - 1) * 100)
        i += 1
    p, q = statistics.median(plain), statistics.median(portal)
    mean, low, high = confidence_interval(diffs)
    verdict = "met" if high < 5.0 else "not met" if low > 5.0 else "undecided (the interval contains 5%)"
    return {
        "params": params,
        "steps_per_run": steps,
        "pairs": len(diffs),
        "plain_s_median": round(p, 4),
        "portal_s_median": round(q, 4),
        "plain_s": {"min": round(min(plain), 4), "max": round(max(plain), 4)},
        "portal_s": {"min": round(min(portal), 4), "max": round(max(portal), 4)},
        "metric_batches_per_run": flushes / len(diffs),
        "final_drain_s_median": round(statistics.median(drains), 4),  # waiting for the writer after the last step
        "writer": settings.TRAINING_WRITER,
        "overhead_pct_of_medians": round((q - p) / p * 100, 2),
        "overhead_pct_paired": {
            "mean": round(mean, 2),
            "ci95_low": round(low, 2),
            "ci95_high": round(high, 2),
            "ci95_half_width": round((high - low) / 2, 2),
            "paired_sd": round(statistics.stdev(diffs), 2) if len(diffs) > 1 else None,
        },  # fmt: skip
        "goal_pct": 5.0,
        "goal": verdict,
    }


def launch_latency(env: dict, launches: int) -> dict:

    user = _user()
    log_path = Path(env["PORTAL_VAR_DIR"]) / "worker.log"
    with log_path.open("wb") as log:
        return _launch_latency(env, launches, user, log)


def _launch_latency(env: dict, launches: int, user, log) -> dict:
    from django.db import transaction

    from apps.core.workers import workers_by_queue
    from apps.training import services
    from apps.training.models import TrainingJob

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "portal", "worker", "-Q", "cpu,default", "-n", "bench@%h",
         "--concurrency", "1", "-l", "WARNING", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env={**env, "TRAINING_ONNX_EXPORTER": "torchscript"}, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not workers_by_queue().get("cpu"):
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("worker did not come online")
            time.sleep(0.2)
        waits = []
        params = {"epochs": 1, "batch_size": 256, "hidden_units": 8, "layers": 1}
        for i in range(launches + 1):
            with transaction.atomic():
                job = services.job_launch(actor=user, template="tabular-mlp-classifier", params=params)
            t0 = time.monotonic()
            while True:
                job.refresh_from_db(fields=["state", "started_at", "created_at"])
                if job.started_at is not None and job.state != "queued":
                    break
                if time.monotonic() - t0 > 60:
                    raise RuntimeError(f"job {job.pk} did not start")
                time.sleep(0.005)
            if i:  # the first job pays for the worker child's imports
                waits.append((job.started_at - job.created_at).total_seconds())
            while job.state not in TrainingJob.TERMINAL:
                time.sleep(0.05)
                job.refresh_from_db(fields=["state"])
        waits.sort()
        return {
            "launches": launches,
            "p50_s": round(statistics.median(waits), 4),
            "p90_s": round(waits[min(len(waits) - 1, math.ceil(len(waits) * 0.9) - 1)], 4),
            "max_s": round(waits[-1], 4),
            "goal_p50_s": 1.0,
        }
    finally:
        worker.terminate()
        worker.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=30, help="pairs per config at least")
    parser.add_argument("--max-repeats", type=int, default=400, help="pairs per config at most")
    parser.add_argument("--ci-half-width", type=float, default=1.5, help="stop when the 95%% CI is +- this many pp")
    parser.add_argument("--configs", default="small,wide", help=f"comma-separated, of {', '.join(CONFIGS)}")
    parser.add_argument("--launches", type=int, default=15)
    parser.add_argument("--writers", default="process", help="comma-separated TRAINING_WRITER modes: process,thread")
    args = parser.parse_args()
    with portal_env() as env:
        out = {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "host": {"cpus": os.cpu_count(), "load_avg_before": [round(x, 2) for x in os.getloadavg()]},
            "overhead": overhead(
                args.repeats, args.configs.split(","), args.writers.split(","), args.max_repeats, args.ci_half_width
            ),  # fmt: skip
            "launch_to_running": launch_latency(env, args.launches),
        }
        out["host"]["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
