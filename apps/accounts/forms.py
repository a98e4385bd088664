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
