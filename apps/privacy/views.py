"""Pages of data-subject requests (platform admins; everyone else gets the 404 page).

One page finds a key's data (the access report) and queues its erasure; an erasure's page shows
its progress (htmx polls the state block while it runs) and then its certificate, which downloads
as JSON. Keys travel in POST bodies only, never in URLs (those end up in access logs).
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render

from apps.core.forms import apply_validation_error
from apps.privacy import selectors, services
from apps.privacy.forms import EraseForm, SubjectForm

PAGE_SIZE = 25


def requests_page(request):
    """GET: the forms and past erasures. POST `action=access`: the report; `action=erase`: queue it."""
    erasures = selectors.erasures_visible(request.user)
    action = request.POST.get("action") if request.method == "POST" else None
    access_form = SubjectForm(request.POST if action == "access" else None, prefix="access")
    erase_form = EraseForm(request.POST if action == "erase" else None, prefix="erase")
    report = None
    if action == "access" and access_form.is_valid():
        try:
            report = services.subject_access(actor=request.user, **_subject(access_form), request=request)
        except ValidationError as exc:
            apply_validation_error(access_form, exc)
        else:
            erase_form = EraseForm(initial=access_form.cleaned_data, prefix="erase")
    if action == "erase" and erase_form.is_valid():
        try:
            certificate = services.erasure_request(actor=request.user, **_subject(erase_form), request=request)
        except ValidationError as exc:
            apply_validation_error(erase_form, exc)
        else:
            messages.success(request, f"Erasure {certificate.pk} queued; this page shows its progress.")
            return redirect("privacy:erasure-detail", pk=certificate.pk)
    page = Paginator(erasures, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"access_form": access_form, "erase_form": erase_form, "report": report, "page": page}
    return render(request, "privacy/requests.html", context)


def _subject(form) -> dict:
    return {"key": form.cleaned_data["key"], "entity": form.cleaned_data["entity"] or None}


def erasure_detail(request, pk):
    """An erasure's progress while it runs (the state block polls), then its certificate."""
    certificate = selectors.erasure_for(request.user, pk)
    document = services.certificate_document(certificate)
    context = {
        "certificate": certificate,
        "document": document,
        "running": certificate.state not in certificate.FINAL,
        "progress_percent": round(certificate.progress * 100),
    }
    return render(request, "privacy/erasure_detail.html", context)


def erasure_certificate(request, pk):
    """The certificate as a JSON file (audited)."""
    certificate = selectors.erasure_for(request.user, pk)
    body = services.certificate_download(actor=request.user, certificate=certificate, request=request)
    response = HttpResponse(body, content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="erasure-certificate-{certificate.pk}.json"'
    return response
