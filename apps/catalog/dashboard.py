from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from apps.catalog.models import ModelVersion, RegisteredModel
from apps.core.permissions import restrict


def cards(user) -> list[dict]:
    visible = restrict(user, "view", RegisteredModel.objects.filter(archived_at__isnull=True))
    week = ModelVersion.objects.filter(
        model__in=visible.values("pk"), created_at__gte=timezone.now() - timedelta(days=7)
    )
    return [
        {"title": "Models", "value": visible.count(), "detail": "visible to you", "url": reverse("catalog:model-list")},
        {"title": "Versions this week", "value": week.count(), "detail": "registered in the last 7 days",
         "url": reverse("catalog:model-list") + "?sort=updated"},
    ]  # fmt: skip
