"""The worker watch: a worker whose heartbeat stopped is reported (critical when its queue is left
with no worker at all), and the alert resolves itself when it comes back.

Workers announce themselves with a heartbeat key in Redis (apps/core/workers.py). The watch keeps
the workers it has seen, with when, in one Redis hash, so a worker that never comes back is
reported once, not every minute.
"""

from __future__ import annotations

import json
import time

from django.conf import settings

from apps.core.workers import redis_client, workers_online
from apps.monitoring.models import Alert
from apps.monitoring.services.alerts import alert_raise, alert_resolve_key

SEEN_KEY = "portal:monitoring:workers-seen"


def workers_watch() -> dict:
    client = redis_client()
    now = time.time()
    online = {w["hostname"]: w for w in workers_online() if w.get("hostname")}
    serving: dict[str, int] = {}
    for worker in online.values():
        for queue in worker.get("queues", []):
            serving[queue] = serving.get(queue, 0) + 1
    seen = {k.decode() if isinstance(k, bytes) else k: json.loads(v) for k, v in client.hgetall(SEEN_KEY).items()}
    back, gone = [], []
    pipe = client.pipeline()
    for name, worker in online.items():
        pipe.hset(SEEN_KEY, name, json.dumps({"queues": worker.get("queues", []), "at": now}))
        if name in seen and seen[name].get("reported"):
            back.append(name)
    for name, entry in seen.items():
        if name in online or entry.get("reported") or now - entry.get("at", now) < settings.MONITORING_WORKER_OFFLINE_S:
            continue
        gone.append((name, entry))
        pipe.hset(SEEN_KEY, name, json.dumps({**entry, "reported": True}))
    pipe.execute()
    for name in back:
        alert_resolve_key(dedup_key=f"worker_offline:{name}", note="The worker is back online.")
    for name, entry in gone:
        orphaned = [q for q in entry.get("queues", []) if not serving.get(q)]
        alert_raise(
            kind=Alert.Kind.WORKER_OFFLINE, dedup_key=f"worker_offline:{name}",
            severity=Alert.Severity.CRITICAL if orphaned else Alert.Severity.WARNING,
            title=f"Worker {name} is offline" + (f"; no worker left on {', '.join(orphaned)}" if orphaned else ""),
            description=f"No heartbeat for over {settings.MONITORING_WORKER_OFFLINE_S} s. It consumed "
            f"{', '.join(entry.get('queues', [])) or 'no queues'}. Jobs on a queue without workers wait.",
            data={"worker": name, "queues": entry.get("queues", []), "orphaned": orphaned}, object_url="/healthz",
        )  # fmt: skip
    return {"online": len(online), "offline": [n for n, _ in gone], "back": back}
