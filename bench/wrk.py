"""HTTP load from `wrk` (C, Debian's package) pinned to its own core: the one load generator for
every HTTP benchmark here. A Python client loop caps out near 4,500 requests/s on this machine and
would flatter the slower side of any ratio (docs/PERFORMANCE.md).

Layout on the 2-core machine: the server under test on CPU 0 (`server_cmd`), wrk on CPU 1. Each
measurement is a warm-up window (discarded) and then a window of at least 30 s; callers repeat it
and report the median with the spread (`summarise`).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

SERVER_CPU = "0"
LOAD_CPU = "1"

# wrk prints this JSON line at the end (its Lua `done` hook): percentiles in microseconds.
_DONE = """
done = function(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write
               + summary.errors.timeout + summary.errors.status
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "errors": %d, "non_2xx": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, errors, summary.errors.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


# Paced sending (`run(..., rate=R)`): wrk's one thread spaces its requests 1/R apart over all its
# connections, so the server sees R requests/s (if it keeps up) instead of as many as it can take.
# A server that cannot keep up shows as an achieved rate below R; `behind` (a per-thread global)
# counts requests sent over 1 ms later than their slot.
PACED = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local RATE = __RATE__
local next_slot = nil
behind = 0
delay = function()
  local now = now_ms()
  if next_slot == nil then next_slot = now end
  local slot = next_slot
  next_slot = next_slot + 1000 / RATE
  if now - slot > 1 then behind = behind + 1 end
  local wait = slot - now
  if wait < 0.5 then return 0 end
  return math.floor(wait + 0.5)
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None and shutil.which("taskset") is not None


def require() -> None:
    if not available():
        raise SystemExit("wrk and taskset are needed: apt-get install wrk util-linux")


def pinned(cmd: list[str], cpu: str = SERVER_CPU) -> list[str]:
    """`cmd` pinned to one core (the server's, by default)."""
    return ["taskset", "-c", cpu, *cmd] if (os.cpu_count() or 1) > 1 else cmd


def run(url: str, *, seconds: int = 30, connections: int = 8, headers: dict | None = None,
        method: str = "GET", body: bytes | None = None, timeout_s: int = 5, rate: float | None = None) -> dict:  # fmt: skip
    """One wrk window on the load core: requests/s and latency percentiles in milliseconds; with
    `rate`, requests are paced to that many per second (see `PACED`)."""
    require()
    script = _DONE if rate is None else PACED.replace("__RATE__", repr(float(rate))) + _DONE
    if method != "GET" or body is not None:
        payload = json.dumps((body or b"").decode())
        script = f"wrk.method = {json.dumps(method)}\nwrk.body = {payload}\n" + script
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as lua:
        lua.write(script)
    try:
        cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s}s", "-s", lua.name]
        for name, value in (headers or {}).items():
            cmd += ["-H", f"{name}: {value}"]
        out = subprocess.run(pinned([*cmd, url], LOAD_CPU), capture_output=True, text=True, check=True,  # noqa: S603  fixed wrk argv, no shell
                             timeout=seconds + 60).stdout  # fmt: skip
    finally:
        Path(lua.name).unlink(missing_ok=True)
    line = next(line for line in reversed(out.splitlines()) if line.startswith("{"))
    raw = json.loads(line)
    seconds_run = raw["duration_us"] / 1e6
    return {
        "rps": round(raw["requests"] / seconds_run, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 3),
        "p90_ms": round(raw["p90_us"] / 1000, 3),
        "p99_ms": round(raw["p99_us"] / 1000, 3),
        "max_ms": round(raw["max_us"] / 1000, 3),
        "requests": raw["requests"],
        "errors": raw["errors"],
        "non_2xx": raw["non_2xx"],
        "seconds": round(seconds_run, 1),
        "connections": connections,
    }


def summarise(runs: list[dict], keys=("rps", "p50_ms", "p99_ms")) -> dict:
    """Median of the runs with the spread (min, max) of each key, plus every run as measured."""
    out = {}
    for key in keys:
        values = [r[key] for r in runs]
        out[key] = {"median": round(statistics.median(values), 3), "min": min(values), "max": max(values)}
    out["errors"] = sum(r["errors"] for r in runs)
    out["runs"] = runs
    return out


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
