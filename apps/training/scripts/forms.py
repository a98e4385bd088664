"""Browser forms of the script pages: register, upload a version, launch. Shapes only: the
services validate the values (and their errors land on these fields)."""

from __future__ import annotations

import json

from django import forms

from apps.core import queues

TEXT = {"class": "form-control"}


class ScriptRegisterForm(forms.Form):
    name = forms.CharField(max_length=100, widget=forms.TextInput(attrs=TEXT), help_text="e.g. churn-trainer")
    file = forms.FileField(
        widget=forms.ClearableFileInput(attrs=TEXT), help_text="a .py, or a folder as .zip / .tar.gz"
    )
    entry_point = forms.CharField(
        max_length=255, required=False, widget=forms.TextInput(attrs=TEXT), help_text="archives: the file to run"
    )
    description = forms.CharField(max_length=5000, required=False, widget=forms.Textarea(attrs={**TEXT, "rows": 2}))


class ScriptUploadForm(forms.Form):
    file = forms.FileField(
        widget=forms.ClearableFileInput(attrs=TEXT), help_text="a .py, or a folder as .zip / .tar.gz"
    )
    entry_point = forms.CharField(
        max_length=255, required=False, widget=forms.TextInput(attrs=TEXT), help_text="default: the script's"
    )


class ScriptLaunchForm(forms.Form):
    script_version = forms.TypedChoiceField(coerce=int, widget=forms.Select(attrs={"class": "form-select"}))
    params = forms.CharField(
        required=False, widget=forms.Textarea(attrs={**TEXT, "rows": 3}), initial="{}",
        help_text='JSON, e.g. {"lr": 0.01}: passed as --lr 0.01 and in PORTAL_PARAMS',
    )  # fmt: skip
    training_set = forms.IntegerField(
        required=False, min_value=1, widget=forms.NumberInput(attrs=TEXT), help_text="data: a training set's id"
    )
    artifact = forms.CharField(
        required=False, max_length=120, widget=forms.TextInput(attrs=TEXT), help_text='or a model version "model:3"'
    )
    resource_class = forms.ChoiceField(
        choices=[(c, c.upper()) for c in queues.RESOURCE_CLASSES], widget=forms.Select(attrs={"class": "form-select"})
    )
    region = forms.CharField(required=False, max_length=41, widget=forms.TextInput(attrs=TEXT))
    priority = forms.IntegerField(initial=5, min_value=0, max_value=9, widget=forms.NumberInput(attrs=TEXT))
    max_runtime_s = forms.IntegerField(initial=3600, min_value=1, widget=forms.NumberInput(attrs=TEXT))
    max_memory_mb = forms.IntegerField(required=False, min_value=32, widget=forms.NumberInput(attrs=TEXT))

    def __init__(self, *args, versions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["script_version"].choices = [(v.version, f"{v.version} ({v.digest[:19]}…)") for v in versions]

    def clean_params(self):
        text = (self.cleaned_data.get("params") or "").strip() or "{}"
        try:
            return json.loads(text)
        except ValueError:
            raise forms.ValidationError('Write the parameters as a JSON object, e.g. {"lr": 0.01}.') from None

    def launch_kwargs(self) -> dict:
        data = self.cleaned_data
        spec = {"training_set": data["training_set"]} if data.get("training_set") else {}
        if data.get("artifact"):
            spec = {**spec, "artifact": data["artifact"]}
        return {
            "script_version": data["script_version"], "params": data["params"], "data": spec,
            "resource_class": data["resource_class"], "region": data.get("region") or None,
            "priority": data["priority"], "max_runtime_s": data["max_runtime_s"],
            "max_memory_mb": data.get("max_memory_mb"),
        }  # fmt: skip
