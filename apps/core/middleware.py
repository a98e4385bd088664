from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired

# The API answers 401 JSON through DRF; the admin has its own login; static files and the
# health probe are public by design (API.md).
PUBLIC_PREFIXES = ("/api/", "/admin/", "/static/", "/healthz")


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Deny by default: every browser page needs a signed-in user unless marked otherwise."""

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path.startswith(PUBLIC_PREFIXES):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)
