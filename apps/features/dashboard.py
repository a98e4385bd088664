from django.urls import reverse
from django.utils import timezone

from apps.core.permissions import restrict
from apps.features.models import FeatureView


def cards(user) -> list[dict]:
    visible = restrict(user, "view", FeatureView.objects.all())
    freshest = visible.filter(last_materialized_at__isnull=False).order_by("-last_materialized_at").first()
    detail = "never materialized"
    if freshest is not None:
        minutes = int((timezone.now() - freshest.last_materialized_at).total_seconds() // 60)
        detail = f"{freshest.name}, {minutes} min ago" if minutes < 120 else f"{freshest.name}, {minutes // 60} h ago"
    url = reverse("features:view-list")
    return [
        {"title": "Feature views", "value": visible.count(), "detail": "visible to you", "url": url},
        {"title": "Freshest materialization", "value": freshest.name if freshest else "–", "detail": detail,
         "url": reverse("features:view-detail", args=[freshest.name]) if freshest else url},
    ]  # fmt: skip
