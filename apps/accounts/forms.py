from django import forms
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm

from apps.accounts.models import ApiToken
from apps.core.forms import BootstrapFormMixin


class LoginForm(BootstrapFormMixin, AuthenticationForm):
    pass


class TokenCreateForm(BootstrapFormMixin, forms.Form):
    name = forms.CharField(max_length=100, help_text="What the token is for, e.g. 'nightly training script'.")
    scopes = forms.MultipleChoiceField(
        choices=ApiToken.SCOPES,
        widget=forms.CheckboxSelectMultiple,
        initial=["read"],
        help_text="Grant only what the script needs.",
    )
    expires_days = forms.IntegerField(
        min_value=1,
        max_value=settings.API_TOKEN_MAX_DAYS,
        initial=settings.API_TOKEN_DEFAULT_DAYS,
        label="Expires after (days)",
    )
    endpoints = forms.CharField(
        required=False,
        max_length=2000,
        label="Endpoints (predict scope)",
        help_text="Comma-separated names of the serving endpoints this token may call predict and "
        "feedback on, e.g. fraud-live, churn. A predict token calls no other endpoint.",
    )
    rate = forms.CharField(
        required=False,
        max_length=20,
        label="Rate limit (predict scope)",
        help_text="Optional, on top of your own limit: N/s, N/m, N/h or N/d, e.g. 600/m.",
    )

    def clean_endpoints(self) -> list[str]:
        text = self.cleaned_data.get("endpoints") or ""
        return sorted({name.strip() for name in text.replace("\n", ",").split(",") if name.strip()})


class OtpCodeForm(BootstrapFormMixin, forms.Form):
    code = forms.CharField(
        max_length=20,
        label="Code",
        help_text="The 6 digits your authenticator app shows now, or one of your recovery codes.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text", "autofocus": True}),
    )


class EnrolCodeForm(BootstrapFormMixin, forms.Form):
    code = forms.CharField(
        max_length=10,
        label="First code from the app",
        help_text="After adding the account to your app, type the 6 digits it shows to confirm.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class UnlockForm(forms.Form):
    username = forms.CharField(max_length=150)
