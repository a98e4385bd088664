from django.contrib.auth import views as auth_views
from django.urls import include, path

from apps.accounts import twofactor_views, views

urlpatterns = [
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/profile/", views.profile, name="profile"),
    path("accounts/tokens/<int:pk>/revoke", views.token_revoke, name="token-revoke"),
    # two-factor sign-in and lock-outs (issue 17)
    path("accounts/2fa/", twofactor_views.settings_page, name="2fa"),
    path("accounts/2fa/verify", twofactor_views.verify, name="2fa-verify"),
    path("accounts/2fa/enrol", twofactor_views.enrol, name="2fa-enrol"),
    path("accounts/2fa/recovery-codes", twofactor_views.recovery_codes, name="2fa-recovery-codes"),
    path("accounts/2fa/recovery-codes/new", twofactor_views.recovery_codes_new, name="2fa-recovery-codes-new"),
    path("accounts/2fa/remove", twofactor_views.remove, name="2fa-remove"),
    path("accounts/lockouts/", twofactor_views.lockouts, name="lockouts"),
    path("accounts/lockouts/unlock", twofactor_views.lockout_unlock, name="lockout-unlock"),
    path("accounts/oidc/", include("apps.accounts.oidc_views")),  # single sign-on (issue 17)
]
