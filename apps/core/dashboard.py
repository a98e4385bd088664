from django.urls import reverse

from apps.core.selectors import can_read_audit
from apps.core.workers import workers_by_queue


def cards(user) -> list[dict]:
    try:
        queues = workers_by_queue()
        detail = ", ".join(f"{q}: {n}" for q, n in sorted(queues.items())) or "no worker online"
    except Exception:  # the home page must render even when the broker is down
        queues, detail = {}, "broker unreachable"
    result = [{"title": "Worker slots online", "value": sum(queues.values()), "detail": detail, "url": None}]
    if can_read_audit(user):
        from apps.core.models import AuditEntry

        result.append(
            {
                "title": "Audit entries",
                "value": AuditEntry.objects.count(),
                "detail": "tamper-evident trail",
                "url": reverse("core:audit"),
            }
        )
    return result
