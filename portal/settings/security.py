"""Portal settings, part 4 of 4: sign-in protection, single sign-on, transport security and CSP,
the audit chain, residency, retention, PII at rest and data-subject requests (issue 17)."""

from __future__ import annotations

from urllib.parse import urlsplit

from csp.constants import NONE, SELF, UNSAFE_HASHES

from portal.settings.domains import *

# --- Sign-in: lock-out, two-factor and step-up (issue 17) --------------------------------------
# Lock-out (django-axes, apps/accounts/lockout.py): after AXES_FAILURE_LIMIT failed sign-ins for one
# username from one client address, that pair is refused for the cool-off (each further attempt
# restarts it) or until a platform admin unlocks it at /accounts/lockouts/. Per username AND address:
# a guesser is stopped, yet nobody can lock a colleague out from elsewhere by typing their name.
# The address is the one the audit trail records (REMOTE_ADDR; behind a proxy, have the ASGI server
# set it from the proxy's header), never a client-supplied X-Forwarded-For.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1, maximum=100)
PORTAL_LOCKOUT_COOLOFF_MIN = env_int("PORTAL_LOCKOUT_COOLOFF_MIN", 15, minimum=1, maximum=7 * 24 * 60)
AXES_COOLOFF_TIME = PORTAL_LOCKOUT_COOLOFF_MIN / 60  # hours, as axes reads it
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "apps.core.audit.client_ip"
AXES_LOCKOUT_CALLABLE = "apps.accounts.lockout.lockout_response"
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = False  # one row per failure, kept forever: the audit trail aggregates instead
AXES_DISABLE_ACCESS_LOG = True  # sign-ins are audited by the portal (login, logout)
AXES_VERBOSE = False
# Unlocking is the portal's page (audited with the admin who did it); axes' own admin pages would
# delete its counters without an audit entry (they are not row-audited, see below).
AXES_ENABLE_ADMIN = False
# Failed sign-ins in the audit trail: at most one `login.failed` entry per username and address per
# window (carrying the failure count), and at most this many usernames per address per window; the
# rest of that address's failures fold into one entry. An anonymous caller cannot grow the table.
PORTAL_LOGIN_AUDIT_WINDOW_S = env_int("PORTAL_LOGIN_AUDIT_WINDOW_S", 900, minimum=60, maximum=86400)
PORTAL_LOGIN_AUDIT_USERNAMES_PER_IP = env_int("PORTAL_LOGIN_AUDIT_USERNAMES_PER_IP", 10, minimum=1, maximum=1000)
# Two-factor (django-otp TOTP, recovery codes from otp_static): users holding one of these roles must
# enrol, and sign in with a code; PORTAL_2FA_ENFORCED=false turns enrolment and step-up requirements
# off (a user who enrolled is still asked for a code at sign-in).
PORTAL_2FA_ENFORCED = env_bool("PORTAL_2FA_ENFORCED", True)
PORTAL_2FA_REQUIRED_ROLES = env_list("PORTAL_2FA_REQUIRED_ROLES", ["approvers", "platform-admins"])
PORTAL_2FA_PENDING_S = env_int("PORTAL_2FA_PENDING_S", 300, minimum=30, maximum=3600)  # password to code
PORTAL_2FA_RECOVERY_CODES = 10
# Step-up: an approval decision needs a second factor passed within this many seconds.
PORTAL_STEPUP_MAX_AGE_S = env_int("PORTAL_STEPUP_MAX_AGE_S", 300, minimum=30, maximum=86400)
OTP_TOTP_ISSUER = env_str("OTP_TOTP_ISSUER", "MLOps Portal")
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
# Session expiry: SESSION_COOKIE_AGE is the absolute limit; this the idle one (apps/accounts/middleware.py).
PORTAL_SESSION_IDLE_S = env_int("PORTAL_SESSION_IDLE_S", 30 * 60, minimum=60, maximum=7 * 86400)
# Lock-out counters, OTP devices and recovery codes are not audited row by row: a counter row per
# failure would let anyone grow the audit trail, and device rows hold secrets. Their changes are
# audited as events (login.failed, login.unlock, 2fa.*).
AUDITLOG_EXCLUDE_TRACKING_MODELS = (
    *AUDITLOG_EXCLUDE_TRACKING_MODELS, "axes", "otp_totp", "otp_static",
    "accounts.OtpSeal", "accounts.SealedTOTPDevice", "accounts.SealedStaticDevice",  # the same rows, sealed
)  # fmt: skip


# --- Single sign-on: OpenID Connect (issue 17) -------------------------------------------------
# Off unless the provider (OIDC_ISSUER, or OIDC_OP_DISCOVERY_URL, or the four endpoints) and the
# portal's client (id and secret) are given together; docs/SSO.md lists every variable. Endpoints
# left unset come from the provider's discovery document at the first sign-in, never here: a
# provider that is down does not stop the portal from starting. Sessions then work as any other
# (apps/accounts/oidc.py); the provider's groups grant and remove the portal roles in
# OIDC_ROLE_MAP at every sign-in, and nothing else.
def _oidc_map(name: str) -> dict[str, tuple[str, ...]]:
    """`idp-group=portal-name,...` (or `;`-separated when group names hold commas, as LDAP DNs do);
    the last `=` of an entry splits it. One provider group may map to several names."""
    raw = env_str(name, "") or ""
    mapping: dict[str, tuple[str, ...]] = {}
    for entry in (e.strip() for e in raw.split(";" if ";" in raw else ",")):
        if not entry:
            continue
        group, _, target = (part.strip() for part in entry.rpartition("="))
        if not group or not target:
            raise ConfigError(f"{name}: {entry!r} is not 'provider-group=portal-name'.")
        mapping[group] = tuple(dict.fromkeys((*mapping.get(group, ()), target)))
    return mapping


OIDC_ISSUER = (env_str("OIDC_ISSUER", "") or "").rstrip("/")
OIDC_OP_DISCOVERY_URL = env_str("OIDC_OP_DISCOVERY_URL") or (
    f"{OIDC_ISSUER}/.well-known/openid-configuration" if OIDC_ISSUER else ""
)
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT", "")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT", "")
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET", "")
_oidc_endpoints = (OIDC_OP_AUTHORIZATION_ENDPOINT, OIDC_OP_TOKEN_ENDPOINT, OIDC_OP_USER_ENDPOINT, OIDC_OP_JWKS_ENDPOINT)
_oidc_given = (OIDC_OP_DISCOVERY_URL, *_oidc_endpoints, OIDC_RP_CLIENT_ID, OIDC_RP_CLIENT_SECRET)
OIDC_ENABLED = bool((OIDC_OP_DISCOVERY_URL or all(_oidc_endpoints)) and OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET)
if any(_oidc_given) and not OIDC_ENABLED:
    raise ConfigError(
        "Single sign-on is half configured: set OIDC_ISSUER (or OIDC_OP_DISCOVERY_URL, or all four "
        "OIDC_OP_*_ENDPOINT variables), OIDC_RP_CLIENT_ID and OIDC_RP_CLIENT_SECRET together, or none of them."
    )
if PRODUCTION and OIDC_ENABLED and any(u.startswith("http://") for u in (OIDC_OP_DISCOVERY_URL, *_oidc_endpoints)):
    raise ConfigError("PORTAL_ENV=production needs https:// URLs for the OpenID Connect provider.")
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "single sign-on")  # "Sign in with <this>"
OIDC_RP_SIGN_ALGO = env_choice("OIDC_RP_SIGN_ALGO", ("RS256", "RS384", "RS512", "ES256", "ES384", "HS256"), "RS256")
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile groups")
OIDC_USERNAME_CLAIM = env_str("OIDC_USERNAME_CLAIM", "preferred_username")
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM", "groups")
OIDC_ROLE_MAP = _oidc_map("OIDC_ROLE_MAP")  # provider group -> portal roles (apps/accounts/roles.py)
OIDC_TEAM_MAP = _oidc_map("OIDC_TEAM_MAP")  # provider group -> portal team slugs
OIDC_CREATE_USER = env_bool("OIDC_CREATE_USER", True)
# A local account (one with a password) of the same username is not taken over unless allowed.
OIDC_LINK_LOCAL_USERS = env_bool("OIDC_LINK_LOCAL_USERS", False)
OIDC_USE_PKCE = env_bool("OIDC_USE_PKCE", True)
OIDC_TIMEOUT = env_float("OIDC_TIMEOUT_S", 10.0)
OIDC_VERIFY_SSL = env_bool("OIDC_VERIFY_SSL", True)
OIDC_AUTHENTICATION_CALLBACK_URL = "accounts:oidc_authentication_callback"
if OIDC_ENABLED:
    INSTALLED_APPS.append("mozilla_django_oidc")
    AUTHENTICATION_BACKENDS.append("apps.accounts.oidc.PortalOIDCBackend")  # after axes', which stays first

# --- Production transport security and Content Security Policy (issue 17) ----------------------
# Every mode sends one strict Content Security Policy (django-csp): scripts and styles only from
# the portal's own static files, so an injected <script> or style="..." does nothing. Templates
# hold no inline script, <style>, style= or on*= attribute (tests/core/test_csp.py walks them);
# data reach scripts through json_script (type="application/json" never runs) and data- attributes.
# connect-src 'self' covers the same-origin ws:/wss: sockets in CSP 3 browsers; PORTAL_BASE_URL's
# socket origin is listed too for browsers that predate that rule. form-action governs where
# forms post (and the redirects after a post); single sign-on starts from a link, a GET that
# form-action does not govern, and the provider's origin is added to it when SSO is configured.
# The API viewers: Swagger UI loads its init script from /api/v1/docs/?script; ReDoc's bundle
# injects <style> elements as it loads, so that one page allows inline styles (portal/urls.py).


_EMPTY_STYLE_HASH = "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"  # base64(sha256(b""))


def _origin(url: str | None) -> str | None:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


_base = urlsplit(PORTAL_BASE_URL)
_socket_origin = f"{'wss' if _base.scheme == 'https' else 'ws'}://{_base.netloc}"
# The provider's origin, should a form's answer ever redirect there (browsers check form-action on
# the redirects that follow a form post); sign-in itself starts from a link.
_sso_origin = _origin(OIDC_OP_AUTHORIZATION_ENDPOINT or OIDC_ISSUER or OIDC_OP_DISCOVERY_URL) if OIDC_ENABLED else None
_csp_report_uri = env_str("CSP_REPORT_URI")  # where browsers POST violation reports; none by default
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # plotly.js clears colour-bar rects with style="": the one attribute value allowed is the empty
        # one (the SHA-256 of ""), which styles nothing; any other style= attribute stays refused.
        "style-src-attr": [UNSAFE_HASHES, _EMPTY_STYLE_HASH],
        "img-src": [SELF, "data:"],  # Bootstrap's icons in CSS and Plotly's image export are data: URLs
        "font-src": [SELF],
        "connect-src": [SELF, _socket_origin],
        "frame-ancestors": [NONE],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF, *([_sso_origin] if _sso_origin else [])],
    }
    | ({"report-uri": [_csp_report_uri]} if _csp_report_uri else {}),
}
X_FRAME_OPTIONS = "DENY"  # frame-ancestors 'none' for browsers that only know the older header
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if PRODUCTION:
    # A gateway that terminates TLS forwards plain HTTP: it then names the header that carries the
    # original scheme (SECURE_PROXY_SSL_HEADER=X-Forwarded-Proto, the default; "none" when no proxy
    # sits in front, so no client can claim https), and SECURE_SSL_REDIRECT=0 leaves redirecting to it.
    _proxy_header = env_str("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto")
    SECURE_PROXY_SSL_HEADER = (
        None if _proxy_header.lower() == "none" else ("HTTP_" + _proxy_header.upper().replace("-", "_"), "https")
    )
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 86400, minimum=0, maximum=2 * 365 * 86400)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

# --- Audit chain: keyed hashes and anchored checkpoints (issue 17) -----------------------------
# Entry hashes are HMACs under a key derived from the vault key ring (apps/core/audit_keys.py).
# Signed checkpoints {seq, head, count} go to an append-only file outside the database (and the
# "portal.audit" log): every AUDIT_CHECKPOINT_EVERY entries and every AUDIT_CHECKPOINT_INTERVAL_S.
# Cluster mode: point AUDIT_CHECKPOINT_PATH at storage every web and worker host shares.
AUDIT_CHECKPOINT_EVERY = env_int("AUDIT_CHECKPOINT_EVERY", 1000, minimum=1, maximum=10_000_000)
AUDIT_CHECKPOINT_INTERVAL_S = env_int("AUDIT_CHECKPOINT_INTERVAL_S", 3600, minimum=60, maximum=3600)
AUDIT_CHECKPOINT_PATH = Path(env_str("AUDIT_CHECKPOINT_PATH", str(VAR_DIR / "audit-checkpoints.jsonl")))
# The beat task walks the whole table when the last full walk is older than this (else only new rows).
AUDIT_FULL_VERIFY_EVERY_S = env_int("AUDIT_FULL_VERIFY_EVERY_S", 86400, minimum=0, maximum=30 * 86400)
# /healthz and the audit page verify at most this many new entries per request (the rest next time).
AUDIT_INCREMENTAL_MAX_ROWS = env_int("AUDIT_INCREMENTAL_MAX_ROWS", 10_000, minimum=1, maximum=10_000_000)
CELERY_BEAT_SCHEDULE["audit-chain-verify"] = {  # verifies, then anchors the head (apps/core/tasks.py)
    "task": "core.audit_verify",
    "schedule": float(AUDIT_CHECKPOINT_INTERVAL_S),
    "options": {"queue": "default"},
}
# auditlog's `auditlogflush` would delete the trail: a guard app listed before auditlog answers
# that command name first (Django takes a command from the earliest app that has it) and refuses.
INSTALLED_APPS.insert(INSTALLED_APPS.index("auditlog"), "apps.core.auditguard")

# --- Residency, retention, PII at rest and data-subject requests (issue 17) ---------------------
# residency and retention
# Regions objects may be pinned to besides "default" and PORTAL_REGION (comma-separated, e.g.
# "uae-north,eu-west"); model and experiment forms offer these. Data pinned to a region is stored,
# trained, served and exported only by the portal and workers of that region (apps/core/residency.py).
PORTAL_REGIONS = env_list("PORTAL_REGIONS", [])
# A portal refuses (403) predictions of a version pinned to a region it may not serve; those
# refusals are audited at most once per endpoint and version in this many seconds.
PORTAL_RESIDENCY_AUDIT_WINDOW_S = env_int("PORTAL_RESIDENCY_AUDIT_WINDOW_S", 300, minimum=1, maximum=86400)
# Run artifacts (vault files) older than this many days are purged daily, except those a registered
# model version was built from; 0 = keep forever (the default). An experiment's tag
# "retention_days" overrides it for its runs.
EXPERIMENTS_ARTIFACT_RETENTION_DAYS = (
    env_int("EXPERIMENTS_ARTIFACT_RETENTION_DAYS", 0, minimum=0, maximum=36500) or None
)
CELERY_BEAT_SCHEDULE |= {
    "experiments-artifact-retention": {
        "task": "experiments.retention_sweep",
        "schedule": 86400.0,
        "options": {"queue": "default"},
    },
}
# data-subject requests
# An erasure's audit event ("subject.erased") lists at most this many rewritten files with their
# digests; the full list is in its certificate, whose SHA-256 the event carries.
PRIVACY_AUDIT_MAX_FILES = env_int("PRIVACY_AUDIT_MAX_FILES", 1000, minimum=10, maximum=100000)
