"""Browser pages: registry list, view detail (schema, statistics, freshness), ingest, lookup tester."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from apps.core import sharing
from apps.core.forms import apply_validation_error
from apps.core.permissions import can, require
from apps.features import offline, selectors, services, stats, training_sets
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
from apps.features.reader import MASK, BadRequest

PAGE_SIZE = 25
PREVIEW_ROWS = 20


def _can_pii(user, view) -> bool:
    return user.has_perm("features.view_pii") or user.has_perm("view_pii", view)


def view_list(request):
    qs = selectors.views_visible(request.user, request.GET)
    page = Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "page": page,
        "values": request.GET,
        "query": query.urlencode(),
        "can_create": request.user.has_perm("features.add_featureview"),
        "can_create_entity": request.user.has_perm("features.add_entity"),
        "entities": selectors.entities_visible(request.user),
    }
    return render(request, "features/view_list.html", context)


def entity_create(request):
    require(request.user, "add", Entity)
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
            return redirect("features:view-create")
    return render(request, "features/form.html", {"form": form, "title": "Register an entity"})


def view_create(request):
    require(request.user, "add", FeatureView)
    entities = list(selectors.entities_visible(request.user))
    form = FeatureViewForm(request.POST or None, entities=entities)
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


def _preview(request, view) -> tuple[list, list, str]:
    """Newest rows from the offline store, PII masked for users without view_pii."""
    try:
        offline.check_residency(view.region, actor=request.user, obj=view, action="preview", request=request)
    except PermissionDenied as exc:
        return [], [], str(exc)
    parts = list(offline.partitions_of(view).order_by("-date", "-id")[:3])
    if not parts:
        return [], [], ""
    table = offline.read_view(view, start=min(p.min_event_at for p in parts))
    import pyarrow.compute as pc

    table = table.take(pc.sort_indices(table, [("event_timestamp", "descending")])[:PREVIEW_ROWS])
    columns = table.column_names
    hidden = set() if _can_pii(request.user, view) else set(view.pii_features)
    rows = [[MASK if c in hidden and r[c] is not None else r[c] for c in columns] for r in table.to_pylist()]
    if not hidden and view.pii_features:
        from apps.core.audit import audit_event

        audit_event(
            actor=request.user, event="features.pii_preview", obj=view, data={"rows": len(rows)}, request=request
        )
    return columns, rows, ""


def view_detail(request, name, *, share_form=None, status=200):
    view = selectors.view_for(request.user, name)
    can_change = can(request.user, "change", view)
    pii_ok = _can_pii(request.user, view)
    statistics = view.statistics if pii_ok else stats.masked(view.statistics, set(view.pii_features))
    columns, rows, residency_error = _preview(request, view)
    context = {
        "view": view,
        "features": view.features,
        "statistics": statistics,
        "stats_json": {k: v for k, v in statistics.items() if not v.get("masked")},
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
        "jobs": selectors.jobs_of(view),
        "versions": list(view.versions.all()[:20]),
        "partitions": view.partitions.filter(version=view.version).count(),
        "preview_columns": columns,
        "preview_rows": rows,
        "residency_error": residency_error,
        "materialize_form": MaterializeForm(),
        "retention_form": RetentionForm(initial={"retention_days": view.retention_days}),
    }
    return render(request, "features/view_detail.html", context, status=status)


def _view_to_change(request, name):
    view = selectors.view_for(request.user, name)  # 404 for strangers
    require(request.user, "change", view)  # 403 for viewers
    return view


@require_POST
def view_share(request, name):
    view = _view_to_change(request, name)
    form = sharing.SharingForm(request.POST, grants=SHARE_GRANTS)
    if sharing.share_from_form(request, form, obj=view):
        return redirect("features:view-detail", name=view.name)
    return view_detail(request, name, share_form=form, status=400)  # inline errors; nothing changed


@require_POST
def view_unshare(request, name):
    view = _view_to_change(request, name)
    sharing.unshare_from_post(request, obj=view, grants=SHARE_GRANTS)
    return redirect("features:view-detail", name=view.name)


def view_ingest(request, name):
    view = selectors.view_for(request.user, name)
    if not can(request.user, "change", view):
        raise PermissionDenied(f"You may view {view.name} but not ingest into it; ask its owner for editor access.")
    form = IngestForm(request.POST or None, request.FILES or None)
    errors: list[str] = []
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data.get("file")
        data = upload.read() if upload else form.cleaned_data["rows"]
        fmt = "parquet" if upload and upload.name.lower().endswith(".parquet") else None
        try:
            result = services.feature_view_ingest(view=view, actor=request.user, data=data, fmt=fmt, request=request)
        except ValidationError as exc:
            d = getattr(exc, "message_dict", {"detail": exc.messages})
            errors = d.get("detail", []) + d.get("rows", []) + d.get("file", [])
        except PermissionDenied as exc:
            errors = [str(exc)]
        else:
            messages.success(request, f"Ingested {result['rows']} rows into {view.name} v{result['version']}.")
            return redirect("features:view-detail", name=view.name)
    return render(request, "features/ingest.html", {"form": form, "view": view, "errors": errors})


def view_materialize(request, name):
    view = selectors.view_for(request.user, name)
    form = MaterializeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            job = services.materialize_request(
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
def view_retention(request, name):
    """Set or clear the view's retention period (audited as a view change)."""
    view = selectors.view_for(request.user, name)
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
    view = selectors.view_for(request.user, name)
    try:
        result = services.feature_view_apply_retention(view=view, actor=request.user, request=request)
    except (ValidationError, PermissionDenied) as exc:
        if isinstance(exc, PermissionDenied) and not can(request.user, "change", view):
            raise
        messages.error(request, " ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc))
    else:
        messages.success(
            request,
            f"Retention applied: {result['rows']} offline rows in {result['partitions']} files and "
            f"{result['online_keys']} online keys older than {result['cutoff'][:10]} deleted.",
        )
    return redirect("features:view-detail", name=view.name)


def lookup(request):
    form = LookupForm(request.POST or None, initial={"features": request.GET.get("features", "")})
    result, error = None, ""
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        features = [f.strip() for f in d["features"].split(",") if f.strip()]
        names = [k.strip() for k in d["key_names"].split(",") if k.strip()]
        raw_keys = [k.strip() for k in d["keys"].split(",") if k.strip()]
        entities = {n: [] for n in names}
        try:
            for key in raw_keys:
                parts = key.split("|")
                if len(parts) != len(names):
                    raise BadRequest(f"Key {key!r} has {len(parts)} parts but there are {len(names)} join keys.")
                for n, p in zip(names, parts, strict=True):
                    entities[n].append(int(p) if p.lstrip("-").isdigit() else p)
            result = services.online_read(actor=request.user, features=features, entities=entities, request=request)
        except BadRequest as exc:
            error = exc.detail
        except PermissionDenied as exc:
            error = str(exc)
        except Exception as exc:  # Http404 for an unknown or invisible view
            from django.http import Http404

            if not isinstance(exc, Http404):
                raise
            error = str(exc)
    table = []
    if result:
        n = len(next(iter(result["entities"].values())))
        for i in range(n):
            key = "|".join(str(result["entities"][k][i]) for k in result["entities"])
            cells = [
                (result["results"][f]["values"][i], result["results"][f]["statuses"][i]) for f in result["features"]
            ]
            table.append((key, cells))
    context = {"form": form, "result": result, "table": table, "error": error,
               "raw": json.dumps(result, indent=2, default=str) if result else ""}  # fmt: skip
    return render(request, "features/lookup.html", context)


def training_set_list(request):
    """Training sets the user can read, and a form that builds one (point-in-time join)."""
    can_create = request.user.has_perm("features.add_trainingset")
    form = TrainingSetForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        require(request.user, "add", TrainingSet)
        if form.is_valid():
            built = _build_training_set(request, form)
            if built is not None:
                messages.success(
                    request, f"Training set {built.name} built: {built.row_count:,} rows. Train a model on it below."
                )
                return redirect("features:training-set-detail", pk=built.pk)
    page = Paginator(selectors.training_sets_visible(request.user), PAGE_SIZE).get_page(request.GET.get("page"))
    refs = [f"{v.name}:{f['name']}" for v in selectors.views_visible(request.user, {})[:200] for f in v.features]
    context = {"page": page, "form": form, "can_create": can_create, "feature_refs": refs}
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
    except PermissionDenied as exc:  # residency or PII rules of a named view
        form.add_error(None, str(exc))
    return None


def training_set_detail(request, pk):
    ts = selectors.training_set_for(request.user, pk)
    from apps.training.engine.templates import TEMPLATES

    trainable = [t for t in TEMPLATES.values() if t.input_shape is None]  # tabular recipes take a training set
    context = {"ts": ts, "templates": trainable, "can_train": request.user.has_perm("training.add_trainingjob")}
    return render(request, "features/training_set_detail.html", context)
