from functools import lru_cache

from django.apps import apps
from django.conf import settings
from django.urls import NoReverseMatch, get_script_prefix, reverse

from apps.core.permissions import can_use_perm, capabilities


@lru_cache(maxsize=8)
def _nav_entries(script_prefix: str) -> tuple[tuple[str, str, str | None], ...]:
    """Every app's navigation entries as (label, url, permission): reversed once per process."""
    entries = []
    for config in apps.get_app_configs():
        for label, url_name, perm in getattr(config, "nav_items", []):
            try:
                entries.append((label, reverse(url_name), perm))
            except NoReverseMatch:  # an app whose routes are not mounted in this configuration
                continue
    return tuple(entries)


def portal(request):
    """Navigation built from what each installed app declares, filtered by the user's roles, and
    the user's capabilities (``can_add.<model>``) from the one decision point."""
    user = getattr(request, "user", None)
    items = []
    if user is not None and user.is_authenticated:
        items = [
            {"label": label, "url": url, "active": request.path == url}
            for label, url, perm in _nav_entries(get_script_prefix())
            if can_use_perm(user, perm)
        ]
    return {"portal_nav": items, "TIME_ZONE": settings.TIME_ZONE, **capabilities(user)}
