from __future__ import annotations

import csv

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from apps.core.audit import chain_status
from apps.core.health import health_report
from apps.core.selectors import ACTIONS, AUDIT_FILTERS, audit_csv_rows, audit_entries_visible, audit_verify
from portal.discovery import portal_app_modules


@login_not_required
def favicon(request):
    """Browsers ask for /favicon.ico on every page; answer with the portal's icon, cached a day."""
    response = FileResponse(
        (settings.BASE_DIR / "static" / "portal" / "favicon.ico").open("rb"), content_type="image/x-icon"
    )
    response["Cache-Control"] = "public, max-age=86400"
    return response


@login_not_required
@never_cache
def healthz(request):
    report = health_report()
    return JsonResponse(report, status=200 if report["status"] == "ok" else 503)


def home(request):
    cards = []
    for _label, module in portal_app_modules("dashboard"):
        cards.extend(module.cards(request.user))
    return render(request, "core/home.html", {"cards": cards})


class _Echo:
    def write(self, value):
        return value


def audit(request):
    error = None
    try:
        entries = audit_entries_visible(request.user, request.GET)
    except ValidationError as exc:
        error = " ".join(exc.messages)
        entries = audit_entries_visible(request.user, {})
    if request.GET.get("format") == "csv" and error is None:
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse((writer.writerow(r) for r in audit_csv_rows(entries)), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
        return response
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    # The banner: the last verified state plus what is new, or a full walk on "Verify hash chain".
    chain = audit_verify(actor=request.user) if request.GET.get("verify") else chain_status()
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("verify", None)  # paging on does not repeat the full walk
    return render(
        request,
        "core/audit.html",
        {
            "page": page,
            "filters": AUDIT_FILTERS,
            "actions": ACTIONS,
            "values": request.GET,
            "error": error,
            "chain": chain,
            "chain_full": bool(request.GET.get("verify")),
            "query": query.urlencode(),
        },
    )


@login_not_required
def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return render(request, "404.html", status=404)


@login_not_required
def forbidden(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": str(exception) if exception else "You do not have permission to do this."}, status=403
        )
    return render(request, "403.html", {"exception": exception}, status=403)


@login_not_required
def bad_request(request, exception=None):
    if isinstance(exception, RequestDataTooBig):
        message = "The request body is larger than the portal accepts; send less, or upload a file."
        if request.path.startswith("/api/"):
            return JsonResponse({"detail": message}, status=413)
        return render(request, "error.html", {"title": "Too large", "message": message}, status=413)
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "The request could not be understood."}, status=400)
    return render(
        request, "error.html", {"title": "Bad request", "message": "The request could not be understood."}, status=400
    )


@login_not_required
def csrf_failure(request, reason=""):
    """A missing or wrong CSRF token: JSON on the API (session callers must send X-CSRFToken; token
    callers are exempt), a page that says what to do elsewhere."""
    message = "The form expired or was sent from another site; reload the page and try again."
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": f"CSRF check failed ({reason}). Send the X-CSRFToken header or use a token."}, status=403
        )
    return render(request, "403.html", {"exception": message}, status=403)


@login_not_required
def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal error; it has been logged."}, status=500)
    return HttpResponse(render(request, "500.html").content, status=500)
