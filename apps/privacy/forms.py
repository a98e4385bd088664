"""Forms of the data-subject requests page: find a key's data, erase it (with a confirmation)."""

from __future__ import annotations

from django import forms

from apps.core.forms import BootstrapFormMixin
from apps.features.models import Entity
from apps.privacy.stores import MAX_KEY_CHARS

KEY_HELP = (
    "The entity key as the feature store keeps it, e.g. <code>42</code>. For an entity with several "
    "join keys give the values in order, separated by commas (<code>42,eu</code>)."
)


class SubjectForm(BootstrapFormMixin, forms.Form):
    key = forms.CharField(label="Entity key", max_length=MAX_KEY_CHARS, strip=False, help_text=KEY_HELP)
    entity = forms.ChoiceField(
        label="Entity", required=False, help_text="Leave it on “every entity” to look wherever the key fits."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = Entity.objects.order_by("name").values_list("name", flat=True)
        self.fields["entity"].choices = [("", "every entity"), *((n, n) for n in names)]


class EraseForm(SubjectForm):
    confirm = forms.BooleanField(
        label="I understand that every copy of this key's data is deleted for good: offline files and "
        "training sets are rewritten without its rows, and its online values and prediction logs are removed.",
        error_messages={"required": "Tick the box to confirm the erasure; nothing was deleted."},
    )
