from __future__ import annotations

import json

from django import forms

from apps.core.forms import BootstrapFormMixin
from apps.core.sharing import Grant
from apps.features.models import DTYPES, KEY_DTYPES, MAX_RETENTION_DAYS, FeatureView

# Extra right a feature view can be shared with, next to viewer/editor (see apps.core.sharing).
SHARE_GRANTS = (
    Grant("view_pii", "PII access", "may see unmasked PII values (view_pii); every unmasked read is audited"),
)


def _lines(text: str, kinds: tuple, what: str) -> list[dict]:
    """Parse `name:dtype[:pii][:description]` lines (or a JSON list) into schema entries."""
    text = (text or "").strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise forms.ValidationError(
                "This looks like JSON but does not parse; fix it or use one line each."
            ) from None
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split(":", 3)]
        if len(parts) < 2 or parts[1] not in kinds:
            raise forms.ValidationError(f"Line {n}: write name:dtype with dtype one of {', '.join(kinds)}.")
        item = {"name": parts[0], "dtype": parts[1]}
        if what == "features":
            flag = parts[2].lower() if len(parts) > 2 else ""
            if flag not in ("", "pii", "-"):
                raise forms.ValidationError(f"Line {n}: the third part is 'pii' or '-' (not PII).")
            item |= {"pii": flag == "pii", "description": parts[3] if len(parts) > 3 else ""}
        out.append(item)
    return out


class EntityForm(BootstrapFormMixin, forms.Form):
    name = forms.SlugField(max_length=100, help_text="lowercase, e.g. customer")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    join_keys = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="one per line: <code>customer_id:int64</code> (int64 or string)",
    )

    def clean_join_keys(self):
        return _lines(self.cleaned_data["join_keys"], KEY_DTYPES, "keys")


class FeatureViewForm(BootstrapFormMixin, forms.Form):
    name = forms.SlugField(max_length=100)
    entity = forms.ChoiceField()
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    features = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="one per line: <code>name:dtype:pii|-:description</code>, dtype one of " + ", ".join(DTYPES),
    )
    tags = forms.CharField(required=False, help_text="comma-separated")
    region = forms.CharField(initial="default", help_text="where the data lives, e.g. default or uae-north")
    ttl_seconds = forms.IntegerField(min_value=0, initial=0, help_text="0 = values never expire")
    source = forms.ChoiceField(choices=FeatureView.Source.choices)
    retention_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_RETENTION_DAYS,
        help_text="delete data older than this many days (checked daily); empty = keep forever",
    )

    def __init__(self, *args, entities=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["entity"].choices = [(e.name, e.name) for e in entities]
        self._errors = None  # the Bootstrap mixin validated before the choices existed; validate again
        self.fields["entity"].widget.attrs["class"] = "form-select"

    def clean_features(self):
        return _lines(self.cleaned_data["features"], DTYPES, "features")

    def clean_tags(self):
        return [t.strip() for t in self.cleaned_data["tags"].split(",") if t.strip()]


class IngestForm(BootstrapFormMixin, forms.Form):
    file = forms.FileField(required=False, help_text="CSV (with a header row) or Parquet")
    rows = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}), help_text="or JSON rows")

    def clean(self):
        data = super().clean()
        if not data.get("file") and not (data.get("rows") or "").strip():
            raise forms.ValidationError("Choose a file or paste JSON rows.")
        if data.get("rows") and not data.get("file"):
            try:
                data["rows"] = json.loads(data["rows"])
            except ValueError:
                self.add_error("rows", "These rows are not valid JSON; paste a list of objects.")
        return data


class MaterializeForm(BootstrapFormMixin, forms.Form):
    start = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    end = forms.DateTimeField(widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))


class TrainingSetForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=100, help_text="lowercase letters, digits and dashes")
    features = forms.CharField(
        widget=forms.TextInput(attrs={"list": "feature-refs", "autocomplete": "off"}),
        help_text="comma-separated view:feature references, e.g. customer-stats:balance, customer-stats:orders",
    )
    file = forms.FileField(
        label="Entity and label table",
        help_text="CSV (with a header row) or Parquet: the entity's join keys, event_timestamp and your label "
        "column(s). Each row gets the feature values as of its timestamp, never later ones.",
    )

    def clean_features(self) -> list[str]:
        refs = [ref.strip() for ref in self.cleaned_data["features"].split(",") if ref.strip()]
        if not refs:
            raise forms.ValidationError("Name at least one view:feature.")
        return refs


class RetentionForm(BootstrapFormMixin, forms.Form):
    retention_days = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_RETENTION_DAYS,
        label="Keep data for (days)",
        help_text="older data is deleted daily; empty = keep forever",
    )


class LookupForm(BootstrapFormMixin, forms.Form):
    """The online read's request as three text fields; `cleaned_data` adds `entities` (key -> values)."""

    features = forms.CharField(help_text="comma-separated view:feature references")
    keys = forms.CharField(help_text="entity keys, comma-separated (composite keys: a|b)")
    key_names = forms.CharField(help_text="join key names, comma-separated, in the order above")

    def clean_features(self) -> list[str]:
        return [f.strip() for f in self.cleaned_data["features"].split(",") if f.strip()]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        names = [k.strip() for k in data["key_names"].split(",") if k.strip()]
        entities: dict[str, list] = {n: [] for n in names}
        for key in (k.strip() for k in data["keys"].split(",") if k.strip()):
            parts = key.split("|")
            if len(parts) != len(names):
                self.add_error("keys", f"Key {key!r} has {len(parts)} parts but there are {len(names)} join keys.")
                return data
            for name, part in zip(names, parts, strict=True):
                entities[name].append(int(part) if part.lstrip("-").isdigit() else part)
        data["entities"] = entities
        return data
