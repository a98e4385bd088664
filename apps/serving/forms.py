"""Page forms of serving endpoints. They shape input; apps/serving/services/endpoints.py validates
and decides (its route errors are shown above the route rows)."""

from __future__ import annotations

import json

from django import forms

from apps.accounts.models import Team
from apps.core.forms import BootstrapFormMixin
from apps.core.permissions import teams_of
from apps.serving.models import Route

ROUTE_ROWS = 4  # blank rows offered; a canary or A/B split needs two or three


class EndpointFiltersForm(forms.Form):
    """The list page's query string: the same names as the API's EndpointFiltersSerializer."""

    q = forms.CharField(required=False, max_length=100)
    model = forms.CharField(required=False, max_length=100)
    region = forms.CharField(required=False, max_length=41)
    archived = forms.BooleanField(required=False)

    def filters(self) -> dict:
        return self.cleaned_data if self.is_valid() else {}


class EndpointForm(BootstrapFormMixin, forms.Form):
    """Create (every field) or edit (`editing=True`: description and sampling only)."""

    name = forms.CharField(max_length=100, help_text="Lowercase letters, digits and hyphens; unique, e.g. fraud-live.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    region = forms.CharField(max_length=41, initial="default", help_text="Where its prediction logs are kept.")
    log_sample_rate = forms.FloatField(
        min_value=0.0, max_value=1.0, help_text="Share of requests whose inputs and outputs are logged (0 to 1)."
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(), required=False, help_text="Shares the endpoint with the team as viewers."
    )

    ramp_steps = forms.CharField(
        required=False, label="Ramp alias moves in steps (%)",
        help_text="e.g. 10, 50, 100: a move of the alias the main route follows becomes a canary that rolls "
        "back by itself. Empty: switch at once.",
    )  # fmt: skip
    ramp_interval_s = forms.IntegerField(required=False, min_value=10, initial=600, label="Seconds per step")
    ramp_error_rate = forms.FloatField(
        required=False, min_value=0.0, max_value=1.0, initial=0.02, label="Roll back when the error rate is higher by",
        help_text="A share of requests: 0.02 is 2 points above the route it replaces.",
    )  # fmt: skip
    ramp_p95_ms = forms.FloatField(required=False, min_value=0.0, label="…or p95 latency higher by (ms)")
    ramp_min_samples = forms.IntegerField(required=False, min_value=1, initial=100, label="Requests per side first")

    RAMP_FIELDS = ("ramp_steps", "ramp_interval_s", "ramp_error_rate", "ramp_p95_ms", "ramp_min_samples")

    def rollout(self) -> dict:
        """The rollout plan as the service takes it ({} without steps); the service checks it."""
        data = self.cleaned_data
        raw = (data.get("ramp_steps") or "").replace("%", "").strip()
        if not raw:
            return {}
        try:
            steps = [int(part) for part in raw.replace(";", ",").split(",") if part.strip()]
        except ValueError:
            steps = raw  # the service answers with what a step must be
        guards = {"error_rate": data.get("ramp_error_rate"), "p95_latency_ms": data.get("ramp_p95_ms")}
        guards = {k: v for k, v in guards.items() if v is not None}
        guards["min_samples"] = data.get("ramp_min_samples") or 100
        return {"steps": steps, "step_interval_s": data.get("ramp_interval_s") or 600, "guards": guards}

    def fields_for_service(self) -> dict:
        return {k: v for k, v in self.cleaned_data.items() if k not in self.RAMP_FIELDS} | {"rollout": self.rollout()}

    @staticmethod
    def ramp_initial(rollout: dict) -> dict:
        if not rollout:
            return {}
        guards = rollout.get("guards", {})
        return {
            "ramp_steps": ", ".join(str(s) for s in rollout.get("steps", [])),
            "ramp_interval_s": rollout.get("step_interval_s"),
            "ramp_error_rate": guards.get("error_rate"),
            "ramp_p95_ms": guards.get("p95_latency_ms"),
            "ramp_min_samples": guards.get("min_samples"),
        }

    def __init__(self, *args, user=None, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            for name in ("name", "region", "team"):
                del self.fields[name]
        else:
            self.fields["team"].queryset = teams_of(user)


class RouteForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=40, required=False, widget=forms.TextInput(attrs={"placeholder": "main"}))
    model = forms.CharField(max_length=100, required=False, widget=forms.TextInput(attrs={"list": "model-names"}))
    version = forms.IntegerField(min_value=1, required=False, help_text="or")
    alias = forms.CharField(max_length=40, required=False, widget=forms.TextInput(attrs={"placeholder": "staging"}))
    weight = forms.IntegerField(min_value=0, max_value=100, initial=100, required=False)
    mode = forms.ChoiceField(choices=Route.Mode.choices, initial=Route.Mode.LIVE, required=False)

    def route(self) -> dict | None:
        """The row as the service takes it; None for a blank row."""
        data = self.cleaned_data
        if not data or not (data.get("name") or data.get("model")):
            return None
        return {
            "name": data.get("name") or "",
            "model": data.get("model") or "",
            "version": data.get("version"),
            "alias": data.get("alias") or "",
            "weight": 100 if data.get("weight") is None else data["weight"],
            "mode": data.get("mode") or Route.Mode.LIVE,
        }


RouteFormSet = forms.formset_factory(RouteForm, extra=0, max_num=20, absolute_max=20, validate_max=True)


def route_formset(data=None, routes: list[dict] | None = None) -> forms.BaseFormSet:
    """The route rows: the current routes (editing) plus blank rows to add more."""
    # A posted form holds every row itself: against initial rows, a row left as it was would count
    # as unchanged and be skipped (Django does not clean unchanged extra rows).
    initial = list(routes or []) if data is None else None
    formset = RouteFormSet(data, initial=initial, prefix="routes")
    formset.extra = ROUTE_ROWS if not initial else 1
    return formset


def routes_from(formset) -> list[dict]:
    return [r for r in (form.route() for form in formset.forms) if r is not None]


class TryForm(BootstrapFormMixin, forms.Form):
    """A predict call from the page: the inputs as JSON, an optional caller key."""

    inputs = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "class": "font-monospace"}),
        help_text='Rows as lists, e.g. [[0.1, 0.2, ...]], or columns, e.g. {"amount": [12.5]}.',
    )
    key = forms.CharField(
        required=False, max_length=200, help_text="Optional caller key: the same key keeps the same route."
    )

    def clean_inputs(self):
        try:
            value = json.loads(self.cleaned_data["inputs"])
        except ValueError:
            raise forms.ValidationError("Not valid JSON; paste a list of rows or an object of columns.") from None
        if not isinstance(value, list | dict):
            raise forms.ValidationError("Paste a list of rows or an object of columns.")
        return value

    def body(self) -> dict:
        body = {"inputs": self.cleaned_data["inputs"]}
        if self.cleaned_data.get("key"):
            body["key"] = self.cleaned_data["key"]
        return body
