"""The alert inbox and one alert's page, with its acknowledge, resolve and assign forms.

Thin: `alert_for` reads (404 for strangers, 403 for viewers on an action), the alert services
write and check permission. A Conflict (acknowledging a resolved alert) becomes the portal's 409
page with the service's message (`DomainErrorMiddleware`); an assignee the service refuses comes
back on the form.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.core.forms import apply_validation_error
from apps.monitoring import forms
from apps.monitoring.page_selectors import alerts_inbox, may_act_on
from apps.monitoring.selectors import alert_for, alert_history
from apps.monitoring.services.alerts import alert_acknowledge, alert_assign, alert_resolve

PAGE_SIZE = 25


def alert_list(request):
    form = forms.AlertFiltersForm(request.GET)
    page = Paginator(alerts_inbox(request.user, form.filters()), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"page": page, "form": form, "query": query.urlencode()}
    return render(request, "monitoring/alert_list.html", context)


def _detail(request, alert, *, assign_form=None, status: int = 200):
    can_act = may_act_on(request.user, alert)
    context = {
        "alert": alert,
        "history": alert_history(alert),
        "can_act": can_act,
        "note_form": forms.AlertNoteForm() if can_act else None,
        "assign_form": (
            assign_form or forms.AlertAssignForm(initial={"assignee": getattr(alert.assignee, "username", "")})
        )
        if can_act
        else None,
    }
    return render(request, "monitoring/alert_detail.html", context, status=status)


def alert_detail(request, pk):
    return _detail(request, alert_for(request.user, pk))


def _note(request) -> str:
    form = forms.AlertNoteForm(request.POST)
    return form.cleaned_data["note"] if form.is_valid() else ""


@require_POST
def alert_acknowledge_page(request, pk):
    alert = alert_acknowledge(alert=alert_for(request.user, pk, "change"), actor=request.user, note=_note(request))
    messages.success(request, f"Acknowledged; assigned to {alert.assignee.username if alert.assignee else 'nobody'}.")
    return redirect("monitoring:alert-detail", pk=pk)


@require_POST
def alert_resolve_page(request, pk):
    alert_resolve(alert=alert_for(request.user, pk, "change"), actor=request.user, note=_note(request))
    messages.success(request, "Resolved. A new occurrence opens a new alert.")
    return redirect("monitoring:alert-detail", pk=pk)


@require_POST
def alert_assign_page(request, pk):
    alert = alert_for(request.user, pk, "change")
    form = forms.AlertAssignForm(request.POST)
    if form.is_valid():
        try:
            alert = alert_assign(alert=alert, actor=request.user, assignee=form.cleaned_data["assignee"] or None)
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, f"Assigned to {alert.assignee.username if alert.assignee else 'nobody'}.")
            return redirect("monitoring:alert-detail", pk=pk)
    return _detail(request, alert, assign_form=form, status=400)
