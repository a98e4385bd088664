"""MLflow-compatible tracking, side by side (issue #19): the real MLflow client against MLflow's own
tracking server and against the portal's MLflow API, both on the same PostgreSQL. Prints JSON.

    .venv/bin/python -m bench.mlflow_tracking            # 3 rounds of 30 s windows per measure and side (~12 min,
                                                         # plus ~15 min the first time, seeding 10,000 runs per side)
    .venv/bin/python -m bench.mlflow_tracking --quick    # smoke: 5 s windows, 1 round, 1,000 seeded runs

Needs PostgreSQL on 127.0.0.1:5432 (user postgres; BENCH_PG to change) and Redis on 6379
(BENCH_REDIS). Sides:
- MLflow: `mlflow server` (its default command: uvicorn, `--workers` left at MLflow's documented
  default, see `mlflow_default_workers` in the output) from `mlflow==3.18.0` in
  bench/.venvs/mlflow-server (git-ignored; 3.17.2 when 3.18.0 cannot be installed, reported),
  backend store database `mlflow_bench`, artifacts in a temporary folder.
- portal: the services mode (DATABASE_URL on the same PostgreSQL, database `portal_bench_mlflow`,
  migrated here; REDIS_URL), uvicorn (uvloop, httptools, one process) serving portal.asgi, DEBUG
  off, a user of the ML engineers role with a read/write token (sent by the client as Bearer).
Each server is pinned to CPU 0; every timed call comes from the real MLflow client
(bench/mlflow_tracking_client.py in .venv-mlflow, mlflow-skinny) pinned to CPU 1, one process,
sequential calls. Per round, side and measure: a warm-up (5 s; 2 s with --quick) then a --window
timed window:
1. per-call `log_metric` loop: calls/s (goal: portal >= 3x MLflow);
2. `log_batch` of 1,000 points: batches/s and points/s (goal: >= 10x);
3. `search_runs` over the seeded runs with a filter and an order_by: calls/s, p50/p95 (goal: >= 1x).
Seeds (not timed): --search-runs runs (5 params, 5 metrics each, FINISHED, as the anchor's
populate.py) through each side's own store layer in process: MLflow's `MlflowClient` on the
database URI (SqlAlchemyStore, bench/mlflow_tracking_seed.py) and the portal's services
(run_create, run_log_batch, run_set_status, audited), 2 writer threads each; kept between runs
(resumable). Not over HTTP: 10,000 runs take ~30 minutes that way on this machine.
Rounds alternate the sides; each figure is the median of --runs rounds with its spread (min-max),
and each goal says in how many rounds it was met. Also written to bench/results/mlflow_tracking.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
import requests
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/7")
PORTAL_DB, MLFLOW_DB = "portal_bench_mlflow", "mlflow_bench"
PORTAL_PORT, MLFLOW_PORT, FLOOR_PORT = 8097, 5097, 5098
SERVER_VENV = ROOT / "bench/.venvs/mlflow-server"
CLIENT_VENV_FALLBACK = ROOT / "bench/.venvs/mlflow-client"
MLFLOW_PINS = ("3.18.0", "3.17.2")  # the version first; the second when it is not installable here
CLIENT_PIN = "mlflow-skinny==3.17.2"
SEARCH_EXPERIMENT, LOAD_EXPERIMENT = "bench-runs10k", "bench-tracking"
SEED_THREADS = 2  # writers per side while seeding (bench/mlflow_tracking_seed.py's default too)
GOALS = {"log_metric": 3.0, "log_batch": 10.0, "search": 1.0}  # portal / MLflow, by calls/s (log_batch: points/s)
MEASURES = ("log_metric", "log_batch", "search")
FLOOR_MEASURES = ("log_metric", "log_batch")  # the floor answers writes only: a search floor means nothing
VAR_DIR = ROOT / "bench/results/mlflow-tracking-var"  # the portal's vault and keys, kept with its database


# --- processes and pinning --------------------------------------------------------------------------
def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def wait_http(url: str, process: subprocess.Popen, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}; see its log in bench/results/")
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError(f"{what} did not answer on {url} within {timeout:.0f} s")


def stop(process: subprocess.Popen) -> None:
    """The server and its workers: they run in their own session, so the process group goes."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)


def ensure_database(name: str) -> None:
    with psycopg.connect(f"{PG}/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def analyze(database: str) -> None:
    """Not timed: what autovacuum would do after the seed (this machine's PostgreSQL may run without it)."""
    with psycopg.connect(f"{PG}/{database}", autocommit=True) as conn:
        conn.execute("ANALYZE")


# --- virtualenvs ------------------------------------------------------------------------------------
def server_venv() -> tuple[Path, str, str | None]:
    """bench/.venvs/mlflow-server with the full mlflow (its server) and psycopg2: 3.18.0, or the
    fallback pin when 3.18.0 cannot be installed here (the note says why). pip leaves the venv as it
    was when a pin does not resolve, so a working fallback is kept."""
    python = SERVER_VENV / "bin/python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(SERVER_VENV)], check=True)  # noqa: S603  fixed argv
    note = None
    for version in MLFLOW_PINS:
        if installed_mlflow(python) == version:
            break
        done = subprocess.run(  # noqa: S603  fixed argv (the bench's own pins), no shell
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"mlflow=={version}", "psycopg2-binary"],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode == 0:
            break
        note = f"mlflow {version} is not installable here: {(done.stderr.strip().splitlines() or ['?'])[-1][:200]}"
    have = installed_mlflow(python)
    if have not in MLFLOW_PINS:
        raise RuntimeError(note or "mlflow could not be installed into bench/.venvs/mlflow-server")
    return python, have, note if have != MLFLOW_PINS[0] else None


def installed_mlflow(python: Path) -> str:
    return subprocess.run(  # noqa: S603  fixed argv, no shell
        [str(python), "-c", "import mlflow, psycopg2; print(mlflow.__version__)"], capture_output=True, text=True
    ).stdout.strip()


def client_python() -> Path:
    """The real MLflow client: the test setup's .venv-mlflow, else the bench's own."""
    for python in (ROOT / ".venv-mlflow/bin/python", CLIENT_VENV_FALLBACK / "bin/python"):
        if python.exists():
            return python
    subprocess.run([sys.executable, "-m", "venv", str(CLIENT_VENV_FALLBACK)], check=True)  # noqa: S603  fixed argv
    python = CLIENT_VENV_FALLBACK / "bin/python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", CLIENT_PIN], check=True)  # noqa: S603  fixed argv
    return python


def mlflow_default_workers(python: Path) -> str:
    """What `mlflow server --help` documents for --workers (the server runs with that default)."""
    text = subprocess.run(  # noqa: S603  fixed argv, no shell
        [str(python.parent / "mlflow"), "server", "--help"], capture_output=True, text=True
    ).stdout
    flat = " ".join(text.split())
    start = flat.find("-w, --workers")
    end = flat.find(" --", start + 15)
    return flat[start:end] if start >= 0 else "not documented in --help"


# --- the MLflow side --------------------------------------------------------------------------------
@contextmanager
def mlflow_server(python: Path, log_dir: Path):
    ensure_database(MLFLOW_DB)
    artifacts = Path(tempfile.mkdtemp(prefix="mlflow-bench-artifacts-"))
    log = (log_dir / "mlflow-server.log").open("wb")
    server = subprocess.Popen(  # noqa: S603  fixed argv, no shell
        [*pin(0), str(python.parent / "mlflow"), "server",
         "--backend-store-uri", f"postgresql+psycopg2://{PG.split('://', 1)[1]}/{MLFLOW_DB}",
         "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(MLFLOW_PORT)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{MLFLOW_PORT}/health", server, "mlflow server")
        yield f"http://127.0.0.1:{MLFLOW_PORT}", server
    finally:
        stop(server)
        log.close()
        shutil.rmtree(artifacts, ignore_errors=True)


def mlflow_seed(python: Path, n_runs: int) -> dict:
    ensure_database(MLFLOW_DB)
    done = subprocess.run(  # noqa: S603  fixed argv, no shell
        [*pin(1), str(python), str(ROOT / "bench/mlflow_tracking_seed.py"),
         f"postgresql+psycopg2://{PG.split('://', 1)[1]}/{MLFLOW_DB}", str(n_runs)],
        cwd=ROOT, capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"seeding MLflow failed: {done.stderr[-2000:]}")
    analyze(MLFLOW_DB)
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- the portal side --------------------------------------------------------------------------------
def portal_env() -> dict:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        "DATABASE_URL": f"{PG}/{PORTAL_DB}",
        "REDIS_URL": REDIS,
        "PORTAL_VAR_DIR": str(VAR_DIR),
        "PORTAL_DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "API_THROTTLE_RATE": "100000000/min",  # one user generates all the load
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }


def portal_setup(n_runs: int) -> dict:
    """Migrate, make the bench user and token, seed the search runs through the portal's services."""
    ensure_database(PORTAL_DB)
    env = portal_env()
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)  # noqa: S603  fixed argv
    os.environ.update(
        {k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "PORTAL_VAR_DIR", "PORTAL_DEBUG", "DJANGO_SETTINGS_MODULE")}
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db import connection, connections

    from apps.accounts import roles
    from apps.accounts.models import ApiToken
    from apps.accounts.services import token_create
    from apps.core.audit import acting_as
    from apps.experiments import services
    from apps.experiments.models import Experiment, Run

    user = get_user_model().objects.filter(username="mlflow-bench").first()
    if user is None:
        user = get_user_model().objects.create_user(username="mlflow-bench", password=None)
        user.groups.add(Group.objects.get(name=roles.ML_ENGINEERS))
    ApiToken.objects.filter(user=user).delete()
    _, key = token_create(user=user, name="mlflow-bench", scopes=["read", "write"], expires_days=1)
    with acting_as(user):
        experiment = Experiment.objects.filter(name=SEARCH_EXPERIMENT).first() or services.experiment_create(
            name=SEARCH_EXPERIMENT, actor=user
        )
    have = Run.objects.filter(experiment=experiment).count()
    todo, lock = iter(range(have, n_runs)), threading.Lock()

    def seed_runs() -> None:  # as MLflow's seed: SEED_THREADS writers, one run at a time each
        with acting_as(user):
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    break
                rng = random.Random(i)  # noqa: S311  seeded synthetic bench data, the same as MLflow's seed
                ts = int(time.time() * 1000)
                run = services.run_create(experiment=experiment, actor=user, name=f"r{i:05d}", source="script")
                metrics = [{"key": f"m{k}", "value": rng.random(), "timestamp": ts, "step": 0} for k in range(5)]
                params = {"p0": str(i % 10), **{f"p{k}": f"v{rng.randrange(100)}" for k in range(1, 5)}}
                services.run_log_batch(run=run, actor=user, metrics=metrics, params=params)
                services.run_set_status(run=run, actor=user, status="finished")
        connection.close()

    t0 = time.perf_counter()
    writers = [threading.Thread(target=seed_runs) for _ in range(SEED_THREADS)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    analyze(PORTAL_DB)
    connections.close_all()
    return {"token": key, "runs_before": have, "runs": max(have, n_runs), "seed_s": round(time.perf_counter() - t0, 1)}


@contextmanager
def uvicorn_server(app: str, port: int, log_path: Path, *, env: dict | None = None, probe: str = "/healthz"):
    """`app` under uvicorn (uvloop, httptools) on CPU 0, as every side's server; yields (url, process)."""
    log = log_path.open("wb")
    args = ["-m", "uvicorn", app, "--port", str(port), "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning"]  # fmt: skip
    server = subprocess.Popen(  # noqa: S603  fixed uvicorn argv, no shell
        [*pin(0), sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}{probe}", server, app)
        yield f"http://127.0.0.1:{port}", server
    finally:
        stop(server)
        log.close()


def portal_server(log_dir: Path):
    return uvicorn_server("portal.asgi:application", PORTAL_PORT, log_dir / "portal-server.log", env=portal_env())


def floor_server(log_dir: Path):
    """bench/mlflow_floor_app.py on CPU 0, as the two servers: the client's own ceiling."""
    return uvicorn_server(
        "bench.mlflow_floor_app:app", FLOOR_PORT, log_dir / "mlflow-floor.log", probe="/api/2.0/mlflow/runs/update"
    )


# --- measuring ----------------------------------------------------------------------------------------
def measure(client: Path, uri: str, mode: str, *, window: float, warmup: float, token: str | None) -> dict:
    """One window of the real MLflow client on CPU 1 against `uri`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DJANGO_", "DATABASE_URL"))}
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    done = subprocess.run(  # noqa: S603  fixed argv, no shell
        [*pin(1), str(client), str(ROOT / "bench/mlflow_tracking_client.py"), uri, mode, "--window", str(window),
         "--warmup", str(warmup), "--experiment", LOAD_EXPERIMENT, "--search-experiment", SEARCH_EXPERIMENT],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=window + warmup + 300,
    )  # fmt: skip
    if done.returncode:
        raise RuntimeError(f"{mode} against {uri} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def rate(result: dict, mode: str) -> float:
    return result["points_per_s"] if mode == "log_batch" else result["calls_per_s"]


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": min(values), "max": max(values)}


def summarise(rounds: list[dict], sides: list[str], measures: tuple[str, ...] = MEASURES) -> dict:
    out: dict = {}
    for mode in measures:
        entry: dict = {}
        for side in sides:
            if mode not in rounds[0][side]:
                continue
            each = [r[side][mode] for r in rounds]
            keys = ["calls_per_s", "p50_ms", "p95_ms"] + (["points_per_s"] if mode == "log_batch" else [])
            entry[side] = {key: spread([e[key] for e in each]) for key in keys}
            entry[side]["rounds"] = each
        if {"portal", "mlflow"} <= set(sides):
            ratios = [rate(r["portal"][mode], mode) / rate(r["mlflow"][mode], mode) for r in rounds]
            met = sum(ratio >= GOALS[mode] for ratio in ratios)
            entry["portal_over_mlflow"] = {
                **spread([round(x, 2) for x in ratios]),
                "by": "points/s" if mode == "log_batch" else "calls/s",
                "goal": f">= {GOALS[mode]:g}x",
                "met_in_rounds": f"{met} of {len(ratios)}",
            }
        if {"floor", "mlflow"} <= set(sides) and mode in FLOOR_MEASURES:
            ceilings = [rate(r["floor"][mode], mode) / rate(r["mlflow"][mode], mode) for r in rounds]
            entry["floor_over_mlflow"] = {
                **spread([round(x, 2) for x in ceilings]),
                "meaning": "the most any server could reach against MLflow with this client on this machine",
                "goal_reachable_in_rounds": f"{sum(c >= GOALS[mode] for c in ceilings)} of {len(ceilings)}",
            }
        out[mode] = entry
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=30, help="timed seconds per measure, side and round")
    parser.add_argument("--runs", type=int, default=3, help="rounds (the figures are their median)")
    parser.add_argument("--warmup", type=float, default=5, help="untimed seconds before each window")
    parser.add_argument("--search-runs", type=int, default=None, help="runs seeded for search_runs (10,000)")
    parser.add_argument("--quick", action="store_true", help="smoke test: 5 s windows, 1 round, 1,000 seeded runs")
    parser.add_argument("--side", choices=("both", "portal", "mlflow"), default="both")
    parser.add_argument("--measures", nargs="+", choices=MEASURES, default=list(MEASURES),
                        help="which measures (without search, nothing is seeded)")  # fmt: skip
    parser.add_argument("--no-floor", action="store_true", help="leave out the bare floor (the client's ceiling)")
    args = parser.parse_args()
    if args.quick:
        args.window, args.runs, args.warmup = 5, 1, 2
    if args.search_runs is None:
        args.search_runs = 1000 if args.quick else 10_000
    args.measures = tuple(m for m in MEASURES if m in args.measures)
    if "search" not in args.measures:
        args.search_runs = 0  # nothing to search: seed nothing
    log_dir = ROOT / "bench/results"
    log_dir.mkdir(parents=True, exist_ok=True)
    sides = ["portal", "mlflow"] if args.side == "both" else [args.side]
    if not args.no_floor:
        sides.append("floor")
    client = client_python()
    result: dict = {
        "benchmark": "mlflow_tracking",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "load_avg_before": [round(x, 2) for x in os.getloadavg()]},
        "settings": {
            "window_s": args.window,
            "warmup_s": args.warmup,
            "rounds": args.runs,
            "search_runs": args.search_runs,
            "quick": args.quick,
            "measures": list(args.measures),
        },  # fmt: skip
        "method": "real MLflow client (mlflow-skinny) on CPU 1, one process, sequential calls; servers on CPU 0; "
        "same PostgreSQL; seeds through each side's store layer in process (not timed)",
        "goals": {m: f"portal >= {g:g}x MLflow" for m, g in GOALS.items()},
    }
    targets: dict = {}
    with servers_stack() as stack:
        if "mlflow" in sides:
            python, version, note = server_venv()
            result["mlflow"] = {
                "version": version,
                "server": "taskset -c 0 mlflow server --backend-store-uri postgresql+psycopg2://.../mlflow_bench "
                "--artifacts-destination <temporary folder> --host 127.0.0.1 --port 5097 (MLflow's default command: "
                "uvicorn, --workers not given)",
                "default_workers": mlflow_default_workers(python),
                "seed": mlflow_seed(python, args.search_runs),
                **({"note": note} if note else {}),
            }
            uri, _ = stack.enter_context(mlflow_server(python, log_dir))
            targets["mlflow"] = (uri, None)
        if "portal" in sides:
            setup = portal_setup(args.search_runs)
            result["portal"] = {
                "server": "taskset -c 0 python -m uvicorn portal.asgi:application --loop uvloop --http httptools "
                "(one process; DEBUG off; DATABASE_URL and REDIS_URL: the services mode)",
                "seed": {k: v for k, v in setup.items() if k != "token"},
            }
            uri, _ = stack.enter_context(portal_server(log_dir))
            targets["portal"] = (uri, setup["token"])
        if "floor" in sides:
            result["floor"] = {
                "server": "taskset -c 0 python -m uvicorn bench.mlflow_floor_app:app --loop uvloop --http httptools "
                "(fixed answers after reading the body; no work)"
            }
            uri, _ = stack.enter_context(floor_server(log_dir))
            targets["floor"] = (uri, None)
        rounds = []
        for n in range(args.runs):
            order = sides if n % 2 == 0 else list(reversed(sides))  # alternate who goes first
            this: dict = {side: {} for side in sides}
            for mode in args.measures:
                for side in order:
                    if side == "floor" and mode not in FLOOR_MEASURES:
                        continue
                    uri, token = targets[side]
                    this[side][mode] = measure(client, uri, mode, window=args.window, warmup=args.warmup, token=token)
            rounds.append(this)
    result["results"] = summarise(rounds, sides, args.measures)
    result["machine"]["load_avg_after"] = [round(x, 2) for x in os.getloadavg()]
    (log_dir / "mlflow_tracking.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


@contextmanager
def servers_stack():
    """An ExitStack for the servers, which also stops them when the bench is killed (SIGTERM)."""
    with ExitStack() as stack:
        previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the servers stop on kill
        try:
            yield stack
        finally:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()
