"""Browser pages: registry list, view detail (schema, statistics, freshness), ingest, lookup tester,
entities, training sets. Thin: a selector or one service per request; capabilities come from
`apps.core.permissions` (templates read ``can_add.<model>`` from the context processor)."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core import sharing
from apps.core.errors import NotFound
from apps.core.forms import apply_validation_error
from apps.core.pages import page_requires
from apps.core.permissions import can, can_view_pii
from apps.features import selectors, services, stats, training_sets
from apps.features.forms import (
    SHARE_GRANTS,
    EntityForm,
    FeatureViewForm,
    IngestForm,
    LookupForm,
    MaterializeForm,
    RetentionForm,
    TrainingSetForm,
)
from apps.features.models import Entity, FeatureView, TrainingSet
from apps.training.engine.templates import TEMPLATES

PAGE_SIZE = 25
LIST_FILTERS = tuple(selectors.VIEW_FILTERS)


def view_list(request):
    filters = {name: request.GET.get(name, "") for name in LIST_FILTERS}
    page = Paginator(selectors.feature_views_visible(request.user, filters), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "values": request.GET,
        "query": query.urlencode(),
        "entities": selectors.entities_visible(request.user, {}),
    }
    return render(request, "features/view_list.html", context)


@page_requires("add", Entity)
def entity_create(request):
    form = EntityForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            services.entity_create(
                actor=request.user, name=d["name"], join_keys=d["join_keys"], description=d["description"]
            )
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, f"Entity {d['name']} registered. Now define a feature view on it.")
            return redirect("features:entity-detail", name=d["name"])
    return render(request, "features/form.html", {"form": form, "title": "Register an entity"})


def entity_list(request):
    """The entities the user can read, each with the feature views on it that the user can read."""
    entities = selectors.entities_visible(request.user, {}, with_views=True)
    page = Paginator(entities, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "features/entity_list.html", {"page": page})


def entity_detail(request, name, *, share_form=None, status=200):
    entity = selectors.entity_for(request.user, name)
    views = selectors.feature_views_visible(request.user, {"entity": entity.name})
    context = {
        "entity": entity,
        "views": Paginator(views, PAGE_SIZE).get_page(request.GET.get("page")),
        "sharing": sharing.sharing_context(
            entity,
            request.user,
            form=share_form,
            share_url=reverse("features:entity-share", args=[entity.name]),
            unshare_url=reverse("features:entity-unshare", args=[entity.name]),
        ),
    }
    return render(request, "features/entity_detail.html", context, status=status)


@page_requires("add", FeatureView)
def view_create(request):
    entities = list(selectors.entities_visible(request.user, {}))
    form = FeatureViewForm(request.POST or None, entities=entities, initial={"entity": request.GET.get("entity")})
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            entity = selectors.entity_for(request.user, d["entity"])
            view = services.feature_view_create(
                actor=request.user, name=d["name"], entity=entity, features=d["features"], description=d["description"],
                tags=d["tags"], region=d["region"], ttl_seconds=d["ttl_seconds"], source=d["source"],
                retention_days=d.get("retention_days"),
            )  # fmt: skip
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, f"Feature view {view.name} created. Ingest its first data.")
            return redirect("features:view-ingest", name=view.name)
    return render(request, "features/form.html", {"form": form, "title": "New feature view"})


def view_detail(request, name, *, share_form=None, status=200):
    view = selectors.feature_view_for(request.user, name)
    can_change = can(request.user, "change", view)
    pii_ok = can_view_pii(request.user, view)
    statistics = stats.public(view.statistics, set(view.pii_features))  # PII: counts only, for everyone
    preview = services.feature_view_preview(view=view, actor=request.user, request=request)
    context = {
        "view": view,
        "features": view.features,
        "statistics": statistics,
        "stats_json": statistics,
        "pii_ok": pii_ok,
        "can_change": can_change,
        "sharing": sharing.sharing_context(
            view,
            request.user,
            can_change=can_change,
            grants=SHARE_GRANTS,
            form=share_form,
            share_url=reverse("features:view-share", args=[view.name]),
            unshare_url=reverse("features:view-unshare", args=[view.name]),
        ),
        "jobs": selectors.materializations_of(view),
        "versions": selectors.versions_of(view, limit=20),
        "partitions": view.partitions.filter(version=view.version).count(),
        "preview_columns": preview.columns,
        "preview_rows": preview.rows,
        "residency_error": preview.refused,
        "materialize_form": MaterializeForm(),
        "retention_form": RetentionForm(initial={"retention_days": view.retention_days}),
    }
    return render(request, "features/view_detail.html", context, status=status)


def view_ingest(request, name):
    view = selectors.feature_view_for(request.user, name, action="change")
    form = IngestForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data.get("file")
        data = upload.read() if upload else form.cleaned_data["rows"]
        fmt = "parquet" if upload and upload.name.lower().endswith(".parquet") else None
        try:
            result = services.feature_view_ingest(view=view, actor=request.user, data=data, fmt=fmt, request=request)
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, f"Ingested {result['rows']} rows into {view.name} v{result['version']}.")
            return redirect("features:view-detail", name=view.name)
    return render(request, "features/ingest.html", {"form": form, "view": view})


def view_materialize(request, name):
    view = selectors.feature_view_for(request.user, name)
    form = MaterializeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.feature_view_materialize(
                view=view, actor=request.user, start=form.cleaned_data["start"], end=form.cleaned_data["end"]
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Materialization job {job.pk} queued on {job.queue}; progress shows below.")
    elif request.method == "POST":
        messages.error(request, "Give a start and an end time for the materialization.")
    return redirect("features:view-detail", name=view.name)


@require_POST
def materialization_cancel(request, name, pk):
    """Cancel a queued or running materialization job (owner and editors of the view)."""
    job = selectors.materialization_for(request.user, name, pk)
    job = services.materialization_cancel(job=job, actor=request.user)
    if job.state == job.State.CANCELLED:
        messages.success(request, f"Materialization job {job.pk} cancelled.")
    else:
        messages.info(request, f"Materialization job {job.pk} stops at its next chunk.")
    return redirect("features:view-detail", name=name)


@require_POST
def view_retention(request, name):
    """Set or clear the view's retention period (audited as a view change)."""
    view = selectors.feature_view_for(request.user, name)
    form = RetentionForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return redirect("features:view-detail", name=view.name)
    days = form.cleaned_data["retention_days"]
    try:
        services.feature_view_update(view=view, actor=request.user, retention_days=days)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        kept = (
            f"data older than {days} day{'s' if days != 1 else ''} is deleted daily" if days else "data is kept forever"
        )
        messages.success(request, f"Retention saved: {kept}.")
    return redirect("features:view-detail", name=view.name)


@require_POST
def view_apply_retention(request, name):
    """Delete the view's data past its retention now instead of at the next daily sweep."""
    view = selectors.feature_view_for(request.user, name)
    try:
        result = services.feature_view_apply_retention(view=view, actor=request.user, request=request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            f"Retention applied: {result['rows']} offline rows in {result['partitions']} files and "
            f"{result['online_keys']} online keys older than {result['cutoff'][:10]} deleted.",
        )
    return redirect("features:view-detail", name=view.name)


def lookup(request):
    form = LookupForm(request.POST or None, initial={"features": request.GET.get("features", "")})
    result = None
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            result = services.online_read(
                actor=request.user, features=d["features"], entities=d["entities"], request=request
            )
        except ValidationError as exc:
            apply_validation_error(form, exc)
        except NotFound as exc:  # the form names the view: an unknown or invisible one is an input error here
            form.add_error("features", str(exc))
    table = []
    if result:
        n = len(next(iter(result["entities"].values())))
        for i in range(n):
            key = "|".join(str(result["entities"][k][i]) for k in result["entities"])
            cells = [
                (result["results"][f]["values"][i], result["results"][f]["statuses"][i]) for f in result["features"]
            ]
            table.append((key, cells))
    context = {"form": form, "result": result, "table": table,
               "raw": json.dumps(result, indent=2, default=str) if result else ""}  # fmt: skip
    return render(request, "features/lookup.html", context)


@page_requires("add", TrainingSet, on_method="POST")
def training_set_list(request):
    """Training sets the user can read, and a form that builds one (point-in-time join)."""
    form = TrainingSetForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        built = _build_training_set(request, form)
        if built is not None:
            messages.success(
                request, f"Training set {built.name} built: {built.row_count:,} rows. Train a model on it below."
            )
            return redirect("features:training-set-detail", pk=built.pk)
    sets = selectors.training_sets_visible(request.user, {})
    page = Paginator(sets, PAGE_SIZE).get_page(request.GET.get("page"))
    views = selectors.feature_views_visible(request.user, {})[:200]
    context = {"page": page, "form": form, "feature_refs": [f"{v.name}:{f['name']}" for v in views for f in v.features]}
    return render(request, "features/training_set_list.html", context)


def _build_training_set(request, form) -> TrainingSet | None:
    d = form.cleaned_data
    fmt = "parquet" if d["file"].name.lower().endswith(".parquet") else None
    try:
        return training_sets.training_set_create(
            actor=request.user, name=d["name"], features=d["features"], entity_table=d["file"].read(), fmt=fmt,
            request=request,
        )  # fmt: skip
    except ValidationError as exc:
        apply_validation_error(form, exc)
    return None


def training_set_detail(request, pk, *, share_form=None, status=200):
    ts = selectors.training_set_for(request.user, pk)
    trainable = [t for t in TEMPLATES.values() if t.input_shape is None]  # tabular recipes take a training set
    context = {
        "ts": ts,
        "templates": trainable,
        "sharing": sharing.sharing_context(
            ts,
            request.user,
            form=share_form,
            share_url=reverse("features:training-set-share", args=[ts.pk]),
            unshare_url=reverse("features:training-set-unshare", args=[ts.pk]),
        ),
    }
    return render(request, "features/training_set_detail.html", context, status=status)


entity_share, entity_unshare = sharing.share_page_views(
    lookup=selectors.entity_for,
    detail_view=entity_detail,
    detail_url="features:entity-detail",
    key="name",
)


view_share, view_unshare = sharing.share_page_views(
    lookup=selectors.feature_view_for,
    detail_view=view_detail,
    detail_url="features:view-detail",
    key="name",
    grants=SHARE_GRANTS,
)


training_set_share, training_set_unshare = sharing.share_page_views(
    lookup=selectors.training_set_for,
    detail_view=training_set_detail,
    detail_url="features:training-set-detail",
    key="pk",
)
