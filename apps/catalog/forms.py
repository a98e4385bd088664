"""Page forms of the catalog. They shape input; the services validate and decide."""

from __future__ import annotations

import json

from django import forms

from apps.accounts.models import Team
from apps.catalog.models import CARD_SECTIONS, FRAMEWORKS, ModelCard
from apps.catalog.selectors import SORTS
from apps.core.forms import BootstrapFormMixin
from apps.core.permissions import teams_of
from apps.core.residency import configured_regions


class JSONObjectField(forms.CharField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("required", False)
        kwargs.setdefault("widget", forms.Textarea(attrs={"rows": 2, "class": "font-monospace"}))
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        value = super().to_python(value).strip()
        if not value:
            return {}
        try:
            parsed = json.loads(value)
        except ValueError:
            raise forms.ValidationError('Not valid JSON; write an object such as {"auc": 0.93}.') from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError('Write a JSON object such as {"auc": 0.93}.')
        return parsed


class _DynamicChoicesMixin:
    """BootstrapFormMixin validates inside __init__ (it reads self.errors); after changing choices
    or querysets, forget that early validation so the form is cleaned against the real choices."""

    def _revalidate(self) -> None:
        self._errors = None
        for name, field in self.fields.items():
            css = field.widget.attrs.get("class", "").replace(" is-invalid", "")
            field.widget.attrs["class"] = css + (" is-invalid" if self.is_bound and name in self.errors else "")


class ModelCreateForm(_DynamicChoicesMixin, BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=100, help_text="Lowercase letters, digits and hyphens; unique, e.g. credit-risk.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. fraud, tabular.")
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(), required=False, help_text="Shares the model with the team as viewers."
    )
    region = forms.ChoiceField(
        choices=(),
        required=False,
        initial="default",
        help_text="Residency: its artifacts are stored, served and downloaded only in this region "
        "(default = unpinned). It cannot change later.",
    )

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams_of(user)
        self.fields["region"].choices = [(r, r) for r in configured_regions()]
        self._revalidate()


class ModelFiltersForm(forms.Form):
    """The model list page's query string: the names and limits of the API's ModelFiltersSerializer.
    A bad value is dropped (the page still shows the list) where the API answers 400."""

    q = forms.CharField(required=False, max_length=100)
    tag = forms.CharField(required=False, max_length=40)
    owner = forms.CharField(required=False, max_length=150)
    alias = forms.CharField(required=False, max_length=40)
    framework = forms.ChoiceField(required=False, choices=[("", "any"), *[(f, f) for f in FRAMEWORKS]])
    archived = forms.BooleanField(required=False)
    sort = forms.ChoiceField(required=False, choices=[(key, key) for key in SORTS])

    def filters(self) -> dict:
        """The valid filters (for `selectors.models_visible`)."""
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value not in ("", None)}


class ModelEditForm(BootstrapFormMixin, forms.Form):
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    tags = forms.CharField(required=False, help_text="Comma-separated.")


class CardForm(BootstrapFormMixin, forms.ModelForm):
    class Meta:
        model = ModelCard
        fields = [f for f, _ in CARD_SECTIONS]
        labels = dict(CARD_SECTIONS)
        widgets = {f: forms.Textarea(attrs={"rows": 3}) for f, _ in CARD_SECTIONS}


class VersionUploadForm(BootstrapFormMixin, forms.Form):
    artifact = forms.FileField(help_text="The ONNX model file (.onnx).")
    state_dict = forms.FileField(
        required=False, help_text="Optional PyTorch weights as .safetensors (pickles are refused)."
    )
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tags = forms.CharField(required=False, help_text="Comma-separated.")
    metrics = JSONObjectField(help_text='JSON object of numbers, e.g. {"auc": 0.93, "f1": 0.88}.')
    framework = forms.ChoiceField(
        choices=[("", "detect from the ONNX producer"), *[(f, f) for f in FRAMEWORKS]], required=False
    )
    run_id = forms.CharField(required=False, label="Run id")
    training_set = forms.CharField(required=False)
    training_data_digest = forms.CharField(required=False, help_text="e.g. sha256 of the training data")
    feature_views = forms.CharField(required=False, help_text="Comma-separated feature view names.")
    code_version = forms.CharField(required=False, help_text="git commit or tag")
    seed = forms.IntegerField(required=False)

    def lineage(self) -> dict:
        data = self.cleaned_data
        return {
            "run_id": data["run_id"],
            "training_set": data["training_set"],
            "training_data_digest": data["training_data_digest"],
            "feature_views": [v.strip() for v in data["feature_views"].split(",") if v.strip()],
            "code_version": data["code_version"],
            "seed": data["seed"],
        }


class VersionEditForm(BootstrapFormMixin, forms.Form):
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    tags = forms.CharField(required=False, help_text="Comma-separated.")
    metrics = JSONObjectField()


class AliasForm(_DynamicChoicesMixin, BootstrapFormMixin, forms.Form):
    alias = forms.CharField(
        max_length=40,
        help_text="e.g. staging; a protected alias moves only after a platform admin lifts the protection.",
    )
    version = forms.TypedChoiceField(coerce=int, choices=())

    def __init__(self, *args, versions=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["version"].choices = [(v, f"v{v}") for v in versions]
        self._revalidate()
