"""Browser pages for the catalog. Thin: selectors read, services write and check permissions.

Domain errors are not caught here: NotFound/Forbidden become the 404/403 pages and
`DomainErrorMiddleware` renders 409/413/500; a view with a form catches Django's
`ValidationError` and shows it on the form.
"""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.catalog import forms, selectors, services
from apps.catalog.models import CARD_MIN_CHARS, FRAMEWORKS, RegisteredModel
from apps.core import format as fmt
from apps.core import sharing, vault
from apps.core.forms import apply_validation_error
from apps.core.pages import page_requires
from apps.core.paginator import Paginator
from apps.core.permissions import can, require

PAGE_SIZE = 25


def model_list(request):
    filters = forms.ModelFiltersForm(request.GET).filters()
    rows = selectors.model_rows(request.user, filters)  # a page and its count in one query
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = selectors.with_aliases(list(page.object_list))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "values": request.GET,
        "frameworks": FRAMEWORKS,
        "sorts": [("name", "Name"), ("updated", "Recently updated"), ("created", "Oldest first"),
                  ("-created", "Newest first"), ("versions", "Most versions")],
        "query": query.urlencode(),
    }  # fmt: skip
    return render(request, "catalog/model_list.html", context)


@page_requires("add", RegisteredModel)
def model_create(request):
    form = forms.ModelCreateForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            model = services.model_create(
                actor=request.user,
                name=data["name"],
                description=data["description"],
                tags=data["tags"],
                team=data["team"].slug if data["team"] else None,
                region=data["region"] or "default",
            )
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, f"Model {model.name} registered. Upload its first version.")
            return redirect("catalog:version-upload", name=model.name)
    return render(request, "catalog/form.html", {"form": form, "title": "Register a model", "multipart": False})


def model_detail(request, name, *, share_form=None, status=200):
    model = selectors.model_for(request.user, name)
    versions = list(selectors.versions_of(model)[:200])
    series = selectors.metric_series_of(model)
    metric = request.GET.get("metric") if request.GET.get("metric") in series else next(iter(sorted(series)), None)
    can_change = can(request.user, "change", model)
    context = {
        "model": model,
        "card": model.card,
        "versions": versions,
        "aliases": list(selectors.aliases_of(model)),
        "metric_names": sorted(series),
        "metric": metric,
        "chart": {
            "x": [v for v, _ in series.get(metric, [])],
            "y": [y for _, y in series.get(metric, [])],
            "metric": metric,
        },
        "can_change": can_change,
        "can_delete": can(request.user, "delete", model),
        "sharing": sharing.sharing_context(
            model,
            request.user,
            can_change=can_change,
            form=share_form,
            share_url=reverse("catalog:model-share", args=[model.name]),
            unshare_url=reverse("catalog:model-unshare", args=[model.name]),
        ),
        "alias_form": forms.AliasForm(versions=[v.version for v in versions]) if can_change else None,
        "protected_by_default": sorted(services.PROTECTED_BY_DEFAULT),
        "card_min_chars": CARD_MIN_CHARS,
    }
    return render(request, "catalog/model_detail.html", context, status=status)


def model_edit(request, name):
    model = selectors.model_for(request.user, name, "change")
    initial = {"description": model.description, "tags": ", ".join(model.tags)}
    form = forms.ModelEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.model_update(model=model, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, "Saved.")
            return redirect("catalog:model-detail", name=model.name)
    return render(request, "catalog/form.html", {"form": form, "title": f"Edit {model.name}", "model": model})


def card_edit(request, name):
    model = selectors.model_for(request.user, name, "change")
    form = forms.CardForm(request.POST or None, instance=model.card)
    if request.method == "POST" and form.is_valid():
        data = {f: form.cleaned_data[f] for f in form.Meta.fields}
        card = services.card_update(model=model, actor=request.user, **data)
        messages.success(request, f"Model card saved ({fmt.percent(card.completeness, 0)} complete).")
        return redirect("catalog:model-detail", name=model.name)
    return render(request, "catalog/form.html", {"form": form, "title": f"Model card of {model.name}", "model": model})


@require_POST
def model_archive(request, name):
    model = selectors.model_for(request.user, name, "delete")
    services.model_archive(model=model, actor=request.user)
    messages.info(request, f"{model.name} archived: its versions stay readable; it takes no new versions.")
    return redirect("catalog:model-list")


def version_upload(request, name):
    model = selectors.model_for(request.user, name, "change")
    form = forms.VersionUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        artifact, weights = data["artifact"], data.get("state_dict")
        try:
            version = services.version_register(
                model=model,
                actor=request.user,
                artifact=artifact,
                artifact_size=artifact.size,
                state_dict=weights,
                state_dict_size=weights.size if weights else None,
                description=data["description"],
                tags=data["tags"],
                metrics=data["metrics"],
                lineage=form.lineage(),
                framework=data["framework"],
            )
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, f"Version {version.version} registered and encrypted in the vault.")
            return redirect("catalog:version-detail", name=model.name, version=version.version)
    limit = settings.CATALOG_MAX_ARTIFACT_BYTES
    title = f"Upload a version of {model.name}"
    return render(
        request, "catalog/form.html", {"form": form, "title": title, "model": model, "multipart": True, "limit": limit}
    )


@require_POST
def alias_set(request, name):
    model = selectors.model_for(request.user, name, "change")
    versions = list(model.versions.values_list("version", flat=True))
    form = forms.AliasForm(request.POST, versions=versions)
    if not form.is_valid():
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
        return redirect("catalog:model-detail", name=model.name)
    alias, number = form.cleaned_data["alias"].strip(), form.cleaned_data["version"]
    try:
        if request.POST.get("action") == "delete":
            services.alias_delete(model=model, alias=alias, actor=request.user)
            messages.info(request, f"Alias {alias} removed.")
        else:
            version = model.versions.get(version=number)
            services.alias_move(model=model, alias=alias, version=version, actor=request.user)
            messages.success(request, f"{alias} now points to v{number}.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("catalog:model-detail", name=model.name)


def version_detail(request, name, version):
    found = selectors.version_for(request.user, name, version)
    can_change = can(request.user, "change", found.model)
    form = None
    if can_change:
        initial = {"description": found.description, "tags": ", ".join(found.tags), "metrics": _json(found.metrics)}
        form = forms.VersionEditForm(request.POST or None, initial=initial)
        if request.method == "POST" and form.is_valid():
            try:
                services.version_update(version=found, actor=request.user, changes=form.cleaned_data)
            except ValidationError as exc:
                apply_validation_error(form, exc)
            else:
                messages.success(request, "Saved.")
                return redirect("catalog:version-detail", name=name, version=found.version)
    elif request.method == "POST":
        require(request.user, "change", found.model)  # Forbidden: the 403 page
    context = {
        "version": found,
        "model": found.model,
        "form": form,
        "run_link": reverse("experiments:run-detail", args=[found.run_id]) if found.run_id.isdigit() else None,
        "aliases": sorted(a.name for a in found.aliases.all()),
        "parity": parity_display(found.onnx_parity),
    }
    return render(request, "catalog/version_detail.html", context)


def version_download(request, name, version):
    found = selectors.version_for(request.user, name, version)
    which = "state_dict" if request.GET.get("which") == "state_dict" else "artifact"
    chunks, size, filename = services.artifact_open(version=found, actor=request.user, which=which, request=request)
    return vault.streaming_response(chunks, request=request, size=size, filename=filename)


def _scientific(value: float, digits: int) -> str:
    """4.77e-06 with `digits` decimals; with none, the short form the job page's limit reads as (1e-4)."""
    text = f"{value:.{digits}e}"
    if digits:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


def parity_display(parity: dict) -> dict | None:
    """The version's ONNX parity check as the page shows it, or None when none was recorded:
    {"diff": "4.77e-06", "limit": "1e-4", "exporter": "dynamo", "batch_sizes": "1, 3, 8"}."""
    if not parity or "max_abs_diff" not in parity or "tolerance" not in parity:
        return None
    return {
        "diff": _scientific(parity["max_abs_diff"], 2),
        "limit": _scientific(parity["tolerance"], 0),
        "passed": parity["max_abs_diff"] <= parity.get("threshold", parity["tolerance"]),
        "exporter": parity.get("exporter") or "",
        "batch_sizes": ", ".join(str(n) for n in parity.get("batch_sizes_checked") or []),
    }


def _json(value) -> str:
    return json.dumps(value, indent=None) if value else ""


model_share, model_unshare = sharing.share_page_views(
    lookup=selectors.model_for, detail_view=model_detail, detail_url="catalog:model-detail", key="name"
)
