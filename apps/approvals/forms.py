"""Page forms for approval gates. They only shape input: every rule (who may request or decide,
the policy, the window, the evidence digest) is the services' (apps.approvals.services)."""

from __future__ import annotations

from django import forms

from apps.approvals.models import PromotionRequest
from apps.core.forms import BootstrapFormMixin

DATETIME_LOCAL = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")


class PromotionRequestForm(BootstrapFormMixin, forms.Form):
    target_alias = forms.CharField(
        max_length=40, initial="production", help_text="The alias this version should move to, e.g. production."
    )
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=5000)
    change_type = forms.ChoiceField(
        choices=PromotionRequest.ChangeType.choices,
        initial=PromotionRequest.ChangeType.NORMAL,
        help_text="Emergency skips the change window, never the approvals, and is flagged in the audit trail.",
    )
    risk = forms.ChoiceField(choices=PromotionRequest.Risk.choices, initial=PromotionRequest.Risk.MEDIUM)
    impact = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)
    rollback_plan = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=5000)
    window_start = forms.DateTimeField(required=False, widget=DATETIME_LOCAL, input_formats=["%Y-%m-%dT%H:%M"])
    window_end = forms.DateTimeField(required=False, widget=DATETIME_LOCAL, input_formats=["%Y-%m-%dT%H:%M"])

    def change(self) -> dict:
        """The change record as `promotion_request(change=...)` takes it (API.md `change`)."""
        data = self.cleaned_data
        change = {"type": data["change_type"], "risk": data["risk"], "impact": data["impact"]}
        change["rollback_plan"] = data["rollback_plan"]
        for key in ("window_start", "window_end"):
            if data.get(key):
                change[key] = data[key]
        return change


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))
    evidence_digest = forms.CharField(max_length=64)
    otp = forms.CharField(required=False, max_length=12)  # issue #17 (2FA) enforces it; accepted, ignored now

    def clean(self):
        data = super().clean()
        if data.get("decision") == "reject" and not (data.get("comment") or "").strip():
            self.add_error("comment", "Say why you reject it: a comment is required to reject.")
        return data


class CommentForm(forms.Form):
    comment = forms.CharField(max_length=5000, widget=forms.Textarea(attrs={"rows": 2}))


class PromotionFiltersForm(forms.Form):
    state = forms.ChoiceField(required=False, choices=[("", "any state"), *PromotionRequest.State.choices])
    model = forms.CharField(required=False, max_length=100)
    awaiting = forms.ChoiceField(required=False, choices=[("", "—"), ("me", "me")])
    requested_by = forms.ChoiceField(required=False, choices=[("", "—"), ("me", "me")])

    def filters(self) -> dict:
        """The valid filters (for `selectors.promotions_visible`); invalid ones are dropped."""
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value not in ("", None)}
