from django.apps import apps
from django.conf import settings

from apps.core.permissions import can_use_perm, capabilities


def portal(request):
    """Navigation built from what each installed app declares, filtered by the user's roles, and
    the user's capabilities (``can_add.<model>``) from the one decision point."""
    user = getattr(request, "user", None)
    items = []
    if user is not None and user.is_authenticated:
        for config in apps.get_app_configs():
            for label, url_name, perm in getattr(config, "nav_items", []):
                if can_use_perm(user, perm):
                    items.append({"label": label, "url_name": url_name})
    return {"portal_nav": items, "TIME_ZONE": settings.TIME_ZONE, **capabilities(user)}
