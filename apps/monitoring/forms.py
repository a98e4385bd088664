"""Page forms of monitoring: list filters, alert actions, the "check drift now" window, an
endpoint's drift settings and the reference-profile build. They shape input; the services
(apps/monitoring/services/) validate what depends on the data and decide who may act."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.utils import timezone

from apps.core.forms import BootstrapFormMixin
from apps.monitoring.models import Alert, DriftReport
from apps.monitoring.stats import DEFAULT_THRESHOLDS

DATETIME_LOCAL = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
OPEN_STATES = "unresolved"  # the inbox's default: open and acknowledged


class AlertFiltersForm(forms.Form):
    """The inbox's query string; `state` defaults to the unresolved ones (open and acknowledged)."""

    state = forms.ChoiceField(
        required=False, choices=[(OPEN_STATES, "open and acknowledged"), ("", "any state"), *Alert.State.choices]
    )
    severity = forms.ChoiceField(required=False, choices=[("", "any severity"), *Alert.Severity.choices])
    kind = forms.ChoiceField(required=False, choices=[("", "any kind"), *Alert.Kind.choices])

    def __init__(self, data=None, **kwargs):
        data = data.copy() if data is not None else {}
        if "state" not in data:
            data["state"] = OPEN_STATES
        super().__init__(data, **kwargs)

    def filters(self) -> dict:
        """Filters for `alerts_visible`; `unresolved` stays for the view to exclude resolved ones."""
        return self.cleaned_data if self.is_valid() else {"state": OPEN_STATES}


class ReportFiltersForm(forms.Form):
    endpoint = forms.CharField(required=False, max_length=100)
    status = forms.ChoiceField(required=False, choices=[("", "any verdict"), *DriftReport.Status.choices])
    state = forms.ChoiceField(required=False, choices=[("", "any state"), *DriftReport.State.choices])

    def filters(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if v} if self.is_valid() else {}


class AlertNoteForm(BootstrapFormMixin, forms.Form):
    note = forms.CharField(
        required=False, max_length=500, widget=forms.TextInput(attrs={"placeholder": "optional note"})
    )


class AlertAssignForm(BootstrapFormMixin, forms.Form):
    assignee = forms.CharField(
        required=False, max_length=150, label="Assign to",
        help_text="A username of someone who may act on this alert; empty: nobody.",
    )  # fmt: skip


class DriftCheckForm(BootstrapFormMixin, forms.Form):
    """A window of the endpoint's logged traffic to check now (default: the last hour)."""

    start = forms.DateTimeField(widget=DATETIME_LOCAL)
    end = forms.DateTimeField(widget=DATETIME_LOCAL)
    route = forms.ChoiceField(required=False, label="Route", help_text="Empty: the live route with the largest weight.")

    def __init__(self, *args, routes=(), **kwargs):
        now = timezone.now().replace(second=0, microsecond=0)
        kwargs.setdefault("initial", {"start": now - dt.timedelta(hours=1), "end": now})
        super().__init__(*args, **kwargs)
        self.fields["route"].choices = [("", "the main live route"), *((r, r) for r in routes)]
        zone = timezone.get_current_timezone_name()  # datetime-local has no zone: the portal's is meant
        self.fields["start"].help_text = self.fields["end"].help_text = f"In {zone}."

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] <= data["start"]:
            self.add_error("end", "The end must be after the start.")
        return data


class MonitorSettingsForm(BootstrapFormMixin, forms.Form):
    """An endpoint's drift schedule, window and report thresholds (empty threshold: the default)."""

    schedule_minutes = forms.IntegerField(
        min_value=0, max_value=44_640, label="Check every (minutes)", help_text="0: only when asked."
    )
    window_minutes = forms.IntegerField(min_value=1, max_value=44_640, label="Window (minutes)")
    psi = forms.FloatField(required=False, min_value=0, max_value=10, label="PSI at least")
    ks_p = forms.FloatField(required=False, min_value=0, max_value=1, label="KS p-value below")
    chi2_p = forms.FloatField(required=False, min_value=0, max_value=1, label="Chi-square p-value below")
    js = forms.FloatField(required=False, min_value=0, max_value=1, label="Jensen-Shannon at least")
    drift_share = forms.FloatField(
        required=False, min_value=0, max_value=1, label="Drifted share for a drift verdict",
        help_text="The report says drift when at least this share of the features drifted.",
    )  # fmt: skip

    THRESHOLDS = ("psi", "ks_p", "chi2_p", "js", "drift_share")

    def __init__(self, *args, settings_now: dict | None = None, **kwargs):
        current = settings_now or {}
        kwargs.setdefault(
            "initial",
            {
                "schedule_minutes": current.get("schedule_minutes", 60),
                "window_minutes": current.get("window_minutes", 60),
            }
            | dict(current.get("thresholds") or {}),
        )
        super().__init__(*args, **kwargs)
        for key in self.THRESHOLDS:
            self.fields[key].widget.attrs["placeholder"] = f"default {DEFAULT_THRESHOLDS[key]}"

    def changes(self) -> dict:
        data = self.cleaned_data
        thresholds = {key: data[key] for key in self.THRESHOLDS if data.get(key) is not None}
        return {
            "schedule_minutes": data["schedule_minutes"],
            "window_minutes": data["window_minutes"],
            "thresholds": thresholds,
        }


class ProfileBuildForm(BootstrapFormMixin, forms.Form):
    file = forms.FileField(
        required=False, label="Reference file (optional)",
        help_text="Parquet or CSV with the version's feature columns; empty: the version's training data.",
    )  # fmt: skip
