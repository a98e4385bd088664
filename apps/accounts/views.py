from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from apps.accounts import selectors, services, twofactor
from apps.accounts.forms import LoginForm, TokenCreateForm
from apps.accounts.middleware import SESSION_ENDED
from apps.accounts.roles import ROLE_DESCRIPTIONS, user_roles
from apps.core.forms import apply_validation_error
from apps.core.permissions import is_platform_admin, teams_of


class LoginView(auth_views.LoginView):
    """The password step. A user with an authenticator, or one whose role requires two-factor
    sign-in, is not signed in here: they stay pending (apps/accounts/twofactor.py) and go on to
    the code, or to enrolment when they must have a device and have none."""

    form_class = LoginForm
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        ended = self.request.session.pop(SESSION_ENDED, None)
        if ended:
            context["idle_message"] = f"{ended}. Sign in again to continue."
        return context

    def form_valid(self, form):
        user = form.get_user()
        device = twofactor.has_device(user)
        if not device and not twofactor.two_factor_required(user):
            return super().form_valid(form)
        twofactor.pending_start(self.request, user, next_url=self.get_success_url())
        return redirect("accounts:2fa-verify" if device else "accounts:2fa-enrol")


@never_cache  # shows a new token's key once
def profile(request):
    # Post/redirect/get: the new key travels once through the session and is popped on display,
    # so a reload neither re-creates a token nor shows the key again.
    new_key = request.session.pop("new_token_key", None)
    if request.method == "POST":
        form = TokenCreateForm(request.POST)
        if form.is_valid():
            try:
                token, new_key = services.token_create(
                    user=request.user,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    expires_days=form.cleaned_data["expires_days"],
                    endpoints=form.cleaned_data["endpoints"],
                    rate=form.cleaned_data["rate"],
                )
            except ValidationError as exc:
                apply_validation_error(form, exc)
            else:
                messages.success(request, f"Token '{token.name}' created. Copy it now: it will not be shown again.")
                request.session["new_token_key"] = new_key
                return redirect("accounts:profile")
    else:
        form = TokenCreateForm()
    roles = user_roles(request.user)
    context = {
        "form": form,
        "new_key": new_key,
        "tokens": selectors.tokens_of(request.user),
        "roles": [(r, ROLE_DESCRIPTIONS[r]) for r in roles],
        "teams": teams_of(request.user),
        "two_factor_on": twofactor.has_device(request.user),
        "two_factor_required": twofactor.two_factor_required(request.user),
        "is_platform_admin": is_platform_admin(request.user),
    }
    return render(request, "accounts/profile.html", context)


@require_POST
def token_revoke(request, pk: int):
    token = selectors.token_for(request.user, pk)  # someone else's token: 404
    services.token_revoke(token=token, actor=request.user)
    messages.info(request, f"Token '{token.name}' revoked.")
    return redirect("accounts:profile")
