"""Browser pages of serving endpoints: list, create, detail (routes, traffic chart, sharing), edit,
share/unshare and a "try it" form that calls predict as the signed-in user.

Thin: selectors read, services write and check permissions. Domain errors are not caught here
(NotFound/Forbidden become the 404/403 pages, `DomainErrorMiddleware` renders 409); a form view
catches Django's `ValidationError` and shows it on the form.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse

from apps.catalog.selectors import models_visible
from apps.core import sharing
from apps.core.forms import apply_validation_error
from apps.core.pages import page_requires
from apps.core.permissions import can
from apps.serving import forms
from apps.serving.inference.predict import predict_call
from apps.serving.models import Endpoint
from apps.serving.selectors import (
    endpoint_for,
    endpoints_visible,
    requests_last_hour,
    traffic_of,
    with_serving_versions,
)
from apps.serving.services.endpoints import endpoint_create as create_endpoint
from apps.serving.services.endpoints import endpoint_update, route_summary

PAGE_SIZE = 25
MODEL_CHOICES = 200  # model names offered in the route rows' datalist


def endpoint_list(request):
    filters = forms.EndpointFiltersForm(request.GET).filters()
    page = Paginator(endpoints_visible(request.user, filters), PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = with_serving_versions(page.object_list)
    traffic = requests_last_hour(page.object_list)
    for endpoint in page.object_list:
        endpoint.requests_last_hour = traffic.get(endpoint.pk, 0)
    query = request.GET.copy()
    query.pop("page", None)
    context = {"page": page, "values": request.GET, "query": query.urlencode()}
    return render(request, "serving/endpoint_list.html", context)


def _model_names(user) -> list[str]:
    return list(models_visible(user, {}).values_list("name", flat=True)[:MODEL_CHOICES])


def _form_page(request, *, form, formset, title: str, endpoint=None, status: int = 200):
    context = {
        "form": form, "formset": formset, "title": title, "endpoint": endpoint,
        "model_names": _model_names(request.user),
    }  # fmt: skip
    return render(request, "serving/endpoint_form.html", context, status=status)


@page_requires("add", Endpoint)
def endpoint_create(request):
    initial = {"region": "default", "log_sample_rate": settings.SERVING_LOG_SAMPLE_RATE}
    form = forms.EndpointForm(request.POST or None, user=request.user, initial=initial)
    formset = forms.route_formset(request.POST or None)
    if request.method == "POST" and form.is_valid() & formset.is_valid():
        data = form.cleaned_data
        try:
            endpoint = create_endpoint(
                actor=request.user, name=data["name"], description=data["description"], region=data["region"],
                log_sample_rate=data["log_sample_rate"], team=data["team"].slug if data["team"] else None,
                routes=forms.routes_from(formset), rollout=form.rollout(),
            )  # fmt: skip
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, f"Endpoint {endpoint.name} created. Try it below or call it with a token.")
            return redirect("serving:endpoint-detail", name=endpoint.name)
    status = 400 if request.method == "POST" else 200
    return _form_page(request, form=form, formset=formset, title="New endpoint", status=status)


def endpoint_edit(request, name):
    endpoint = endpoint_for(request.user, name, "change")
    initial = {"description": endpoint.description, "log_sample_rate": endpoint.log_sample_rate}
    initial |= forms.EndpointForm.ramp_initial(endpoint.rollout)
    form = forms.EndpointForm(request.POST or None, editing=True, initial=initial)
    current = [{**route_summary(r), "alias": r.alias} for r in endpoint.routes.all()]
    formset = forms.route_formset(request.POST or None, routes=current)
    if request.method == "POST" and form.is_valid() & formset.is_valid():
        try:
            endpoint_update(
                actor=request.user, endpoint=endpoint, routes=forms.routes_from(formset), **form.fields_for_service()
            )
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, "Saved. Routes change for new requests at once.")
            return redirect("serving:endpoint-detail", name=endpoint.name)
    status = 400 if request.method == "POST" else 200
    return _form_page(request, form=form, formset=formset, title=f"Edit {endpoint.name}", endpoint=endpoint,
                      status=status)  # fmt: skip


def _chart(traffic: dict) -> dict:
    """Per route: minutes, requests and p95 latency, for the Plotly chart."""
    series: dict[str, dict] = {}
    for point in traffic["series"]:
        line = series.setdefault(point["route"], {"route": point["route"], "x": [], "requests": [], "p95": []})
        line["x"].append(point["minute"].isoformat())
        line["requests"].append(point["requests"])
        line["p95"].append(point["p95_ms"])
    return {"routes": list(series.values())}


def endpoint_detail(request, name, *, share_form=None, status=200):
    endpoint = with_serving_versions([endpoint_for(request.user, name)])[0]
    traffic = traffic_of(endpoint, 60)
    routes = list(endpoint.routes.all())
    by_route = {t["route"]: t for t in traffic["routes"]}
    for route in routes:
        route.traffic = by_route.get(route.name)
    can_change = can(request.user, "change", endpoint)
    predict_url = request.build_absolute_uri(reverse("api-v1:serving:endpoint-predict", args=[endpoint.name]))
    context = {
        "endpoint": endpoint,
        "routes": routes,
        "traffic": traffic,
        "chart": _chart(traffic),
        "can_change": can_change,
        "curl": (
            f'curl -X POST "{predict_url}" \\\n  -H "Authorization: Token $PORTAL_TOKEN" \\\n'
            f'  -H "Content-Type: application/json" \\\n  -d \'{{"inputs": [[0.1, 0.2, 0.3]], "key": "customer-42"}}\''
        ),
        "sharing": sharing.sharing_context(
            endpoint,
            request.user,
            can_change=can_change,
            form=share_form,
            share_url=reverse("serving:endpoint-share", args=[endpoint.name]),
            unshare_url=reverse("serving:endpoint-unshare", args=[endpoint.name]),
        ),  # fmt: skip
    }
    return render(request, "serving/endpoint_detail.html", context, status=status)


endpoint_share, endpoint_unshare = sharing.share_page_views(
    lookup=endpoint_for, detail_view=endpoint_detail, detail_url="serving:endpoint-detail", key="name"
)


def endpoint_try(request, name):
    """Paste inputs, see the answer: the same predict call as the API, as the signed-in user."""
    endpoint = endpoint_for(request.user, name)
    form = forms.TryForm(request.POST or None)
    answer = None
    if request.method == "POST" and form.is_valid():
        code, body, _headers = predict_call(
            user=request.user, token=None, endpoint_name=endpoint.name, body=form.body()
        )
        answer = {"status": code, "ok": code == 200, "body": json.dumps(body, indent=2, default=str)}
    status = 400 if request.method == "POST" and not form.is_valid() else 200
    return render(request, "serving/endpoint_try.html", {"endpoint": endpoint, "form": form, "answer": answer},
                  status=status)  # fmt: skip
