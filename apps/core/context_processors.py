from django.apps import apps


def portal(request):
    """Navigation built from what each installed app declares, filtered by the user's roles."""
    user = getattr(request, "user", None)
    items = []
    if user is not None and user.is_authenticated:
        for config in apps.get_app_configs():
            for label, url_name, perm in getattr(config, "nav_items", []):
                if perm is None or user.has_perm(perm):
                    items.append({"label": label, "url_name": url_name})
    return {"portal_nav": items}
