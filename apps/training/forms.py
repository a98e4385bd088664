"""Browser forms. The launch form is generated from the template's typed hyperparameter schema."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from apps.accounts.models import Team
from apps.core.forms import BootstrapFormMixin
from apps.core.permissions import teams_of
from apps.features.selectors import training_sets_visible
from apps.training.datasource import NON_FEATURE_COLUMNS, datasets_for
from apps.training.models import Sweep

PARAM_PREFIX = "p_"
TEAM_HELP = "Shares the job, its run and the registered model with the team as viewers."


def _param_field(spec) -> forms.Field:
    label = spec.name.replace("_", " ")
    help_text = spec.help
    if spec.min is not None and spec.max is not None:
        help_text += f" Range {spec.min:g} to {spec.max:g}{', log scale' if spec.log else ''}."
    common = {"label": label, "help_text": help_text, "initial": spec.default, "required": False}
    if spec.type == "int":
        return forms.IntegerField(min_value=spec.min, max_value=spec.max, **common)
    if spec.type == "float":
        field = forms.FloatField(min_value=spec.min, max_value=spec.max, **common)
        field.widget.attrs["step"] = "any"
        return field
    if spec.type == "bool":
        return forms.BooleanField(**common)
    return forms.ChoiceField(choices=[(c, c) for c in spec.choices], **common)


TRAINING_SET_CHOICES = 200
SET_META_COLUMNS = set(NON_FEATURE_COLUMNS)


class LaunchForm(forms.Form):
    experiment = forms.TypedChoiceField(
        coerce=int, empty_value=None, required=False,
        help_text="An experiment you can add runs to; empty: your training experiment (or name a new one below).",
    )  # fmt: skip
    experiment_name = forms.CharField(
        required=False, max_length=100, label="or a new experiment",
        help_text="Name of a new experiment for this job's run (letters, digits, '-', '_').",
    )  # fmt: skip
    run_name = forms.CharField(required=False, max_length=200, help_text="Empty: job-<id>.")
    dataset = forms.ChoiceField(
        required=False, help_text="A demo dataset that fits this template; ignored when a training set is chosen."
    )
    training_set = forms.TypedChoiceField(
        coerce=int,
        empty_value=None,
        required=False,
        help_text="A feature-store training set you can read (newest first); empty: the demo dataset.",
    )
    label = forms.CharField(
        required=False,
        help_text="Label column of the training set (suggestions list its columns).",
        widget=forms.TextInput(attrs={"list": "training-set-columns", "autocomplete": "off"}),
    )
    features = forms.CharField(required=False, help_text="Comma-separated feature columns (empty: all others).")
    resource_class = forms.ChoiceField(choices=[("cpu", "CPU"), ("gpu", "GPU")], initial="cpu")
    allow_cpu_fallback = forms.BooleanField(required=False, label="Allow CPU fallback when no GPU worker is online")
    region = forms.CharField(required=False, help_text="Empty: this portal's region, or the data's pinned region.")
    priority = forms.IntegerField(min_value=0, max_value=9, initial=5)
    max_runtime_s = forms.IntegerField(min_value=1, initial=3600, label="Max runtime (s)")
    max_queue_s = forms.IntegerField(
        min_value=60, required=False, label="Max wait in the queue (s)",
        help_text="Fail the job if no worker takes it in time; empty: wait until one does.",
    )  # fmt: skip
    seed = forms.IntegerField(min_value=0, initial=0)
    model_name = forms.CharField(required=False, help_text="Catalog model to register the result under.")
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False, help_text=TEAM_HELP)

    def __init__(self, *args, template, user=None, experiments=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.template = template
        self.fields["team"].queryset = teams_of(user)
        self.fields["experiment"].choices = [("", "Default: my training experiment")] + [
            (e.pk, e.name) for e in experiments
        ]
        self.fields["dataset"].choices = [(d, d) for d in datasets_for(template)]
        self.fields["dataset"].initial = template.default_dataset
        self._set_training_sets(user)
        for spec in template.params:
            self.fields[PARAM_PREFIX + spec.name] = _param_field(spec)
        self.param_names = [PARAM_PREFIX + s.name for s in template.params]
        for field in self.fields.values():  # styled here: param fields exist only after __init__
            widget = field.widget
            if not isinstance(widget, forms.CheckboxInput):
                widget.attrs["class"] = "form-select" if isinstance(widget, forms.Select) else "form-control"

    def _set_training_sets(self, user) -> None:
        sets = list(training_sets_visible(user)[:TRAINING_SET_CHOICES]) if user is not None else []
        self.fields["training_set"].choices = [("", "None: use the demo dataset")] + [
            (ts.pk, f"{ts.name} (#{ts.pk}, {ts.row_count:,} rows, region {ts.region})") for ts in sets
        ]
        # The label's suggestions follow the chosen set (templates/training/job_launch.html).
        self.training_set_columns = {str(ts.pk): [c for c in ts.columns if c not in SET_META_COLUMNS] for ts in sets}

    def param_fields(self):
        return [self[name] for name in self.param_names]

    def launch_kwargs(self) -> dict:
        c = self.cleaned_data
        params = {n[len(PARAM_PREFIX) :]: c[n] for n in self.param_names if c.get(n) not in (None, "")}
        if c.get("training_set"):
            data = {"training_set": c["training_set"], "label": c.get("label") or ""}
            if c.get("features"):
                data["features"] = [f.strip() for f in c["features"].split(",") if f.strip()]
        else:
            data = {"dataset": c.get("dataset") or self.template.default_dataset}
        return {
            "template": self.template.name,
            "params": params,
            "data": data,
            "resource_class": c["resource_class"],
            "allow_cpu_fallback": bool(c.get("allow_cpu_fallback")),
            "region": c.get("region") or None,
            "priority": c["priority"],
            "max_runtime_s": c["max_runtime_s"],
            "seed": c["seed"],
            "model_name": c.get("model_name") or None,
            "team": c["team"].slug if c.get("team") else None,
            "experiment": c.get("experiment"),
            "experiment_name": c.get("experiment_name") or None,
            "run_name": c.get("run_name") or None,
            "max_queue_s": c.get("max_queue_s"),
        }

    def field_errors(self, exc: ValidationError) -> ValidationError:
        """The service's errors keyed by this form's fields (`params.lr` -> `p_lr`, `data` -> the data field)."""
        if not hasattr(exc, "error_dict"):
            return exc
        mapped: dict[str, list[str]] = {}
        for key, messages in exc.message_dict.items():
            if key.startswith("params."):
                key = PARAM_PREFIX + key[len("params.") :]
            elif key == "data":
                key = "training_set" if self.cleaned_data.get("training_set") else "dataset"
            mapped.setdefault(key, []).extend(messages)
        return ValidationError(mapped)


class SweepForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=100)
    method = forms.ChoiceField(choices=Sweep.Method.choices)
    space = forms.JSONField(
        initial={"lr": {"min": 0.0005, "max": 0.05, "log": True}, "hidden_units": {"values": [16, 64]}},
        help_text='Per parameter: {"values": [...]} or {"min": .., "max": .., "log": true}.',
    )
    params = forms.JSONField(required=False, initial={"epochs": 5}, help_text="Fixed params for every trial.")
    metric = forms.CharField(required=False, help_text="Default: the template's monitored metric.")
    max_trials = forms.IntegerField(min_value=1, max_value=200, initial=8)
    parallelism = forms.IntegerField(min_value=1, max_value=16, initial=2)
    seed = forms.IntegerField(min_value=0, initial=0)
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(), required=False, help_text="Shares the sweep, its trials and their models."
    )

    def __init__(self, *args, user=None, **kwargs):
        self._teams = teams_of(user)
        super().__init__(*args, **kwargs)

    def order_fields(self, field_order):
        # BootstrapFormMixin validates inside __init__, so the user's teams must be set before that.
        self.fields["team"].queryset = self._teams
        super().order_fields(field_order)

    def sweep_kwargs(self) -> dict:
        """What `services.sweep_create` takes besides the actor and the template."""
        data = dict(self.cleaned_data)
        data["team"] = data["team"].slug if data.get("team") else None
        return data

    def field_errors(self, exc: ValidationError) -> ValidationError:
        """The service's errors keyed by this form's fields (`params.lr` -> the one `params` field)."""
        if not hasattr(exc, "error_dict"):
            return exc
        mapped: dict[str, list[str]] = {}
        for key, messages in exc.message_dict.items():
            mapped.setdefault("params" if key.startswith("params.") else key, []).extend(messages)
        return ValidationError(mapped)
