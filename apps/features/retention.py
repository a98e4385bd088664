"""Feature views for `manage.py retention_purge` (apps/core/retention.py): one target per view of this
portal's region with a retention and partitions past it. The daily task is `features.retention_sweep`
(each view on its region's queue); both delete through `services.feature_view_apply_retention`."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, Sum

from apps.core.audit import system_user
from apps.core.retention import Target
from apps.features import offline, services
from apps.features.models import FeatureView, Partition


def retention_targets(*, now: datetime) -> list[Target]:
    views = FeatureView.objects.filter(retention_days__isnull=False, region=offline.process_region())
    found = []
    for view in views.select_related("entity").order_by("name"):
        cutoff = now - timedelta(days=view.retention_days)
        due = Partition.objects.filter(view=view, max_event_at__lt=cutoff).aggregate(n=Count("pk"), rows=Sum("rows"))
        if not due["n"]:
            continue
        found.append(
            Target(
                store="feature views",
                label=f"{view.name} (older than {view.retention_days} days)",
                items=due["rows"] or 0,
                purge=_purge_of(view, now),
                detail={"view": view.pk, "partitions": due["n"], "cutoff": cutoff.isoformat()},
            )
        )
    return found


def _purge_of(view: FeatureView, now: datetime):
    def purge() -> dict:
        result = services.feature_view_apply_retention(view=view, actor=system_user(), scheduled=True, now=now)
        return {k: result[k] for k in ("partitions", "rows", "online_keys")}

    return purge
