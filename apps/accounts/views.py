from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.accounts import selectors, services
from apps.accounts.forms import LoginForm, TokenCreateForm
from apps.accounts.roles import ROLE_DESCRIPTIONS, user_roles
from apps.core.forms import apply_validation_error
from apps.core.permissions import teams_of


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    redirect_authenticated_user = True


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
    }
    return render(request, "accounts/profile.html", context)


@require_POST
def token_revoke(request, pk: int):
    token = selectors.token_for(request.user, pk)  # someone else's token: 404
    services.token_revoke(token=token, actor=request.user)
    messages.info(request, f"Token '{token.name}' revoked.")
    return redirect("accounts:profile")
