"""The one decision point: every "may this user ..." in the portal is answered here.

- `restrict(user, action, qs)`: the objects of `qs` the user may `action`, as one SQL query;
  `scope` is its decision alone, for lists compiled once per shape (`apply_scope` applies it).
- `can(user, action, target)`: one object (object permission, or the role's global permission),
  or a model class (the role's model permission, e.g. ``can(user, "add", TrainingJob)``).
- `require(user, action, target)`: raise `NotFound` when an object is invisible (strangers learn
  nothing), `Forbidden` when it is visible but the action is not allowed or the role lacks it.
- `can_view_pii(user, view)`, `token_allows(token, scopes)`, `token_allows_endpoint(token, name)`
  (predict tokens name their endpoints), `team_member(user, team)`.
- `capabilities(user)`: what templates ask (``{% if can_add.trainingjob %}``).
- Monitoring's drift reports and alerts take their rights from their endpoint, model or feature
  view; incident webhooks are platform admins' (`_DERIVED`, below).
- Promotion requests and gate policies (apps.approvals) have no guardian rows: their rights are
  derived from the model and the policy's approver groups (`_DERIVED`, below); actions `decide`,
  `withdraw` and `rollback` besides `view`.
- `grant_owner`, `share`, `unshare`, `team_grant`: the guardian rows behind the answers (written in
  `apps.core.permission_grants`, re-exported here); only services call them.

Nothing else calls `has_perm`, reads `is_superuser`, filters groups or looks at `token.scopes`.
Deny by default: anonymous and inactive users may do nothing; an unknown action is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, NamedTuple

from django.apps import apps as django_apps
from django.contrib.auth.models import AnonymousUser, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q, QuerySet
from django.db.models.functions import Cast
from guardian.utils import get_group_obj_perms_model, get_user_obj_perms_model

from apps.core.errors import Forbidden, NotFound

# The guardian rows are written in permission_grants; services import them from here (re-exports).
from apps.core.permission_grants import (  # noqa: F401 (re-exported for the services)
    OWNER_ACTIONS,
    ROLE_ACTIONS,
    codename,
    full_perm,
    grant_extra,
    grant_owner,
    share,
    team_grant,
    team_grants,
    unshare,
)

Action = Literal["view", "change", "delete", "add"]
Role = Literal["viewer", "editor"]
# Token scopes (shared/API.md): `read` for safe methods and sockets, `write` for changes; some
# routes take their own (`features`, `predict`, `metrics`, `admin`). A scope never widens a user's rights.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PII_CODENAME = "view_pii"


# --- guardian plumbing (the rows themselves: apps/core/permission_grants.py) -------------------


def _is_direct(perm_model: type) -> bool:
    return not getattr(perm_model._meta, "abstract", False) and perm_model.__name__ not in (
        "UserObjectPermission",
        "GroupObjectPermission",
    )


def with_article(noun: str) -> str:
    """'an entity', 'a model version': the indefinite article a reader expects."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


# --- the questions -----------------------------------------------------------------------------


def is_active_user(user) -> bool:
    return bool(user is not None and not isinstance(user, AnonymousUser) and user.is_authenticated and user.is_active)


def is_platform_admin(user) -> bool:
    """Superusers (the platform-admins role) pass every object check but one: deciding a promotion
    request needs membership of its policy's approver groups (N-of-M means N people of them)."""
    return is_active_user(user) and user.is_superuser


def platform_admins() -> QuerySet:
    """The active platform admins (who hear of platform-wide problems: a worker gone, the audit chain)."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(is_active=True, is_superuser=True)


def _role_allows(user, model: type[models.Model] | models.Model, action: str) -> bool:
    """The user's roles give `action` on every object of the model (e.g. auditors view all entries)."""
    return user.has_perm(full_perm(model, action))


class Scope(NamedTuple):
    """What `restrict` keeps of a model's rows for one user: `kind` "none", "all", "derived" (the
    model's rule in `_DERIVED`) or "objects" (the user's and their groups' object permissions:
    `permission` id, `user_id`, `group_ids`, None when the groups are not cached)."""

    kind: str
    permission: int | None = None
    user_id: int | None = None
    group_ids: tuple[int, ...] | None = None


def scope(user, action: Action, model: type[models.Model]) -> Scope:
    """The decision behind `restrict(user, action, model.objects...)`, for selectors that compile
    their list query once per shape (apps/core/sqltemplates.py) and apply it with `apply_scope`."""
    if not is_active_user(user):
        return Scope("none")
    if model._meta.label_lower in _DERIVED:
        return Scope("derived")
    if user.is_superuser or _role_allows(user, model, action):
        return Scope("all")
    permission = _permission_id(model, action)
    if permission is None:
        return Scope("none")
    # The caller cache knows the user's groups (apps/accounts/principals.py): the group rows are
    # then matched by id, without joining the membership table (and skipped for no groups).
    groups = getattr(user, "_portal_group_ids", None)
    return Scope("objects", permission, user.pk, None if groups is None else tuple(groups))


def restrict(user, action: Action, queryset: QuerySet) -> QuerySet:
    """The objects in `queryset` that `user` may `action`, as one SQL query (no id lists)."""
    decided = scope(user, action, queryset.model)
    if decided.kind == "derived":
        return _DERIVED[queryset.model._meta.label_lower][1](user, action, queryset)
    return apply_scope(decided, queryset)


def apply_scope(decided: Scope, queryset: QuerySet) -> QuerySet:
    """`queryset` filtered as `decided` says (a "derived" scope goes through `restrict` only)."""
    if decided.kind == "all":
        return queryset
    if decided.kind != "objects":
        return queryset.none()
    model = queryset.model
    user_model = get_user_obj_perms_model(model)
    group_model = get_group_obj_perms_model(model)
    by_user = user_model.objects.filter(user_id=decided.user_id, permission_id=decided.permission)
    if decided.group_ids is None:
        by_group = group_model.objects.filter(group__user=decided.user_id, permission_id=decided.permission)
    elif decided.group_ids:
        by_group = group_model.objects.filter(group_id__in=decided.group_ids, permission_id=decided.permission)
    else:
        by_group = None
    if _is_direct(user_model):
        column = "content_object_id"
    else:  # generic tables: object_pk is a string column; PostgreSQL needs it cast to the pk type
        pk_field = model._meta.pk
        target = models.BigIntegerField() if pk_field.get_internal_type().endswith("AutoField") else pk_field
        by_user = by_user.annotate(obj=Cast("object_pk", target))
        by_group = by_group.annotate(obj=Cast("object_pk", target)) if by_group is not None else None
        column = "obj"
    visible = Q(pk__in=by_user.values(column))
    if by_group is not None:
        visible |= Q(pk__in=by_group.values(column))
    return queryset.filter(visible)


_PERMISSION_IDS: dict[tuple[int, str], int | None] = {}


def _permission_id(model: type[models.Model], action: str) -> int | None:
    """The id of `<app>.<action>_<model>`, read once per process (ids are fixed once migrated)."""
    ctype = ContentType.objects.get_for_model(model)
    key = (ctype.pk, codename(model, action))
    if key not in _PERMISSION_IDS:
        _PERMISSION_IDS[key] = (
            Permission.objects.filter(content_type=ctype, codename=key[1]).values_list("pk", flat=True).first()
        )
    return _PERMISSION_IDS[key]


def clear_caches(**_kwargs) -> None:
    """Forget permission ids (a flushed or re-migrated database gives them new ones)."""
    _PERMISSION_IDS.clear()


def can(user, action: str, target: models.Model | type[models.Model]) -> bool:
    """May `user` `action` `target`? An instance: its object permission or the role's global one.
    A model class: the role's model permission (``can(user, "add", Experiment)``)."""
    if not is_active_user(user):
        return False
    if isinstance(target, type):
        return _role_allows(user, target, action)
    if action == "add":
        return _role_allows(user, target, action)
    derived = _DERIVED.get(target._meta.label_lower)
    if derived is not None:
        return derived[0](user, action, target)
    return _role_allows(user, target, action) or user.has_perm(codename(target, action), target)


def holds(user, codename_: str, obj: models.Model) -> bool:
    """Does `user` hold the extra permission `codename_` (e.g. ``view_pii``) on `obj`, by role or grant?"""
    if not is_active_user(user):
        return False
    return user.has_perm(f"{obj._meta.app_label}.{codename_}") or user.has_perm(codename_, obj)


def require(user, action: str, target: models.Model | type[models.Model]) -> None:
    """Raise `NotFound` when an object is invisible to `user`, `Forbidden` when it is visible but
    `action` is not allowed; for a model class, `Forbidden` unless the role allows `action`."""
    if isinstance(target, type) or action == "add":
        if not can(user, action, target):
            raise Forbidden(
                f"Your roles do not allow you to {action} {with_article(target._meta.verbose_name)}; ask a platform admin."
            )
        return
    if not can(user, "view", target):
        raise NotFound(f"No {target._meta.verbose_name} matches the given query.")
    if action != "view" and not can(user, action, target):
        raise Forbidden(f"You may view this {target._meta.verbose_name} but not {action} it.")


# --- approval gates: rights derived from the model and the policy, not from guardian rows -----------
# A promotion request (issue #14) is seen by whoever may view its model and by the approvers its
# policy names (approvers usually hold no share of the model); it is decided only by members of
# those groups (platform admins too only when they are members: N-of-M must stay N people of the
# groups), withdrawn only by its requester, rolled back by an approver or a platform admin.
# Separation of duties (requester, version creator, second decision) is the service's: those
# answers are 403/409 with a reason, not "not allowed" in general.
# Gate policies: platform admins write; the default rows (no model) are visible to every signed-in
# user, a model's own policy to those who may view the model.


def _approver_of(user, promotion: models.Model) -> bool:
    return promotion.approver_groups.filter(user=user).exists()


def _can_promotion(user, action: str, promotion: models.Model) -> bool:
    if action == "view":
        return (
            user.is_superuser
            or _role_allows(user, promotion, "view")
            or _approver_of(user, promotion)
            or can(user, "view", promotion.model)
        )
    if action == "decide":
        return _approver_of(user, promotion)
    if action == "withdraw":
        return promotion.requested_by_id == user.pk
    if action == "rollback":
        return user.is_superuser or _approver_of(user, promotion)
    return False


def _restrict_promotions(user, action: str, queryset: QuerySet) -> QuerySet:
    model = queryset.model
    by_group = model.approver_groups.through.objects.filter(group__user=user).values("promotionrequest_id")
    if action == "decide":
        return queryset.filter(pk__in=by_group)
    if action != "view":
        return queryset.none()
    if user.is_superuser or _role_allows(user, model, "view"):
        return queryset
    registered = model._meta.get_field("model").related_model
    visible_models = restrict(user, "view", registered.objects.all()).values("pk")
    return queryset.filter(Q(model__in=visible_models) | Q(pk__in=by_group))


def _can_policy(user, action: str, policy: models.Model) -> bool:
    if user.is_superuser:
        return True
    if action != "view":
        return False
    return policy.model_id is None or _role_allows(user, policy, "view") or can(user, "view", policy.model)


def _restrict_policies(user, action: str, queryset: QuerySet) -> QuerySet:
    model = queryset.model
    if user.is_superuser:
        return queryset
    if action != "view":
        return queryset.none()
    if _role_allows(user, model, "view"):
        return queryset
    registered = model._meta.get_field("model").related_model
    visible_models = restrict(user, "view", registered.objects.all()).values("pk")
    return queryset.filter(Q(model__isnull=True) | Q(model__in=visible_models))


# --- monitoring: reports and alerts take their rights from what they are about ---------------------
# A drift report is seen by whoever may view its endpoint or feature view. An alert is seen by
# whoever may view its endpoint, model or feature view, and acted on (acknowledged, resolved,
# assigned: action "change") by whoever may change that object, and by the person it concerns
# (`owner`: a failed job's); an alert about none of them (a worker gone, the audit chain) belongs
# to platform admins. Auditors' role reads every report and
# alert. Incident webhooks are the platform admins' alone.

_ALERT_SUBJECTS = ("endpoint", "model", "feature_view")


def _subject_of(obj: models.Model, fields: tuple[str, ...]) -> models.Model | None:
    for field in fields:
        if getattr(obj, f"{field}_id", None) is not None:
            return getattr(obj, field)
    return None


def _can_monitored(user, action: str, obj: models.Model) -> bool:
    if user.is_superuser:
        return True
    if action not in ("view", "change"):
        return False
    fields = _ALERT_SUBJECTS if obj._meta.model_name == "alert" else ("endpoint", "feature_view")
    if action == "change" and obj._meta.model_name != "alert":
        return False
    subject = _subject_of(obj, fields)
    if action == "view" and _role_allows(user, obj, "view"):
        return True
    if getattr(obj, "owner_id", None) == user.pk:  # the person an alert concerns (a failed job's owner)
        return True
    return subject is not None and can(user, action, subject)


def _restrict_monitored(user, action: str, queryset: QuerySet) -> QuerySet:
    model = queryset.model
    if user.is_superuser:
        return queryset
    is_alert = model._meta.model_name == "alert"
    if action not in ("view", "change") or (action == "change" and not is_alert):
        return queryset.none()
    if action == "view" and _role_allows(user, model, "view"):
        return queryset
    visible = Q(owner=user) if is_alert else Q(pk__in=[])
    for field in _ALERT_SUBJECTS if is_alert else ("endpoint", "feature_view"):
        related = model._meta.get_field(field).related_model
        visible |= Q(**{f"{field}__in": restrict(user, action, related.objects.all()).values("pk")})
    return queryset.filter(visible)


def _can_admin_only(user, action: str, obj: models.Model) -> bool:
    return user.is_superuser


def _restrict_admin_only(user, action: str, queryset: QuerySet) -> QuerySet:
    return queryset if user.is_superuser else queryset.none()


_DERIVED = {
    "approvals.promotionrequest": (_can_promotion, _restrict_promotions),
    "approvals.gatepolicy": (_can_policy, _restrict_policies),
    "monitoring.driftreport": (_can_monitored, _restrict_monitored),
    "monitoring.alert": (_can_monitored, _restrict_monitored),
    "monitoring.incidentwebhook": (_can_admin_only, _restrict_admin_only),
}


def can_view_pii(user, view: models.Model) -> bool:
    """PII columns of a feature view (and data built from it) unmasked: viewers of the view who hold
    ``view_pii`` by role (data stewards) or by an explicit grant on that view."""
    return can(user, "view", view) and holds(user, PII_CODENAME, view)


def token_allows(token, scopes: str | Iterable[str]) -> bool:
    """Does the token permit a request that needs any one of `scopes`? Session callers (no token)
    are not limited by scopes; their roles and object permissions apply."""
    held = getattr(token, "scopes", None)
    if held is None:
        return True
    wanted = (scopes,) if isinstance(scopes, str) else tuple(scopes)
    return any(scope in held for scope in wanted)


def token_allows_endpoint(token, endpoint_name: str) -> bool:
    """May this credential predict on (and send feedback to) the endpoint called `endpoint_name`?
    Session callers: yes (their view right on the endpoint decides). Tokens: the `predict` scope
    and the endpoint named on the token. The caller's view right is asked separately (`require`)."""
    if getattr(token, "scopes", None) is None:
        return True
    return "predict" in token.scopes and endpoint_name in (getattr(token, "endpoints", None) or ())


def scope_for_method(method: str) -> str:
    return "read" if method.upper() in SAFE_METHODS else "write"


def team_member(user, team) -> bool:
    """Is `user` a member of `team` (a `Team`; its guardian group is the membership)?"""
    if not is_active_user(user) or team is None:
        return False
    return user.groups.filter(pk=team.group_id).exists()


def teams_of(user) -> QuerySet:
    """The teams `user` belongs to, by name."""
    from apps.accounts.models import Team  # accounts imports core at start-up; this is the one place

    if not is_active_user(user):
        return Team.objects.none()
    return Team.objects.filter(group__user=user).order_by("name", "pk")


# --- what templates ask ------------------------------------------------------------------------


class _ModelAnswers:
    """``{{ can_add.trainingjob }}``: the role's model permission for `action`, asked lazily."""

    def __init__(self, user, action: str):
        self.user, self.action, self._cache = user, action, {}

    def __getitem__(self, model_name: str) -> bool:
        if model_name not in self._cache:
            model = _models_by_name().get(model_name)
            self._cache[model_name] = model is not None and can(self.user, self.action, model)
        return self._cache[model_name]

    def __getattr__(self, model_name: str) -> bool:
        if model_name.startswith("_"):
            raise AttributeError(model_name)
        return self[model_name]


_MODELS: dict[str, type[models.Model]] = {}


def _models_by_name() -> dict[str, type[models.Model]]:
    if not _MODELS:
        for model in django_apps.get_models():
            _MODELS.setdefault(model._meta.model_name, model)
    return _MODELS


def capabilities(user) -> dict:
    """Template context: ``can_add.<model>``, ``can_view_all.<model>`` (e.g. the audit trail) and
    ``is_platform_admin``. Object-level flags (`can_change`) come from the view, asked with `can`."""
    return {
        "can_add": _ModelAnswers(user, "add"),
        "can_view_all": _ModelAnswers(user, "view"),
        "is_platform_admin": is_platform_admin(user),
    }


def can_use_perm(user, perm: str | None) -> bool:
    """Navigation items declare ``app_label.codename`` (or None: every signed-in user)."""
    if not is_active_user(user):
        return False
    return perm is None or user.has_perm(perm)


def visible_one(user, queryset: QuerySet, **lookup) -> models.Model:
    """The one object of `queryset` matching `lookup` that `user` may view, else `NotFound`
    (missing and invisible read the same; a malformed key reads as missing too)."""
    try:
        found = restrict(user, "view", queryset).filter(**lookup).first()
    except (ValueError, TypeError, OverflowError):
        found = None
    if found is None:
        raise NotFound(f"No {queryset.model._meta.verbose_name} matches the given query.")
    return found
