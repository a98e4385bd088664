"""What platform metrics cost the predict path (issue #16: scraping adds under 5 % to its p50).

    python -m bench.metrics_overhead              # 3 rounds of 30 s windows per side (~6 min; a quiet machine)
    python -m bench.metrics_overhead --smoke      # 1 round of 3 s windows: checks that it works, no figures

The endpoint, model and token are bench/serving.py's (an MLP 30-64-2 behind
`POST /api/v1/endpoints/{name}/predict` with a `predict` token, the lean path, 10 % logged). Two
portal servers, each one uvicorn process pinned to CPU 0 (wrk on CPU 1), loaded one at a time:
`off` with METRICS_ENABLED=false, and `on` (the default). Each round, after a warm-up window per
server (discarded), three windows of 8 connections, in this order: `off`, `on` without scraping,
`on` with a scraper (`GET /metrics` every second with a platform admin's `metrics` token, far more
often than Prometheus' default 15 s; it runs on the load core). Goal: the `on` + scraping p50 within
5 % of the `on` p50 without it (median over rounds); the `off` figures show what the instruments
cost. In process, first: the cost of one observation, and `predict_call` with the instruments on
and off (timeit, interleaved). Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import timeit
import urllib.request
from pathlib import Path

from bench import wrk
from bench.common import portal_env
from bench.serving import ENDPOINT, SERVER_THROTTLE, UVICORN, body, mlp, onnx_of, seed, served, window

CONNECTIONS = 8
GOAL = 0.05  # scraping may add at most 5 % to the predict p50


def scraper_token() -> str:
    """A platform admin's token with the `metrics` scope only."""
    from apps.accounts import roles
    from apps.accounts.models import ApiToken
    from apps.accounts.tokens import new_key
    from tests.conftest import make_user

    admin = make_user("bench-admin", roles.PLATFORM_ADMINS, is_staff=True, is_superuser=True)
    key, prefix, key_hash = new_key()
    ApiToken.objects.create(user=admin, name="bench-scraper", prefix=prefix, key_hash=key_hash, scopes=["metrics"])
    return key


class Scraper(threading.Thread):
    """GET /metrics every `every` seconds until stopped; counts scrapes and their durations."""

    def __init__(self, url: str, key: str, every: float = 1.0):
        super().__init__(daemon=True)
        self.url, self.key, self.every = url, key, every
        self.stop = threading.Event()
        self.durations: list[float] = []
        self.bytes = 0
        self.failures = 0

    def run(self) -> None:
        while not self.stop.is_set():
            started = time.perf_counter()
            self.scrape()
            self.stop.wait(max(0.0, self.every - (time.perf_counter() - started)))

    def scrape(self) -> str:
        """One GET /metrics; its text ("" when it failed)."""
        request = urllib.request.Request(self.url, headers={"Authorization": f"Token {self.key}"})  # noqa: S310  http URL of the loopback portal this bench started
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310  http URL of the loopback portal this bench started
                text = answer.read()
        except Exception:
            self.failures += 1
            return ""
        self.durations.append(time.perf_counter() - started)
        self.bytes = len(text)
        return text.decode()

    def summary(self) -> dict:
        d = sorted(self.durations)
        return {
            "scrapes": len(d),
            "failures": self.failures,
            "p50_ms": round(statistics.median(d) * 1000, 2) if d else None,
            "max_ms": round(d[-1] * 1000, 2) if d else None,
            "bytes": self.bytes,
        }


def in_process(number: int, repeats: int) -> dict:
    """Microseconds: one observation, and one whole predict_call with the instruments on and off."""
    from apps.accounts.models import ApiToken
    from apps.core import metrics
    from apps.serving.inference.predict import predict_call

    token = ApiToken.objects.select_related("user").get(name="bench-predict")
    raw = body(1, seed=1)

    def call():
        predict_call(user=token.user, token=token, endpoint_name=ENDPOINT, body=raw)

    def observe():
        metrics.PREDICT.observe((ENDPOINT, "main", 200), 0.00011)

    status = predict_call(user=token.user, token=token, endpoint_name=ENDPOINT, body=raw)[0]
    if status != 200:
        raise RuntimeError(f"in-process predict answered {status}")
    previous = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if previous is not None and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {int(wrk.SERVER_CPU)})
    try:
        timeit.Timer(call).timeit(max(number // 10, 100))
        on_us, off_us, observe_ns = [], [], []
        for _ in range(repeats):
            metrics.set_enabled(True)
            on_us.append(timeit.Timer(call).timeit(number) / number * 1e6)
            observe_ns.append(timeit.Timer(observe).timeit(number * 10) / (number * 10) * 1e9)
            metrics.set_enabled(False)
            off_us.append(timeit.Timer(call).timeit(number) / number * 1e6)
    finally:
        metrics.set_enabled(True)
        if previous is not None:
            os.sched_setaffinity(0, previous)
    on, off = statistics.median(on_us), statistics.median(off_us)
    return {
        "observe_ns": round(statistics.median(observe_ns), 1),
        "predict_call_on_us": round(on, 2),
        "predict_call_off_us": round(off, 2),
        "predict_call_added_us": round(on - off, 2),
        "on_us_runs": [round(v, 2) for v in on_us],
        "off_us_runs": [round(v, 2) for v in off_us],
        "calls_per_run": number,
    }


def one_round(targets: dict, scrape_url: str, key: str, args) -> dict:
    one = body(1, seed=1)
    out = {}
    for url, headers in targets.values():
        window(url, one, headers, seconds=args.warmup, connections=CONNECTIONS)  # discarded
    url, headers = targets["off"]
    out["off"] = window(url, one, headers, seconds=args.seconds, connections=CONNECTIONS)
    url, headers = targets["on"]
    out["on"] = window(url, one, headers, seconds=args.seconds, connections=CONNECTIONS)
    scraper = Scraper(scrape_url, key)
    scraper.start()
    try:
        out["on_scraped"] = window(url, one, headers, seconds=args.seconds, connections=CONNECTIONS)
    finally:
        scraper.stop.set()
        scraper.join(15)
    out["scraper"] = scraper.summary()
    out["scraping_p50_increase"] = round(out["on_scraped"]["p50_ms"] / out["on"]["p50_ms"] - 1, 4)
    out["instruments_p50_increase"] = round(out["on"]["p50_ms"] / out["off"]["p50_ms"] - 1, 4)
    out["load_average_1_5_15"] = wrk.load_average()
    return out


def run(args) -> dict:
    wrk.require()
    from apps.core.embedded_redis import free_port

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with portal_env() as env, tempfile.TemporaryDirectory(prefix="metrics-bench-") as tmp:
        tmp = Path(tmp)
        predict_key = seed(onnx_of(mlp()))
        scrape_key = scraper_token()
        calls = in_process(args.calls, args.call_runs)
        import django.db

        django.db.connections.close_all()
        ports = {name: free_port() for name in ("off", "on")}
        base = {**env, "API_THROTTLE_RATE": SERVER_THROTTLE}
        token = {"Authorization": f"Token {predict_key}"}
        targets = {
            name: (f"http://127.0.0.1:{port}/api/v1/endpoints/{ENDPOINT}/predict", token)
            for name, port in ports.items()
        }
        scrape_url = f"http://127.0.0.1:{ports['on']}/metrics"
        uvicorn = [sys.executable, *UVICORN]
        if (os.cpu_count() or 1) > 1:  # the scraper thread and this process stay off the server's core
            os.sched_setaffinity(0, {int(wrk.LOAD_CPU)})
        loads = [wrk.load_average()]
        with (
            served("off", wrk.pinned([*uvicorn, "--port", str(ports["off"]), "portal.asgi:application"]),
                   {**base, "METRICS_ENABLED": "false"}, ports["off"], "/healthz", tmp),
            served("on", wrk.pinned([*uvicorn, "--port", str(ports["on"]), "portal.asgi:application"]),
                   {**base, "METRICS_ENABLED": "true"}, ports["on"], "/healthz", tmp),
        ):  # fmt: skip
            if not Scraper(scrape_url, scrape_key).scrape():  # the token and the exposition work
                raise RuntimeError("GET /metrics failed before the run")
            rounds = []
            for i in range(args.rounds):
                print(f"[metrics] round {i + 1} of {args.rounds}", file=sys.stderr, flush=True)
                rounds.append(one_round(targets, scrape_url, scrape_key, args))
            exposition = Scraper(scrape_url, scrape_key).scrape()
        scraping = [r["scraping_p50_increase"] for r in rounds]
        p50 = {side: statistics.median(r[side]["p50_ms"] for r in rounds) for side in ("off", "on", "on_scraped")}
        increase = round(p50["on_scraped"] / p50["on"] - 1, 4)
        return {
            "benchmark": "platform metrics overhead on the predict path (MLP 30-64-2, lean path, single rows)",
            "date": started,
            "smoke": args.smoke,
            "method": (
                f"two portal servers (METRICS_ENABLED false / true), one uvicorn process each on CPU "
                f"{wrk.SERVER_CPU}, loaded one at a time by wrk -t1 -c{CONNECTIONS} on CPU {wrk.LOAD_CPU}; "
                f"{args.rounds} rounds, each: {args.warmup} s warm-up per server, then {args.seconds} s windows "
                "off, on, on + GET /metrics every 1 s (scraper on the load core); median over rounds"
            ),
            "in_process": calls,
            "p50_ms_median": p50,
            "summary": {side: wrk.summarise([r[side] for r in rounds]) for side in ("off", "on", "on_scraped")},
            "goal": {
                "what": "p50 with scraping over p50 without it, minus 1 (median of rounds' p50s)",
                "target": f"< {GOAL:.0%}",
                "value": increase,
                "per_round": scraping,
                "verdict": "met" if increase < GOAL else "not met",
                "met_in_rounds": f"{sum(v < GOAL for v in scraping)} of {len(scraping)}",
            },
            "instruments_p50_increase_median": round(p50["on"] / p50["off"] - 1, 4),
            "predict_samples_in_last_scrape": [
                line for line in exposition.splitlines() if line.startswith("portal_predictions_total")
            ],
            "rounds": rounds,
            "load_average_1_5_15": [*loads, *(r["load_average_1_5_15"] for r in rounds)],
        }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=30, help="each measured window")
    parser.add_argument("--warmup", type=int, default=5, help="the discarded window per server and round")
    parser.add_argument("--calls", type=int, default=5_000, help="in process: calls per timeit run")
    parser.add_argument("--call-runs", type=int, default=5, help="in process: timeit runs per side")
    parser.add_argument("--smoke", action="store_true", help="1 round of 3 s windows: a check, not a figure")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.seconds, args.warmup, args.calls, args.call_runs = 1, 3, 1, 500, 2
    print(json.dumps(run(args), indent=2))


if __name__ == "__main__":
    main()
