"""The notifications page: the signed-in user's own list, mark one or all read."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.notifications import selectors, services

PAGE_SIZE = 25


def notification_list(request):
    unread = True if request.GET.get("unread") in ("1", "true") else None
    qs = selectors.notifications_of(request.user, unread=unread)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"page": page, "unread_only": bool(unread), "unread_total": selectors.unread_count(request.user)}
    return render(request, "notifications/list.html", context)


@require_POST
def notification_open(request, pk):
    """Mark read, then go where the notification points (a portal path only)."""
    notification = selectors.notification_for(request.user, pk)
    services.notification_read(actor=request.user, notification=notification)
    target = notification.url
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("notifications:list")


@require_POST
def notification_read_all(request):
    services.notifications_read_all(actor=request.user)
    return redirect("notifications:list")
