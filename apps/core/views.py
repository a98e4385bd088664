from __future__ import annotations

import csv

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from rest_framework.exceptions import ValidationError

from apps.core.audit import verify_chain
from apps.core.health import health_report
from apps.core.selectors import ACTIONS, AUDIT_FILTERS, audit_csv_rows, audit_entries, can_read_audit
from portal.discovery import portal_app_modules


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
    if not can_read_audit(request.user):
        raise PermissionDenied("Only platform admins and auditors may read the audit trail.")
    error = None
    try:
        entries = audit_entries(request.GET)
    except ValidationError as exc:
        error = exc.detail.get("detail") if isinstance(exc.detail, dict) else str(exc.detail)
        entries = audit_entries({})
    if request.GET.get("format") == "csv" and error is None:
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse((writer.writerow(r) for r in audit_csv_rows(entries)), content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="audit-trail.csv"'
        return response
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    chain = verify_chain() if request.GET.get("verify") else None
    query = request.GET.copy()
    query.pop("page", None)
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
            "query": query.urlencode(),
        },
    )


@login_not_required
def not_found(request, exception=None):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return render(request, "404.html", status=404)


@login_not_required
def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal error; it has been logged."}, status=500)
    return HttpResponse(render(request, "500.html").content, status=500)
