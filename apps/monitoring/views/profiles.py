"""A model version's reference profile page (per-feature histograms, quantiles, missing rates, the
prediction distribution) and its "Build profile" form.

Thin: `version_for` reads the version (404 strangers), `profile_for` the profile,
`profile_request` writes and checks `change` on the model (403 for viewers; 409 while a build
runs, shown as the portal's 409 page). A queued or running build polls itself with htmx.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.catalog.selectors import version_for
from apps.core.forms import apply_validation_error
from apps.monitoring import forms
from apps.monitoring.models import ReferenceProfile
from apps.monitoring.page_selectors import may_act_on
from apps.monitoring.selectors import profile_for
from apps.monitoring.services.profiles import profile_request
from apps.monitoring.views import charts


def _rows(profile: ReferenceProfile | None, section: str) -> list[dict]:
    if profile is None or profile.state != ReferenceProfile.State.READY:
        return []
    rows = []
    for name, summary in list(((profile.data or {}).get(section) or {}).items()):
        total = (summary.get("n") or 0) + (summary.get("missing") or 0)
        rows.append({
            "name": name, "kind": summary.get("kind"), "n": summary.get("n"),
            "missing_rate": (summary.get("missing") or 0) / total if total else None,
            "quantiles": summary.get("quantiles") or {}, "mean": summary.get("mean"), "std": summary.get("std"),
            "min": summary.get("min"), "max": summary.get("max"), "distinct": summary.get("distinct"),
            "top": (summary.get("top") or [])[:3],
        })  # fmt: skip
    return rows


def _charts(profile: ReferenceProfile | None) -> dict | None:
    if profile is None or profile.state != ReferenceProfile.State.READY:
        return None
    data = profile.data or {}
    out = {}
    for section in ("features", "predictions"):
        items = list((data.get(section) or {}).items())[: charts.MAX_FEATURE_CHARTS]
        out[section] = {name: h for name, summary in items if (h := charts.profile_histogram(summary))}
    return out


def _page(request, version, *, form=None, status: int = 200):
    profile = profile_for(request.user, version)
    can_build = may_act_on(request.user, version.model)
    context = {
        "version": version,
        "model": version.model,
        "profile": profile,
        "running": profile is not None
        and profile.state in (ReferenceProfile.State.QUEUED, ReferenceProfile.State.RUNNING),
        "features": _rows(profile, "features"),
        "predictions": _rows(profile, "predictions"),
        "charts": _charts(profile),
        "can_build": can_build,
        "form": (form or forms.ProfileBuildForm()) if can_build else None,
    }
    return render(request, "monitoring/version_profile.html", context, status=status)


def version_profile(request, name, version):
    return _page(request, version_for(request.user, name, version))


@require_POST
def version_profile_build(request, name, version):
    found = version_for(request.user, name, version, "change")
    form = forms.ProfileBuildForm(request.POST, request.FILES)
    if form.is_valid():
        try:
            profile_request(actor=request.user, version=found, file=form.cleaned_data.get("file"))
        except ValidationError as exc:
            apply_validation_error(form, exc)
        else:
            messages.success(request, "The profile is queued; this page shows it when it is built.")
            return redirect("monitoring:version-profile", name=found.model.name, version=found.version)
    return _page(request, found, form=form, status=400)
